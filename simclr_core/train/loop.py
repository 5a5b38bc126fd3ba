"""The one SimCLR training loop: ``Trainer``, configured by a recipe, an objective and callbacks.

Every pretraining in the project runs through it: the ``simclr pretrain`` command and torchrun (``runs.pretrain``),
the experiments behind notebooks 06-09, the benchmarks (one ``step()`` at a time, interleaved with another
pipeline) and the time budget's twin run. What varies is passed in, never rewritten:

- ``objective`` (``train.step``): plain SimCLR, a queue / momentum encoder (MoCo), a memory bank, no negatives;
- ``augment``: the recipe's ``BatchAugment`` by default, any ``(x uint8, generator) -> view`` (Figure 5's ops);
- ``lr_fn(step) -> lr``: the recipe's warmup + cosine schedule by default;
- ``callbacks`` (``train.callbacks``): kNN monitor, checkpoints and metrics.jsonl, progress bar, time limit.

Randomness: the shuffle and the augmentation of epoch e on process r come from generators derived from
(seed, e, r), so a run resumed at an epoch boundary redraws exactly the batches and views an uninterrupted run
draws. Read bottom-up: ``epoch_generator`` -> ``epoch_order`` -> ``Trainer.step`` -> ``Trainer.fit``.
"""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn as nn

from ..data.fast_augment import BatchAugment
from ..precision import Precision
from .config import Recipe
from .schedule import build_optimizer, lr_at, scaled_lr, set_lr
from .step import SimCLRObjective

__all__ = ["Trainer", "Callback", "epoch_generator", "epoch_order"]

_SHUFFLE_STREAM = 999_983  # the 'rank' whose generator shuffles (shared by all ranks)


def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The CPU generator for shuffling + augmentation in epoch ``epoch`` on process ``rank``."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_009 + rank) % (2**63 - 1))


def epoch_order(n: int, seed: int, epoch: int, rank: int, world_size: int, batch_size: int) -> torch.Tensor:
    """This rank's image indices for the epoch as (steps, batch_size // world_size); the incomplete last batch is dropped."""
    perm = torch.randperm(n, generator=epoch_generator(seed, epoch, rank=_SHUFFLE_STREAM))  # same on all ranks
    per_rank = batch_size // world_size
    steps = n // batch_size
    if steps < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} training images")
    return perm[: steps * batch_size].view(steps, world_size, per_rank)[:, rank]  # (steps, per_rank)


