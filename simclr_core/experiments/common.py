"""The pieces the experiments of notebooks 06-09 share besides a short run (``short_run``): the supervised baseline
(``finetune``), the experiment sizes (``Preset``), data, probes and the record every result carries (``meta``:
command, preset, device, and the probe protocol of its numbers)."""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..data.augment import AugmentConfig
from ..data.fast_augment import BatchAugment
from ..data.fig5 import FIG5_OPS, compose  # noqa: F401 (re-exported)
from ..eval.probe import PROTOCOL, ProbeProtocol, probe
from ..nn.models import SimCLR
from ..precision import precision_for
from ..train.config import preset
from ..train.supervised import SupervisedRecipe, train_classifier


def simclr_views(cfg: AugmentConfig):
    """The default SimCLR policy as a view function (x, g) -> view, via the batched BatchAugment."""
    aug = BatchAugment(cfg)
    return lambda x, g=None: aug(x, generator=g)


# ------------------------------------------------------------------ 2. supervised training (Q6 baseline)


def finetune(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int, run: SupervisedRecipe,
             views, device="cpu", progress: bool = True) -> nn.Sequential:
    """Train ``encoder`` (pretrained: fine-tuning; fresh: supervised from scratch) + a linear layer: the library's
    supervised loop (``train.supervised``), the same for both, so only the initialisation differs."""
    return train_classifier(encoder, images, labels, num_classes, run, views, precision_for(device), progress)


# ------------------------------------------------------------------ 3. the experiments of notebooks 06-09

@dataclass(frozen=True)
class Preset:
    """How big the experiments are: one table, each size with its reason. Every result is measured once per seed."""

    name: str
    n_train: int  # unlabelled training images (Q4: "only 10,000 images"); labels of the same images for the probes
    n_test: int  # held-out images every accuracy is measured on
    seeds: tuple[int, ...]  # every number is a mean +- sd over these
    steps: int  # SimCLR pretraining steps of the main runs (07 large batch, 08, 09)
    batch_size: int  # N pairs per step of the main runs
    widths: tuple[int, ...] | None  # None: the Fashion-MNIST cpu preset's network (32-64-128-1024)
    fig5_ops: tuple[str, ...]
    fig5_steps: int  # per grid cell (06)
    fig5_batch: int
    small_batch: int  # 07's small N
    small_batch_steps: int  # 07, every N = small_batch variant
    queue_sizes: tuple[int, ...]  # 07: MoCo queue lengths K at the small batch (accuracy vs negatives)
    bank_negatives: int  # 07: negatives drawn from the PIRL memory bank per step
    collapse_steps: int  # 08: the alignment-only run (collapses within a few hundred steps)
    finetune_steps: int  # 09: supervised fine-tuning / from-scratch steps
    finetune_batch: int
    embed_points: int  # 08: test images in the t-SNE and UMAP maps

    @property
    def probe_iter(self) -> int:
        """The linear probe's iteration cap: the protocol's (``eval.probe.PROTOCOL``), the same for every preset
        (notebook 09's live cell reads it here)."""
        return PROTOCOL.max_iter


PRESETS = {
    "smoke": Preset("smoke", n_train=256, n_test=128, seeds=(0, 1), steps=3, batch_size=16, widths=(8, 8, 16, 16),
                    fig5_ops=("crop", "color"), fig5_steps=2, fig5_batch=16, small_batch=8, small_batch_steps=3,
                    queue_sizes=(32,), bank_negatives=32, collapse_steps=3, finetune_steps=3, finetune_batch=16,
                    embed_points=60),
    # a 2-core laptop: the four notebook experiments in about 2.5 hours (the cached results); negatives and
    # temperature (phenomena P3, P5) add about 35 and 45 minutes (9 and 12 runs of 1,200 steps at N = 128),
    # pretraining (P1 at length) about 40 (3 runs of 6,000 steps)
    "cpu": Preset("cpu", n_train=10_000, n_test=5000,
                  seeds=(0, 1, 2),  # the fewest that give an sd
                  steps=1200,  # ~2 points over random init (visualize.json); longer runs gain more (pretraining.json,
                  # 6,000 steps), but every experiment multiplies this by its arms x seeds: the CPU budget sets it
                  batch_size=128,  # the preset's N
                  widths=None,
                  fig5_ops=("crop", "cutout", "color", "noise"),  # the paper's strongest op, its best partner, two weak ones
                  fig5_steps=500, fig5_batch=64,  # 17 cells x 3 seeds in ~25 minutes
                  small_batch=32, small_batch_steps=1200,  # same steps as the large batch: 1/4 of its images
                  # K = 40% of the 10,000 images, and 2.5% (is it the number of extra negatives that hurts?)
                  queue_sizes=(256, 4096), bank_negatives=4096,
                  collapse_steps=400,
                  finetune_steps=200, finetune_batch=128,  # or 10 epochs when more (09)
                  embed_points=2000),
    # one GPU: longer runs, all seven Figure-5 operators, all 60,000 training images
    "gpu": Preset("gpu", n_train=60_000, n_test=10_000, seeds=(0, 1, 2), steps=5000, batch_size=256, widths=None,
                  fig5_ops=tuple(FIG5_OPS), fig5_steps=2000, fig5_batch=256, small_batch=32, small_batch_steps=5000,
                  queue_sizes=(1024, 4096, 16384), bank_negatives=16384, collapse_steps=1000, finetune_steps=1500,
                  finetune_batch=256, embed_points=3000),
}


def load_data(n_train: int, n_test: int, dataset: str = "fashion-mnist", root=None, seed: int = 0):
    """(train, test) ImageDatasets: random class-mixed subsets of n_train / n_test images."""
    from ..data.datasets import load_dataset

    train, test = load_dataset(dataset, root, train=True), load_dataset(dataset, root, train=False)
    train = train.subset(min(n_train, len(train)), seed=seed)
    test = test.subset(min(n_test, len(test)), seed=seed + 1)
    return train, test


def probe_of(encoder: nn.Module | None, train, test, device, protocol: ProbeProtocol = PROTOCOL) -> dict:
    """{"knn", "linear"}: top-1 accuracy under the workbook's one protocol (``eval.probe``) of frozen features h of
    un-augmented images (the Fashion-MNIST recipe does not standardise its views, so neither do the features)."""
    return probe(encoder, train, test, device, protocol).scores()


def meta(name: str, preset: Preset, dataset: str, device, t0: float) -> dict:
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
        "protocol": PROTOCOL.describe(),  # every kNN / linear-probe number of the result (eval.probe)
    }


def default_augment(dataset: str) -> AugmentConfig:
    """The training preset's augmentation policy (``train.config``), the one place the experiments read it from:
    for Fashion-MNIST 16x16 crops of at least 20% of the image, flips and brightness/contrast jitter."""
    return preset("cpu", dataset).augment


def default_views(dataset: str):
    """``default_augment`` as a view function (x uint8, g) -> views."""
    return simclr_views(default_augment(dataset))


def views_of_test(model: SimCLR, test, views, device, seed: int = 123):
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


def histogram(values: torch.Tensor, bins: int = 40, lo: float = 0.0, hi: float = 2.0) -> list[int]:
    return torch.histc(values.float(), bins=bins, min=lo, max=hi).long().tolist()
