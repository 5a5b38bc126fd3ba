"""Notebook 09 (Q6 and the projection head), over seeds, with 1, 10 and 100 labels per class and with all labels:

- ``in_domain``: SimCLR pretrained on all training images without labels, then a linear probe (on h, on z, and on
  h of a run without a head) or fine-tuning with a few labels per class, vs the same network trained from
  scratch on those labels, random init and raw pixels (the paper's semi-supervised setting, Table 7);
- ``transfer``: Q6.1's "supervised-pretrained vs SimCLR-pretrained, then fine-tuned with few labels", as an
  analogue: both pretrained on the images of the first half of the classes (the supervised one with their labels),
  then probed / fine-tuned on the other half of the classes, classes neither has seen labelled;
- ``invariance`` and ``rotation_probe``: why h beats z (the head discards what the augmentations vary).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import AugmentConfig
from ..eval.probe import PROTOCOL, features, probe_features
from ..train.supervised import SupervisedRecipe
from .common import Preset, default_views, finetune, load_data, meta, simclr_views, views_of_test
from .short_run import ShortRun, build_model, pretrain_short
from .stats import over_seeds

# labels per class (None: every label), the paper's semi-supervised question asked per class, so that each
# budget holds every class equally; the key of each budget in the result is str(k) or "all"
LABELS_PER_CLASS = (1, 10, 100, None)
MIN_EPOCHS = 10  # supervised runs: at least this many passes over the labelled images (from scratch needs them)


def _accuracy(clf: nn.Module, test, device) -> float:
    """Top-1 of a supervised classifier on the test images at the probe protocol's image size, the size every
    model of the comparison is tested at (``eval.probe``)."""
    logits = features(clf, test.images, device, PROTOCOL)  # (N, classes): the "features" are the logits
    return float((logits.argmax(1) == test.targets).float().mean())


def eval_size(images) -> int:
    """The side every model is tested at, and so the side supervised runs train their views at: the protocol's
    image size, or the images' own."""
    return PROTOCOL.image_size or int(images.shape[-1])


def budget_key(per_class: int | None) -> str:
    return "all" if per_class is None else str(per_class)


