"""Small, real experiments behind the application notebooks 06-09 (exercise Q4-Q6, lecture 13).

Read bottom-up:

1. ``FIG5_OPS``: the seven augmentation operators of Chen et al. 2020 (arXiv:2002.05709), Figure 4/5
   (crop, cutout, colour, Sobel, noise, blur, rotate), each batched with per-image randomness;
   ``compose(names)`` applies them in order (Figure 5's "1st transformation", then "2nd").
2. ``ShortRun`` + ``pretrain_short``: one short SimCLR pretraining run, the loop written out: two views,
   f and g, NT-Xent (optionally with a queue of negatives and a momentum encoder, MoCo-style, or with no
   negatives at all, the deliberately collapsing "alignment only" loss).
3. ``finetune``: supervised training of an encoder + linear classifier (fine-tuning a pretrained
   encoder, or the same network from scratch), the baseline of exercise Q6.
4. ``run_*``: the experiments of notebooks 06-09; each returns a JSON-able dict that records the command,
   the config, the device and the measured numbers. ``python -m simclr_core.experiments NAME --preset P``
   writes it to notebooks/results/NAME.json, which the notebooks read instead of re-training.

Presets: ``smoke`` (CI, seconds), ``cpu`` (a laptop, ~10 minutes per experiment; the cached numbers in
notebooks/results were made with it: ``OMP_NUM_THREADS=1 python -m simclr_core.experiments visualize small_batch
vs_supervised fig5 --preset cpu``), ``gpu`` (one GPU, larger runs: all seven Figure-5 operators, 60k images for
notebook 09, two seeds for notebook 07). Data: Fashion-MNIST (offline, 28x28 grayscale) unless CIFAR-10 is on disk
and ``--dataset cifar10`` is given.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks
from ..data.augment import AugmentConfig
from ..data.fast_augment import BatchAugment
from ..data.fig5 import FIG5_OPS, compose
from ..nn.models import SMALL_CNN_WIDTHS, SimCLR, small_cnn
from ..precision import precision_for
from ..train.config import Recipe, RunOptions, preset
from ..train.loop import Callback
from ..train.runs import pretrain
from ..train.step import AlignmentObjective, MemoryBankObjective, QueueObjective
from ..train.step import build_model as _build_model
from ..train.supervised import SupervisedRecipe, train_classifier

__all__ = ["FIG5_OPS", "compose", "ShortRun", "pretrain_short", "finetune", "Preset", "PRESETS", "load_data",
           "run_fig5", "run_small_batch", "run_visualize", "run_vs_supervised", "EXPERIMENTS", "load_result", "save_result", "load_or_run"]


def simclr_views(cfg: AugmentConfig):
    """The default SimCLR policy as a view function (x, g) -> view, via the batched BatchAugment."""
    aug = BatchAugment(cfg)
    return lambda x, g=None: aug(x, generator=g)


# ------------------------------------------------------------------ 2. one short pretraining run

@dataclass(frozen=True)
class ShortRun:
    """One short SimCLR run of the Fashion-MNIST ``cpu`` preset's recipe (its SGD, lr, schedule, tau and
    weight decay), with the network, batch size, steps and loss variant of an experiment."""

    steps: int = 500
    batch_size: int = 128  # N pairs per step
    temperature: float = 0.2
    widths: tuple[int, ...] = SMALL_CNN_WIDTHS
    head: bool = True  # False: z = h, the loss is applied to the representation itself
    head_dim: int = 128
    queue_size: int = 0  # > 0: extra negatives from a FIFO of past keys (MoCo)
    momentum: float | None = None  # set (e.g. 0.99): keys come from an EMA copy of the network (MoCo)
    bank_negatives: int = 0  # > 0: this many negatives drawn from a memory bank of one embedding per image (PIRL)
    negatives: bool = True  # False: alignment-only loss -cos(z1, z2), the collapsing ablation
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "head_dim"):
            checks.positive_int(name, getattr(self, name))
        checks.nonnegative_int("queue_size", self.queue_size)
        checks.nonnegative_int("bank_negatives", self.bank_negatives)

    def recipe(self, dataset: str, n_images: int) -> Recipe:
        """The trainer's recipe: the dataset's cpu preset with this run's size, steps and seed."""
        epochs = max(1, math.ceil(self.steps / max(1, n_images // self.batch_size)))
        return preset("cpu", dataset, widths=self.widths, head=self.head, proj_dim=self.head_dim,
                      batch_size=self.batch_size, temperature=self.temperature, epochs=epochs,
                      warmup_epochs=min(0.5, epochs), max_steps=self.steps, minutes=None, seed=self.seed,
                      monitor_train=min(1000, n_images), monitor_test=200)

    def objective(self, n_images: int):
        """The loss variant, as a function of the model (the trainer builds the model)."""
        if not self.negatives:
            return lambda model: AlignmentObjective(self.temperature)
        if self.queue_size:
            return lambda model: QueueObjective(self.temperature, model, self.queue_size, self.momentum)
        if self.bank_negatives:
            return lambda model: MemoryBankObjective(self.temperature, model, n_images, self.bank_negatives,
                                                     seed=self.seed)
        return None


class _Every(Callback):
    def __init__(self, every: int, fn):
        self.every, self.fn = every, fn

    def on_step_end(self, trainer, loss) -> None:
        if trainer.global_step % self.every == 0:
            self.fn(trainer.global_step, trainer.model)


class _Losses(Callback):
    def __init__(self):
        self.losses = []

    def on_step_end(self, trainer, loss) -> None:
        self.losses.append(loss)


def build_model(in_channels: int, run: ShortRun, dataset: str = "fashion-mnist") -> SimCLR:
    """The network a run of ``run`` starts from (its random-init baseline)."""
    return _build_model(run.recipe(dataset, 1_000_000))


def pretrain_short(train, views, run: ShortRun, device="cpu", progress: bool = True, callback=None, every: int = 0,
                   dataset: str = "fashion-mnist"):
    """Pretrain f and g on ``train`` (an ImageDataset) through the library's trainer with the view function
    ``views(x, g)``. ``callback(step, model)`` is called every ``every`` steps (e.g. a kNN evaluation for a curve).
    Returns (model, history) with history = {"step": [...], "loss": [...]}."""
    losses = _Losses()
    cbs = [losses] + ([_Every(every, callback)] if callback is not None and every else [])
    res = pretrain(run.recipe(dataset, len(train)), RunOptions(device=str(device), progress=progress), train, train,
                   objective=run.objective(len(train)), augment=views, callbacks=cbs)
    loss = [float(v) for v in losses.losses]
    return res.model, {"step": list(range(1, len(loss) + 1)), "loss": loss}


# ------------------------------------------------------------------ 3. supervised training (Q6 baseline)

FinetuneRun = SupervisedRecipe


def finetune(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int, run: SupervisedRecipe,
             views, device="cpu", progress: bool = True) -> nn.Sequential:
    """Train ``encoder`` (pretrained: fine-tuning; fresh: supervised from scratch) + a linear layer: the library's
    supervised loop (``train.supervised``), the same for both, so only the initialisation differs."""
    return train_classifier(encoder, images, labels, num_classes, run, views, precision_for(device), progress)


# ------------------------------------------------------------------ 4. the experiments of notebooks 06-09

@dataclass(frozen=True)
class Preset:
    """How big an experiment is. ``n_train`` unlabelled images (Q4: "only 10,000 images")."""

    name: str
    n_train: int
    n_test: int
    steps: int  # pretraining steps of one run (notebooks 08, 09)
    batch_size: int  # N pairs per step
    widths: tuple[int, ...]
    fig5_ops: tuple[str, ...]
    fig5_steps: int  # per grid cell
    fig5_batch: int
    small_batch_steps: int  # notebook 07, every variant
    n_pretrain: int  # notebook 09: unlabelled images for pretraining (labels: 1%, 10%, 100% of them)
    seeds: tuple[int, ...] = (0,)
    finetune_steps: int = 1000
    tsne_points: int = 2000
    probe_iter: int = 200  # L-BFGS iterations of the linear probe


PRESETS = {
    "smoke": Preset("smoke", n_train=256, n_test=128, steps=3, batch_size=16, widths=(8, 8, 16, 16),
                    fig5_ops=("crop", "color"), fig5_steps=2, fig5_batch=16, small_batch_steps=6, n_pretrain=256,
                    finetune_steps=3, tsne_points=60, probe_iter=10),
    # sized for a 2-core laptop (each experiment ~10 min); the cached results were made with it
    "cpu": Preset("cpu", n_train=10_000, n_test=2000, steps=300, batch_size=128, widths=(16, 32, 64, 128),
                  fig5_ops=("crop", "cutout", "color", "noise"), fig5_steps=150, fig5_batch=64,
                  small_batch_steps=450, n_pretrain=10_000, finetune_steps=300, tsne_points=1000, probe_iter=100),
    "gpu": Preset("gpu", n_train=10_000, n_test=10_000, steps=2000, batch_size=256, widths=(32, 64, 128, 256),
                  fig5_ops=tuple(FIG5_OPS), fig5_steps=800, fig5_batch=256, small_batch_steps=4000, n_pretrain=60_000,
                  seeds=(0, 1), finetune_steps=1500, tsne_points=3000),
}


def load_data(n_train: int, n_test: int, dataset: str = "fashion-mnist", root=None, seed: int = 0):
    """(train, test) ImageDatasets: random class-mixed subsets of n_train / n_test images."""
    from ..data.datasets import load_dataset

    train, test = load_dataset(dataset, root, train=True), load_dataset(dataset, root, train=False)
    train = train.subset(min(n_train, len(train)), seed=seed)
    test = test.subset(min(n_test, len(test)), seed=seed + 1)
    return train, test


def probe_of(encoder: nn.Module, train, test, device, max_iter: int = 200) -> tuple[float, float]:
    """(kNN, linear-probe) top-1 accuracy of frozen features h on un-augmented images."""
    from ..eval.features import extract_features
    from ..eval.metrics import knn_accuracy, linear_probe

    ftr = extract_features(encoder, train.images, 1024, device)
    fte = extract_features(encoder, test.images, 1024, device)
    knn = knn_accuracy(ftr, train.targets, fte, test.targets, k=min(200, len(train)), t=0.1)
    return knn, linear_probe(ftr, train.targets, fte, test.targets, max_iter=max_iter, device=device)


def knn_of(encoder: nn.Module, train, test, device, k: int = 200) -> float:
    """kNN top-1 accuracy (k = 200, t = 0.1) of frozen features h on un-augmented images."""
    from ..eval.features import extract_features
    from ..eval.metrics import knn_accuracy

    ftr = extract_features(encoder, train.images, 1024, device)
    fte = extract_features(encoder, test.images, 1024, device)
    return knn_accuracy(ftr, train.targets, fte, test.targets, k=min(k, len(train)), t=0.1)


def _meta(name: str, preset: Preset, dataset: str, device, t0: float) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    dev = torch.device(device)
    return {
        "experiment": name,
        "command": f"python -m simclr_core.experiments {name} --preset {preset.name} --dataset {dataset}",
        "preset": asdict(preset),
        "dataset": dataset,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "git_commit": commit,
        "wall_s": round(time.time() - t0, 1),
    }


def _default_views(dataset: str, size: int):
    """The paper's CIFAR-10 policy (crop + flip + colour s = 0.5 + grayscale). On 28x28 grayscale
    Fashion-MNIST the colour ops reduce to brightness/contrast jitter and the crop keeps at least 20% of
    the area (8% of 28x28 is a 8x8 patch), as in simclr_core.config's Fashion-MNIST recipe."""
    if dataset == "fashion-mnist":
        return simclr_views(AugmentConfig(size=size, crop_scale=(0.2, 1.0), grayscale=False))
    return simclr_views(AugmentConfig(size=size))


def run_fig5(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True) -> dict:
    """Notebook 06 (Q4.1, Figure 5): kNN accuracy after pretraining with each single op and each ordered pair."""
    from tqdm.auto import tqdm

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    run = ShortRun(steps=preset.fig5_steps, batch_size=preset.fig5_batch, widths=preset.widths)
    ops = list(preset.fig5_ops)
    knn = [[0.0] * len(ops) for _ in ops]
    linear = [[0.0] * len(ops) for _ in ops]
    cells = [(i, j) for i in range(len(ops)) for j in range(len(ops))]
    for i, j in tqdm(cells, disable=not progress, desc="Figure 5 grid"):
        names = [ops[i]] if i == j else [ops[i], ops[j]]  # row: 1st transformation, column: 2nd
        model, _ = pretrain_short(train, compose(names), run, device, progress=False, dataset=dataset)
        knn[i][j], linear[i][j] = probe_of(model.encoder, train, test, device, preset.probe_iter)
    model, _ = pretrain_short(train, _default_views(dataset, train.images.shape[-1]), run, device, progress=False, dataset=dataset)
    default = probe_of(model.encoder, train, test, device, preset.probe_iter)
    random_init = probe_of(build_model(train.images.shape[1], run, dataset).encoder.to(device), train, test, device, preset.probe_iter)
    return {**_meta("fig5", preset, dataset, device, t0), "run": asdict(run), "ops": ops, "knn": knn, "linear": linear,
            "default_policy_knn": default[0], "default_policy_linear": default[1],
            "random_init_knn": random_init[0], "random_init_linear": random_init[1]}


SMALL_BATCH_VARIANTS = {
    "SimCLR, N=32": dict(batch_size=32),
    "SimCLR + queue, N=32": dict(batch_size=32, queue="Q"),
    "SimCLR + queue + momentum encoder (MoCo), N=32": dict(batch_size=32, queue="Q", momentum=0.99),
    "SimCLR + queue/4 + momentum encoder, N=32": dict(batch_size=32, queue="Q/4", momentum=0.99),
    "SimCLR + memory bank (PIRL-style), N=32": dict(batch_size=32, bank="Q"),
    "SimCLR, large batch (reference)": dict(batch_size="B"),
}


def run_small_batch(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True) -> dict:
    """Notebook 07 (Q4.2): at N = 32, in-batch negatives only vs + a queue of K keys (+ momentum encoder)."""
    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    steps = preset.small_batch_steps
    K = {"smoke": 64}.get(preset.name, 4096)
    views = _default_views(dataset, train.images.shape[-1])
    curves = {}
    for name, spec in SMALL_BATCH_VARIANTS.items():
        for seed in preset.seeds:
            spec2 = {k: {"Q": K, "Q/4": K // 4, "B": preset.batch_size}.get(v, v) if isinstance(v, str) else v
                     for k, v in spec.items()}
            queue_size, bank = spec2.pop("queue", 0), spec2.pop("bank", 0)
            run = ShortRun(steps=steps, widths=preset.widths, queue_size=queue_size, bank_negatives=bank, seed=seed,
                           **spec2)
            points = []
            t1 = time.time()
            model, hist = pretrain_short(train, views, run, device, progress=progress, dataset=dataset,
                                         callback=lambda s, m: points.append((s, knn_of(m.encoder, train, test, device))),
                                         every=max(1, steps // 6))
            curves.setdefault(name, []).append({"seed": seed, "run": asdict(run), "knn_curve": points,
                                                "final_knn": points[-1][1],
                                                "final_linear": probe_of(model.encoder, train, test, device, preset.probe_iter)[1],
                                                "loss_first": hist["loss"][0],
                                                "loss_last": sum(hist["loss"][-20:]) / len(hist["loss"][-20:]),
                                                "train_s": round(time.time() - t1, 1)})
    return {**_meta("small_batch", preset, dataset, device, t0), "queue_size": K, "steps": steps, "variants": curves}


def _views_of_test(model: SimCLR, test, views, device, seed: int = 123):
    """h and z of two random views of every test image: (h1, h2, z1, z2), each (N, d) on the CPU."""
    from ..eval.features import extract_features

    g = torch.Generator().manual_seed(seed)
    x1, x2 = views(test.images, g), views(test.images, g)  # (N, C, H, W) float in [0, 1]
    out = []
    for x in (x1, x2):
        xb = (x.clamp(0, 1) * 255).round().to(torch.uint8)  # extract_features takes uint8 images
        out.append(extract_features(model.encoder, xb, 1024, device))
        out.append(extract_features(nn.Sequential(model.encoder, model.head), xb, 1024, device))
    h1, z1, h2, z2 = out
    return h1, h2, z1, z2


def _histogram(values: torch.Tensor, bins: int = 40, lo: float = 0.0, hi: float = 2.0) -> list[int]:
    return torch.histc(values.float(), bins=bins, min=lo, max=hi).long().tolist()


VISUALIZE_VARIANTS = {
    "SimCLR": dict(),
    "SimCLR, N=2 (two negatives per anchor)": dict(batch_size=2),
    "no negatives (alignment only)": dict(negatives=False),
    "random init (no training)": None,
}


def run_visualize(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True) -> dict:
    """Notebook 08 (Q5): distances of positive vs negative pairs, collapse diagnostics, t-SNE maps."""
    from sklearn.manifold import TSNE

    from ..eval.diagnostics import positive_negative_distances, summary
    from ..eval.features import extract_features

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    views = _default_views(dataset, train.images.shape[-1])
    n_tsne = min(preset.tsne_points, len(test))
    out = {}
    for name, spec in VISUALIZE_VARIANTS.items():
        run = ShortRun(steps=preset.steps, widths=preset.widths, **{"batch_size": preset.batch_size, **(spec or {})})
        if spec is None:
            model = build_model(train.images.shape[1], run, dataset).to(device)
        else:
            model, _ = pretrain_short(train, views, run, device, progress=progress, dataset=dataset)
        h1, h2, z1, z2 = _views_of_test(model, test, views, device)
        res = {"run": asdict(run) if spec else None, "knn": knn_of(model.encoder, train, test, device)}
        for space, (a, b) in (("h", (h1, h2)), ("z", (z1, z2))):
            pos, neg = positive_negative_distances(a[:2000], b[:2000])
            res[space] = {**summary(a, b), "pos_hist": _histogram(pos), "neg_hist": _histogram(neg),
                          "pos_median": float(pos.median()), "neg_median": float(neg.median())}
        h = extract_features(model.encoder, test.images[:n_tsne], 1024, device)  # (n, d) un-augmented
        if float(h.std(0).max()) > 1e-6:
            xy = TSNE(2, init="pca", perplexity=30, random_state=0).fit_transform(h.numpy())
            res["tsne"] = [[round(float(u), 2), round(float(v), 2)] for u, v in xy]
        else:  # a fully collapsed encoder: every point is the same, nothing to embed
            res["tsne"] = None
        # Q5.2: the closest pairs of DIFFERENT test images in h, and how often nearest neighbours share a class
        hn = F.normalize(h, dim=1)
        sim = hn @ hn.T  # (n, n)
        sim.fill_diagonal_(-2)
        nn_sim, nn_idx = sim.max(1)  # (n,)
        res["nn_same_class"] = float((test.targets[:n_tsne][nn_idx] == test.targets[:n_tsne]).float().mean())
        top = nn_sim.topk(8).indices
        res["closest_pairs"] = [[int(i), int(nn_idx[i]), round(float(nn_sim[i]), 4)] for i in top]
        out[name] = res
    return {**_meta("visualize", preset, dataset, device, t0), "labels": test.targets[:n_tsne].tolist(),
            "classes": list(test.classes), "hist_range": [0.0, 2.0], "variants": out}


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
    views = _default_views(dataset, size)
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
    h1, h2, z1, z2 = _views_of_test(simclr, test, views, device)
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
    return {**_meta("vs_supervised", preset, dataset, device, t0), "pretrain": asdict(base), "finetune": asdict(ft),
            "n_pretrain": len(train), "fractions": fractions, "table": table, "invariance": invariance,
            "rotation_probe": rotation}


EXPERIMENTS = {"fig5": run_fig5, "small_batch": run_small_batch, "visualize": run_visualize,
               "vs_supervised": run_vs_supervised}


def load_result(name: str, folder) -> dict | None:
    """The cached result <folder>/<name>.json (the workbook's is notebooks/results), or None when there is none."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {list(EXPERIMENTS)}")
    path = Path(folder) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save_result(result: dict, folder) -> Path:
    """Write <folder>/<experiment>.json atomically (temporary file, then rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result['experiment']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m simclr_core.experiments", description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="+", choices=[*EXPERIMENTS, "all"])
    ap.add_argument("--preset", default="gpu" if torch.cuda.is_available() else "cpu", choices=list(PRESETS))
    ap.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "cifar10"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="notebooks/results", help="folder for <name>.json (the workbook reads notebooks/results)")
    args = ap.parse_args(argv)
    names = list(EXPERIMENTS) if "all" in args.names else args.names
    for name in names:
        res = EXPERIMENTS[name](PRESETS[args.preset], args.dataset, args.device, progress=sys.stderr.isatty())
        print(f"{name}: {res['wall_s']} s -> {save_result(res, args.out)}", flush=True)


def load_or_run(name: str, preset: Preset, dataset: str, device, folder, recompute: bool = False,
                progress: bool = True) -> dict:
    """What the notebooks call: the cached <folder>/<name>.json when it exists for this dataset,
    else run the experiment (and cache it, except in the smoke preset, which never touches the cache)."""
    if preset.name != "smoke" and not recompute:
        cached = load_result(name, folder)
        if cached is not None and cached.get("dataset") == dataset:
            print(f"cached result: {name}.json ({cached['preset']['name']} preset, {cached['device']}, "
                  f"{cached['wall_s']} s; re-create with: {cached['command']})")
            return cached
    result = EXPERIMENTS[name](preset, dataset, device, progress=progress)
    if preset.name != "smoke":
        print("saved", save_result(result, folder))
    return result
