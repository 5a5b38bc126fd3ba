"""Supervised baselines with the pretraining's own pieces: training from scratch and fine-tuning (exercise Q6).

``train_classifier`` trains an encoder + linear layer with cross-entropy on labelled images. It shares the SimCLR
trainer's optimizer (``schedule.build_optimizer``: SGD with momentum, no weight decay on BN and biases), its
warmup + cosine schedule (``schedule.lr_at``), its per-epoch shuffling (``loop.epoch_order``) and its precision
policy (``simclr_core.precision``), so a fine-tuned SimCLR encoder and one trained from scratch differ only in
where their weights start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks
from ..precision import Precision
from .loop import epoch_generator, epoch_order
from .schedule import OPTIMIZERS, build_optimizer, lr_at, set_lr

__all__ = ["SupervisedRecipe", "train_classifier", "accuracy"]


@dataclass(frozen=True)
class SupervisedRecipe:
    """Steps, batch and optimizer of a supervised run. lr is the peak (not scaled by the batch size)."""

    steps: int = 1000
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_frac: float = 0.05  # of the steps
    seed: int = 0

    def __post_init__(self):
        checks.positive_int("steps", self.steps)
        checks.positive_int("batch_size", self.batch_size)
        checks.one_of("optimizer", self.optimizer, OPTIMIZERS)
        checks.positive_float("lr", self.lr)
        checks.nonnegative_float("weight_decay", self.weight_decay)
        checks.probability("warmup_frac", self.warmup_frac)
        checks.nonnegative_int("seed", self.seed)


def _check_labelled(images, labels, num_classes: int) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.dtype != torch.uint8 or images.shape[0] < 1:
        raise ValueError(f"images must be a non-empty uint8 tensor (N, C, H, W), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    checks.class_indices("labels", labels, images.shape[0], num_classes)


def train_classifier(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     recipe: SupervisedRecipe, augment, precision: Precision, progress: bool = True) -> nn.Sequential:
    """Train ``encoder`` (pretrained: fine-tuning; fresh: from scratch) + a linear layer on uint8 ``images`` with
    the views ``augment(x, generator)``; returns nn.Sequential(encoder, linear) in eval mode."""
    checks.positive_int("num_classes", num_classes)
    _check_labelled(images, labels, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        linear = nn.Linear(encoder.out_dim, num_classes)
    clf = precision.prepare(nn.Sequential(encoder, linear))
    opt = build_optimizer(recipe.optimizer, clf, recipe.lr, recipe.momentum, recipe.weight_decay)
    n = images.shape[0]
    B = min(recipe.batch_size, n)
    steps_per_epoch = n // B
    warmup = round(recipe.warmup_frac * recipe.steps)
    X = precision.hold(images)
    Y = labels.to(X.device)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=recipe.steps, desc="supervised", unit="step", leave=False)
    clf.train()
    for epoch in range(math.ceil(recipe.steps / steps_per_epoch)):
        order = epoch_order(n, recipe.seed, epoch, 0, 1, B).to(X.device)  # (steps, B)
        g = epoch_generator(recipe.seed, epoch)
        for i in range(min(steps_per_epoch, recipe.steps - epoch * steps_per_epoch)):
            set_lr(opt, lr_at(epoch * steps_per_epoch + i, recipe.steps, warmup, recipe.lr))
            idx = order[i]
            x = augment(X[idx].to(precision.device, non_blocking=True), g)  # (B, C, s, s) views
            with precision.autocast():
                logits = clf(precision.inputs(x))  # (B, classes)
            loss = F.cross_entropy(logits.float(), Y[idx].to(precision.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return clf.eval()


@torch.no_grad()
def accuracy(clf: nn.Module, images: torch.Tensor, labels: torch.Tensor, precision: Precision,
             batch_size: int = 1024) -> float:
    """Top-1 accuracy (fraction) of a classifier on un-augmented uint8 images."""
    from ..eval.features import extract_features

    logits = extract_features(clf, images, batch_size, precision)  # (N, classes): the "features" are the logits
    return float((logits.argmax(1) == labels).float().mean())