def label_subset(targets: torch.Tensor, per_class: int | None, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` labelled images of every class (all of a class that has fewer; every index when
    None), drawn by the seed alone, so that all methods of a seed see the same labelled images."""
    if per_class is None:
        return torch.arange(len(targets))
    g = torch.Generator().manual_seed(1000 + seed)
    picks = []
    for c in range(int(targets.max()) + 1):
        idx = torch.nonzero(targets == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(picks).sort().values


def _supervised(preset: Preset, n: int, seed: int) -> SupervisedRecipe:
    """Fine-tuning and from-scratch runs alike: the preset's steps, or MIN_EPOCHS epochs when that is more."""
    B = min(preset.finetune_batch, n)
    return SupervisedRecipe(steps=max(preset.finetune_steps, MIN_EPOCHS * (n // B)), batch_size=B, seed=seed)


def _classes(ds, keep: range):
    """The images of the classes in ``keep``, relabelled 0..len(keep)-1."""
    idx = torch.nonzero((ds.targets >= keep.start) & (ds.targets < keep.stop)).flatten()
    return ds.images[idx], ds.targets[idx] - keep.start


@dataclass(frozen=True)
class Encoder:
    """An encoder under test and the result labels of what is done with it: a linear probe always, a kNN
    classifier and fine-tuning when their labels are given."""

    module: nn.Module
    probe: str
    knn: str | None = None
    finetuned: str | None = None


def _probe_and_finetune(encoders: list[Encoder], scratch: nn.Module, tr, te, n_classes, preset, seed, sup_views,
                        device) -> dict:
    """One seed, every label budget: {budget: {method: accuracy}} on (images, labels) pairs tr and te."""
    from ..data.datasets import ImageDataset

    (Xtr, ytr), (Xte, yte) = tr, te
    test = ImageDataset(Xte, yte, tuple(str(c) for c in range(n_classes)), "test")
    feats = {e.probe: (features(e.module, Xtr, device), features(e.module, Xte, device)) for e in encoders}
    feats["raw pixels (linear probe)"] = (features(None, Xtr, device), features(None, Xte, device))
    out = {}
    for per_class in LABELS_PER_CLASS:
        idx = label_subset(ytr, per_class, seed)
        n = len(idx)
        row = {name: probe_features(ftr[idx], ytr[idx], fte, yte, device, metrics=("linear",),
                                    num_classes=n_classes).linear for name, (ftr, fte) in feats.items()}
        for e in (e for e in encoders if e.knn):  # a kNN classifier needs no training at all
            ftr, fte = feats[e.probe]
            row[e.knn] = probe_features(ftr[idx], ytr[idx], fte, yte, device, metrics=("knn",),
                                        num_classes=n_classes).knn
        rec = _supervised(preset, n, seed)
        for e in (e for e in encoders if e.finetuned):
            clf = finetune(copy.deepcopy(e.module), Xtr[idx], ytr[idx], n_classes, rec, sup_views, device, False)
            row[e.finetuned] = _accuracy(clf, test, device)
        clf = finetune(copy.deepcopy(scratch), Xtr[idx], ytr[idx], n_classes, rec, sup_views, device, False)
        row["supervised from scratch"] = _accuracy(clf, test, device)
        out[budget_key(per_class)] = {"n_labels": n, **row}
    return out


def _mean_over_seeds(per_seed: list[dict]) -> dict:
    return {f: {"n_labels": per_seed[0][f]["n_labels"],
                **over_seeds([{k: v for k, v in s[f].items() if k != "n_labels"} for s in per_seed])}
            for f in per_seed[0]}


def run_vs_supervised(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                      cache=None) -> dict:
    from tqdm.auto import tqdm

    from ..data.datasets import ImageDataset
    from ..eval.diagnostics import positive_negative_distances, summary

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    C, K = train.images.shape[1], len(train.classes)
    # the usual supervised policy (mild crops and flips) at the size every model is tested at (the probe
    # protocol's: the full images), so that a supervised classifier meets at test time the scale it trained on
    sup_size = eval_size(train.images)
    sup_views = simclr_views(AugmentConfig(size=sup_size, crop_scale=(0.5, 1.0),
                                           color_jitter=False, grayscale=False))
    base = ShortRun(steps=preset.steps, batch_size=preset.batch_size, widths=preset.widths)
    src = range(0, K // 2)  # the "pretraining task" of the transfer analogue
    tgt = range(K // 2, K)  # the downstream task: classes neither pretraining saw labelled
    src_tr = _classes(train, src)
    src_ds = ImageDataset(*src_tr, tuple(train.classes[c] for c in src), train.name)
    in_domain, transfer = [], []
    bar = tqdm(total=len(preset.seeds), disable=not progress, desc="09 (seeds)")
    for seed in preset.seeds:
        run = replace(base, seed=seed)
        simclr, _ = pretrain_short(train, None, run, device, progress=False, dataset=dataset, cache=cache)
        nohead, _ = pretrain_short(train, None, replace(run, head=False), device, progress=False, dataset=dataset,
                                   cache=cache)
        fresh = build_model(C, run, dataset).encoder.to(device)  # the init every run of this seed starts from
        encoders = [Encoder(simclr.encoder, "SimCLR h (linear probe)", "SimCLR h (kNN)", "SimCLR fine-tuned"),
                    Encoder(nn.Sequential(simclr.encoder, simclr.head), "SimCLR z = g(h) (linear probe)"),
                    Encoder(nohead.encoder, "no-head SimCLR h (linear probe)"),
                    Encoder(fresh, "random-init h (linear probe)")]
        in_domain.append(_probe_and_finetune(encoders, fresh, (train.images, train.targets),
                                             (test.images, test.targets), K, preset, seed, sup_views, device))
        # transfer: SimCLR on the source images without labels, supervised on them with labels, same init
        src_run = replace(run, steps=max(1, preset.steps // 2))  # half the images: half the steps, ~15 epochs
        simclr_src, _ = pretrain_short(src_ds, None, src_run, device, progress=False, dataset=dataset, cache=cache)
        sup_rec = SupervisedRecipe(steps=src_run.steps, batch_size=preset.batch_size, seed=seed)
        sup_src = finetune(copy.deepcopy(fresh), *src_tr, len(src), sup_rec, sup_views, device, False)[0]
        encoders = [Encoder(simclr_src.encoder, "SimCLR-pretrained h (linear probe)", "SimCLR-pretrained h (kNN)",
                            "SimCLR-pretrained fine-tuned"),
                    Encoder(sup_src, "supervised-pretrained h (linear probe)", finetuned="supervised-pretrained fine-tuned"),
                    Encoder(fresh, "random-init h (linear probe)")]
        transfer.append(_probe_and_finetune(encoders, fresh, _classes(train, tgt), _classes(test, tgt), len(tgt),
                                            preset, seed, sup_views, device))
        if seed == preset.seeds[0]:
            first = simclr
        bar.update()
    bar.close()

    # the head absorbs invariances: two views agree more in z than in h; h still knows the rotation
    h1, h2, z1, z2 = views_of_test(first, test, default_views(dataset), device)
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
    for name, module in (("h", first.encoder), ("z", nn.Sequential(first.encoder, first.head))):
        f = features(module, rot, device)
        rotation[name] = probe_features(f[half], r_lab[half], f[~half], r_lab[~half], device, metrics=("linear",),
                                        num_classes=4).linear
    return {**meta("vs_supervised", preset, dataset, device, t0), "pretrain": asdict(base),
            "finetune": {"min_steps": preset.finetune_steps, "min_epochs": MIN_EPOCHS,
                         "batch_size": preset.finetune_batch, "lr": SupervisedRecipe().lr,
                         "view_size": sup_size, "test_size": sup_size},
            "n_pretrain": len(train), "labels_per_class": [budget_key(k) for k in LABELS_PER_CLASS],
            "source_classes": [train.classes[c] for c in src], "target_classes": [train.classes[c] for c in tgt],
            "n_source": len(src_ds), "source_steps": max(1, preset.steps // 2), "in_domain": _mean_over_seeds(in_domain), "transfer": _mean_over_seeds(transfer),
            "invariance": invariance, "rotation_probe": rotation}