class Callback:
    """Hooks of the loop; override what you need. ``row`` is the epoch's record (callbacks may add keys)."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", loss: torch.Tensor) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", row: dict) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


class Trainer:
    """SimCLR pretraining of ``model`` on uint8 ``images`` (n, C, H, W) under ``recipe``.

    ``step()`` runs one optimisation step (the benchmark drives it directly); ``fit()`` runs until ``total_steps``
    or until a callback sets ``should_stop``. ``forward_model`` is what the step calls (a DDP wrapper under
    torchrun; ``model`` itself otherwise). ``start_epoch`` > 0 continues a resumed run.
    """

    def __init__(self, recipe: Recipe, model: nn.Module, images: torch.Tensor, precision: Precision, *,
                 objective=None, augment=None, callbacks=(), lr_fn=None, total_steps: int | None = None,
                 start_epoch: int = 0, rank: int = 0, world_size: int = 1, forward_model: nn.Module | None = None):
        self.recipe, self.model, self.images, self.precision = recipe, model, images, precision
        self.forward_model = forward_model if forward_model is not None else model
        self.objective = objective if objective is not None else SimCLRObjective(recipe.temperature)
        self.augment = augment if augment is not None else BatchAugment(recipe.augment).to(precision.device)
        self.callbacks = list(callbacks)
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = images.shape[0] // recipe.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size {recipe.batch_size} is larger than the {images.shape[0]} training images; "
                             f"lower batch_size")
        planned = recipe.epochs * self.steps_per_epoch
        self.total_steps = min(total_steps or recipe.max_steps or planned, planned)
        self.peak_lr = scaled_lr(recipe.lr, recipe.batch_size, recipe.lr_scaling)
        self.warmup_steps = round(recipe.warmup_epochs * self.steps_per_epoch)
        self.lr_fn = lr_fn or (lambda t: lr_at(t, self.total_steps, self.warmup_steps, self.peak_lr))
        self.optimizer = build_optimizer(recipe.optimizer, model, self.peak_lr, recipe.momentum, recipe.weight_decay)
        self.global_step = start_epoch * self.steps_per_epoch
        self.should_stop = False
        self.history: list[dict] = []
        self._epoch = None  # (epoch, order, generator) of the epoch in progress
        self._epoch_loss = torch.zeros((), device=precision.device)
        self._epoch_steps, self._epoch_t0, self._lr = 0, None, float("nan")

    @property
    def epoch(self) -> int:
        return self.global_step // self.steps_per_epoch

    @property
    def last_epoch(self) -> int:
        """Number of epochs that hold at least one step."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def lr(self) -> float:
        """The learning rate of the last step."""
        return self._lr

    @property
    def done(self) -> bool:
        return self.global_step >= self.total_steps

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        e, i = divmod(self.global_step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != e:
            r = self.recipe
            order = epoch_order(self.images.shape[0], r.seed, e, self.rank, self.world_size, r.batch_size)
            self._epoch = (e, order.to(self.images.device), epoch_generator(r.seed, e, self.rank))
            self._epoch_loss.zero_()
            self._epoch_steps, self._epoch_t0 = 0, time.perf_counter()
        idx = self._epoch[1][i]  # (N,) dataset indices of this step's images
        return idx, self.images[idx].to(self.precision.device, non_blocking=True), self._epoch[2]

    def step(self) -> torch.Tensor:
        """One step at ``global_step``: lr, two views, loss, backward, update; returns the loss (detached)."""
        self.forward_model.train()
        idx, x, g = self._batch()  # x (N, C, H, W) uint8 on the device
        self._lr = self.lr_fn(self.global_step)
        set_lr(self.optimizer, self._lr)
        v1, v2 = self.augment(x, g), self.augment(x, g)  # (N, C, s, s) each: t(x) and t'(x)
        loss = self.objective.loss(self.forward_model, v1, v2, idx, self.precision)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.objective.after_step(self.model)
        loss = loss.detach()
        self._epoch_loss += loss
        self._epoch_steps += 1
        self.global_step += 1
        for cb in self.callbacks:
            cb.on_step_end(self, loss)
        if self.global_step % self.steps_per_epoch == 0 or self.done:
            self._end_epoch(partial=False)
        return loss

    def _end_epoch(self, partial: bool) -> None:
        seconds = time.perf_counter() - self._epoch_t0
        loss = self._epoch_loss
        if self.world_size > 1:  # log the global-batch loss, not rank 0's share (every rank reaches this line)
            from .process_group import reduce_mean

            loss = reduce_mean(loss)
        n = max(self._epoch_steps, 1)
        row = {"epoch": self._epoch[0], "loss": float(loss) / n, "lr": self._lr, "steps": self._epoch_steps,
               "images_per_s": self._epoch_steps * self.recipe.batch_size / seconds, "train_seconds": seconds}
        if partial:
            row["partial"] = True  # stopped mid-epoch: reported, but neither checkpointed nor in metrics.jsonl
        if not math.isfinite(row["loss"]):  # before any callback: no monitor on NaN features, no NaN checkpoint
            raise ValueError(f"the loss of epoch {row['epoch'] + 1} is {row['loss']}: training diverged (learning rate "
                             f"{self._lr:.3g}, weight decay {self.recipe.weight_decay:g}); lower --lr or --weight-decay "
                             f"(a run folder keeps its last finite checkpoint)")
        for cb in self.callbacks:
            cb.on_epoch_end(self, row)
        self.history.append(row)

    def fit(self) -> list[dict]:
        """Train until ``total_steps`` or a callback's ``should_stop``; returns the history of epoch rows."""
        for cb in self.callbacks:
            cb.on_fit_start(self)
        try:
            while not self.done and not self.should_stop:
                self.step()
            if self.should_stop and self._epoch_steps and self.global_step % self.steps_per_epoch:
                self._end_epoch(partial=True)
        finally:
            for cb in self.callbacks:
                cb.on_fit_end(self)
        return self.history

    @property
    def stopped_early(self) -> bool:
        return not self.done

    def twin(self) -> "Trainer":
        """A copy to time steps on: its own model, optimizer, objective state and random streams, no callbacks;
        stepping it leaves this trainer exactly as it was."""
        model = copy.deepcopy(self.model)
        # under torchrun the twins of different processes take different numbers of steps: no collectives
        objective = copy.deepcopy(self.objective) if self.world_size == 1 else SimCLRObjective(self.recipe.temperature)
        return Trainer(self.recipe, model, self.images, self.precision, objective=objective,
                       augment=self.augment, lr_fn=lambda t: self.peak_lr)
