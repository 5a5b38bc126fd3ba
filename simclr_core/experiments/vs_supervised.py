"""Notebook 09 (Q6 and the projection head): SimCLR probe and fine-tune vs supervised training from scratch."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import AugmentConfig
from ..nn.models import small_cnn
from ..train.supervised import SupervisedRecipe
from .common import Preset, ShortRun, build_model, default_views, finetune, load_data, meta, pretrain_short, simclr_views, views_of_test


def _accuracy(clf: nn.Module, test, device) -> float:
    from ..eval.features import extract_features

    logits = extract_features(clf, test.images, 1024, device)  # (N, classes): the "features" are the logits
    return float((logits.argmax(1) == test.targets).float().mean())


def _label_subset(n_labels: int, N: int, seed: int = 0) -> torch.Tensor:
    return torch.randperm(N, generator=torch.Generator().manual_seed(seed))[:n_labels]


def run_vs_supervised(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True) -> dict:
    """Notebook 09 (Q6 + the projection-head finding): SimCLR probe / fine-tune vs supervised from scratch
    at 1%, 10%, 100% of the labels; linear probe on h vs z vs a run without a head."""
    import copy

    from ..eval.diagnostics import positive_negative_distances, summary
    from ..eval.features import extract_features, raw_pixel_features
    from ..eval.metrics import knn_accuracy, linear_probe

    t0 = time.time()
    train, test = load_data(preset.n_pretrain, preset.n_test, dataset)
    size, C, classes = train.images.shape[-1], train.images.shape[1], len(train.classes)
    views = default_views(dataset, size)
    base = ShortRun(steps=preset.steps, batch_size=preset.batch_size, widths=preset.widths)
    simclr, _ = pretrain_short(train, views, base, device, progress=progress, dataset=dataset)
    nohead, _ = pretrain_short(train, views, replace(base, head=False), device, progress=progress, dataset=dataset)
    rand = build_model(C, base, dataset).to(device)

    def feats(module):
        return extract_features(module, train.images, 1024, device), extract_features(module, test.images, 1024, device)

    F_ = {"SimCLR h (linear probe)": feats(simclr.encoder),
          "SimCLR z = g(h) (linear probe)": feats(nn.Sequential(simclr.encoder, simclr.head)),
          "no-head SimCLR h (linear probe)": feats(nohead.encoder),
          "random-init h (linear probe)": feats(rand.encoder),
          "raw pixels (linear probe)": (raw_pixel_features(train.images), raw_pixel_features(test.images))}
    sup_views = simclr_views(AugmentConfig(size=size, crop_scale=(0.5, 1.0), color_jitter=False, grayscale=False))
    ft = SupervisedRecipe(steps=preset.finetune_steps, batch_size=min(256, preset.n_pretrain))
    fractions = [0.01, 0.1, 1.0]
    table = {}
    for frac in fractions:
        n = max(classes, int(round(frac * len(train))))
        idx = _label_subset(n, len(train))
        row = {"n_labels": n}
        for name, (ftr, fte) in F_.items():
            row[name] = linear_probe(ftr[idx], train.targets[idx], fte, test.targets, max_iter=preset.probe_iter, device=device)
        ftr, fte = F_["SimCLR h (linear probe)"]
        row["SimCLR h (kNN)"] = knn_accuracy(ftr[idx], train.targets[idx], fte, test.targets, k=min(200, n))
        lab = train.images[idx], train.targets[idx]
        clf = finetune(copy.deepcopy(simclr.encoder), *lab, classes, ft, sup_views, device, progress)
        row["SimCLR fine-tuned"] = _accuracy(clf, test, device)
        torch.manual_seed(1)
        clf = finetune(small_cnn(C, preset.widths), *lab, classes, ft, sup_views, device, progress)
        row["supervised from scratch"] = _accuracy(clf, test, device)
        table[str(frac)] = row

    # the head absorbs invariances: two views agree more in z than in h; h still knows the rotation
    h1, h2, z1, z2 = views_of_test(simclr, test, views, device)
    invariance = {}
    for space, (a, b) in (("h", (h1, h2)), ("z", (z1, z2))):
        pos, neg = positive_negative_distances(a[:2000], b[:2000])
        invariance[space] = {**summary(a, b), "mean_cos_views": float(F.cosine_similarity(a, b).mean()),
                             # squared distance of two views of one image relative to that of two different images
                             "pos_neg_ratio": float(pos.pow(2).mean() / neg.pow(2).mean())}
    m = min(2000, len(test))
    rot = torch.cat([torch.rot90(test.images[:m], k, dims=(2, 3)) for k in range(4)])  # (4m, C, H, W)
    r_lab = torch.arange(4).repeat_interleave(m)  # (4m,) rotation class
    half = torch.arange(4 * m) % m < m // 2  # first half of the images trains the probe, second half tests
    rotation = {}
    for name, module in (("h", simclr.encoder), ("z", nn.Sequential(simclr.encoder, simclr.head))):
        f = extract_features(module, rot, 1024, device)
        rotation[name] = linear_probe(f[half], r_lab[half], f[~half], r_lab[~half], max_iter=preset.probe_iter, device=device)
    return {**meta("vs_supervised", preset, dataset, device, t0), "pretrain": asdict(base), "finetune": asdict(ft),
            "n_pretrain": len(train), "fractions": fractions, "table": table, "invariance": invariance,
            "rotation_probe": rotation}
