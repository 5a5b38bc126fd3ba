"""The pieces the experiments of notebooks 06-09 share: a short run of the library's trainer (``ShortRun``,
``pretrain_short``), the supervised baseline (``finetune``), the experiment sizes (``Preset``), data, probes and
the record every result carries (``meta``)."""

from __future__ import annotations

import math
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .. import checks
from ..data.augment import AugmentConfig
from ..data.fast_augment import BatchAugment
from ..data.fig5 import FIG5_OPS, compose  # noqa: F401 (re-exported)
from ..nn.models import SMALL_CNN_WIDTHS, SimCLR
from ..precision import precision_for
from ..train.config import Recipe, RunOptions, preset
from ..train.loop import Callback
from ..train.runs import pretrain
from ..train.step import AlignmentObjective, MemoryBankObjective, QueueObjective
from ..train.step import build_model as _build_model
from ..train.supervised import SupervisedRecipe, train_classifier


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
    }


def default_views(dataset: str, size: int):
    """The paper's CIFAR-10 policy (crop + flip + colour s = 0.5 + grayscale). On 28x28 grayscale
    Fashion-MNIST the colour ops reduce to brightness/contrast jitter and the crop keeps at least 20% of
    the area (8% of 28x28 is a 8x8 patch), as in simclr_core.config's Fashion-MNIST recipe."""
    if dataset == "fashion-mnist":
        return simclr_views(AugmentConfig(size=size, crop_scale=(0.2, 1.0), grayscale=False))
    return simclr_views(AugmentConfig(size=size))


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
