"""One short SimCLR run of the library's trainer, as every experiment of notebooks 06-09 trains it: ``ShortRun`` (the
cpu preset's recipe with an experiment's batch, steps and loss variant), ``pretrain_short`` and the run cache that
keeps finished runs (``run_cache_file``)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import checks
from ..data.datasets import data_digest
from ..data.fast_augment import BatchAugment
from ..nn.models import SimCLR
from ..train.config import Recipe, RunOptions, preset
from ..train.loop import Callback
from ..train.runs import pretrain
from ..train.step import AlignmentObjective, GroupedObjective, MemoryBankObjective, QueueObjective, check_group_pairs
from ..train.step import build_model as _build_model

__all__ = ["BANK_DRAWS", "ShortRun", "build_model", "run_cache_file", "pretrain_short"]

BANK_DRAWS = "skip the batch's images"  # train.step.MemoryBankObjective: no anchor meets its own stored entry


@dataclass(frozen=True)
class ShortRun:
    """One SimCLR run of the Fashion-MNIST ``cpu`` preset's recipe (its network, SGD, lr, schedule, tau, weight
    decay and augmentation), with the batch size, steps and loss variant of an experiment."""

    steps: int = 500
    batch_size: int = 128  # N pairs per step
    temperature: float = 0.2
    widths: tuple[int, ...] | None = None  # None: the preset's network (32-64-128-1024)
    head: bool = True  # False: z = h, the loss is applied to the representation itself
    head_dim: int = 128
    queue_size: int = 0  # > 0: extra negatives from a FIFO of past keys (MoCo)
    momentum: float | None = None  # set (e.g. 0.99): keys come from an EMA copy of the network (MoCo)
    bank_negatives: int = 0  # > 0: this many negatives drawn from a memory bank of one embedding per image (PIRL)
    negatives: bool = True  # False: alignment-only loss -cos(z1, z2), the collapsing ablation
    seed: int = 0
    group_pairs: int = 0  # > 0: NT-Xent within groups of this many pairs (2m - 2 negatives, still N images per step)
    bank_refresh: int = 0  # > 0, with a bank: every this many steps the bank is re-encoded by the current network

    def __post_init__(self):
        for name in ("steps", "batch_size", "head_dim"):
            checks.positive_int(name, getattr(self, name))
        checks.nonnegative_int("queue_size", self.queue_size)
        checks.nonnegative_int("bank_negatives", self.bank_negatives)
        if checks.nonnegative_int("bank_refresh", self.bank_refresh) and not self.bank_negatives:
            raise ValueError(f"bank_refresh={self.bank_refresh} re-encodes a memory bank: set bank_negatives > 0")
        checks.nonnegative_int("seed", self.seed)
        if checks.nonnegative_int("group_pairs", self.group_pairs):
            check_group_pairs(self.group_pairs, self.batch_size)

    @property
    def negatives_per_anchor(self) -> int:
        """2N - 2 in-batch negatives (2m - 2 within groups of m pairs), plus the queue's or the bank's."""
        if self.group_pairs and self.negatives:
            return 2 * self.group_pairs - 2
        return 2 * self.batch_size - 2 + self.queue_size + self.bank_negatives if self.negatives else 0

    def recipe(self, dataset: str, n_images: int) -> Recipe:
        """The trainer's recipe: the dataset's cpu preset with this run's size, steps and seed."""
        epochs = max(1, math.ceil(self.steps / max(1, n_images // self.batch_size)))
        size = {} if self.widths is None else {"widths": self.widths}
        return preset("cpu", dataset, **size, head=self.head, proj_dim=self.head_dim,
                      batch_size=self.batch_size, temperature=self.temperature, epochs=epochs,
                      warmup_epochs=min(0.5, epochs), max_steps=self.steps, minutes=None, seed=self.seed,
                      monitor_train=min(1000, n_images), monitor_test=200)

    def objective(self, images: torch.Tensor, dataset: str):
        """The loss variant, as a function of the model (the trainer builds the model); ``images``: the training
        images (n, C, H, W) uint8, which a refreshed bank re-encodes at the recipe's view size."""
        n_images = len(images)
        if not self.negatives:
            return lambda model: AlignmentObjective(self.temperature)
        if self.queue_size:
            return lambda model: QueueObjective(self.temperature, model, self.queue_size, self.momentum)
        if self.bank_negatives:
            # re-encoding draws two views of every image, as a step does; a bank that is never re-encoded needs none
            views = BatchAugment(self.recipe(dataset, n_images).augment) if self.bank_refresh else None
            return lambda model: MemoryBankObjective(
                self.temperature, model, n_images, self.bank_negatives, seed=self.seed, refresh_every=self.bank_refresh,
                images=None if views is None else images,
                view=None if views is None else views.to(next(model.parameters()).device))
        if self.group_pairs:
            return lambda model: GroupedObjective(self.temperature, self.group_pairs, self.batch_size)
        return None

    def key(self) -> dict:
        """What identifies the run in the cache: its fields, less ``group_pairs`` when it is 0 (plain SimCLR), so
        that the runs cached before grouping existed keep their keys; a memory-bank run also names the bank's
        draws (``BANK_DRAWS``), so that no run of a bank that could draw the anchor's own entry is found again."""
        fields = asdict(self)
        for name in ("group_pairs", "bank_refresh"):  # 0: the runs cached before the option existed
            if not fields[name]:
                del fields[name]
        if self.bank_negatives:
            fields["bank_draws"] = BANK_DRAWS
        return fields


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
    """The network a run of ``run`` starts from (its random-init baseline: seeded by ``run.seed``)."""
    return _build_model(run.recipe(dataset, 1_000_000))


def run_cache_file(cache, train, views, run: ShortRun, dataset: str) -> Path | None:
    """Where a finished run is kept, keyed by everything that determines it; None when it cannot be keyed
    (a view function without a stable description, e.g. a lambda)."""
    if cache is None:
        return None
    key_views = "recipe" if views is None else repr(views)
    if " at 0x" in key_views:
        return None
    key = json.dumps({"run": run.key(), "dataset": dataset, "data": data_digest(train), "n": len(train),
                      "views": key_views, "torch": torch.__version__}, sort_keys=True)
    return Path(cache) / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


def pretrain_short(train, views, run: ShortRun, device="cpu", progress: bool = True, callback=None, every: int = 0,
                   dataset: str = "fashion-mnist", cache=None):
    """Pretrain f and g on ``train`` (an ImageDataset) through the library's trainer with the view function
    ``views(x, g)`` (None: the preset's augmentation policy). ``callback(step, model)`` is called every ``every``
    steps (e.g. a kNN evaluation for a curve). ``cache``: a folder where finished runs are kept and found again
    (runs with a callback are not cached). Returns (model, history) with history = {"step": [...], "loss": [...]}."""
    file = run_cache_file(cache, train, views, run, dataset) if callback is None else None
    recipe = run.recipe(dataset, len(train))
    if file is not None and file.is_file():
        state = torch.load(file, map_location="cpu", weights_only=True)
        model = _build_model(recipe)
        model.load_state_dict(state["model"])
        return model.to(device), state["history"]
    t0 = time.time()
    losses = _Losses()
    cbs = [losses] + ([_Every(every, callback)] if callback is not None and every else [])
    res = pretrain(recipe, RunOptions(device=str(device), progress=progress), train, train,
                   objective=run.objective(train.images, dataset), augment=views, callbacks=cbs)
    loss = [float(v) for v in losses.losses]
    history = {"step": list(range(1, len(loss) + 1)), "loss": loss, "train_s": round(time.time() - t0, 1)}
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        state = {k: v.detach().cpu() for k, v in res.model.state_dict().items()}
        torch.save({"model": state, "history": history}, tmp)
        os.replace(tmp, file)
    return res.model, history
