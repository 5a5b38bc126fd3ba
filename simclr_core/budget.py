"""Fitting a pretraining run into a time budget: ``TrainConfig.minutes`` -> ``max_steps``.

The same cpu-preset step runs at very different speeds on different 2-core machines: on Fashion-MNIST, 2800
images/s where the CPU computes bfloat16 natively (AVX512-BF16) and 790 images/s on an AVX2-only CPU in float32
(the README's measurements), so a fixed number of epochs that takes 8 minutes on one laptop takes 24 on another.
With ``minutes`` set, the trainer plans the run before it starts:

1. time a few training steps on a *copy* of the model (its own optimizer, batches and random stream; the real
   model, optimizer and generators are untouched, so the run is the same as one given ``max_steps`` directly),
2. time one pass of the per-epoch kNN monitor,
3. take the most steps T (at most ``epochs`` epochs) with  T * step_s + ceil(T / steps_per_epoch) * monitor_s
   <= 60 * minutes,

and sets ``max_steps = T``: the warmup + cosine schedule then ends exactly at the budget, where a plain time limit
(``time_limit_s``) would stop a run half-way down its schedule. The resolved ``max_steps`` is stored in config.json
and in every checkpoint, so a resumed run keeps the schedule it started with. Checkpoint writing and the final
probe are not in the budget.

Read bottom-up: ``steps_in_budget`` is the arithmetic, ``time_steps`` and ``time_monitor`` the two measurements,
``plan_steps`` puts them together, ``plan_run`` does all of it for a run's config (the trainer and notebook 05 call it).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["steps_in_budget", "time_steps", "time_monitor", "plan_steps", "plan_run", "BudgetPlan"]


def steps_in_budget(budget_s: float, step_s: float, monitor_s: float, steps_per_epoch: int, max_steps: int) -> int:
    """The most steps T <= max_steps with  T * step_s + ceil(T / steps_per_epoch) * monitor_s <= budget_s  (at least 1).

    Every epoch that holds a step, the last partial one included, pays one kNN monitor pass."""
    for name, v in (("budget_s", budget_s), ("step_s", step_s)):
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number of seconds > 0, got {v!r}")
    if not (isinstance(monitor_s, (int, float)) and monitor_s >= 0 and math.isfinite(monitor_s)):
        raise ValueError(f"monitor_s must be a finite number of seconds >= 0, got {monitor_s!r}")
    for name, v in (("steps_per_epoch", steps_per_epoch), ("max_steps", max_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    eps = 1e-9  # 2.0 // 0.1 is 19.0 and 0.3 / 0.1 is 2.9999999999999996 in floating point: count what fits exactly
    epoch_s = steps_per_epoch * step_s + monitor_s
    full = math.floor(budget_s / epoch_s + eps)  # whole epochs that fit
    left = budget_s - full * epoch_s  # seconds for a last, partial epoch (which pays its own monitor pass)
    extra = math.floor((left - monitor_s) / step_s + eps) if left > monitor_s else 0
    T = full * steps_per_epoch + min(extra, steps_per_epoch - 1)
    return max(1, min(T, max_steps))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model: nn.Module, make_optimizer, augment: nn.Module, images: torch.Tensor, batch_size: int,
               temperature: float, device: torch.device, channels_last: bool = False, autocast_dtype=None,
               seconds: float = 3.0, warmup: int = 5, max_timed: int = 50) -> float:
    """Seconds per training step (the median of the timed steps), measured on a deep copy of ``model`` (so
    ``model`` is unchanged).

    ``make_optimizer(module)`` builds the optimizer for the copy. ``warmup`` untimed steps first (kernel selection,
    allocator), then timed steps until ``seconds`` have passed (at least 5, at most ``max_timed``)."""
    from .trainer import simclr_loss  # the trainer's own step, not a copy of it

    if images.shape[0] < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the {images.shape[0]} training images")
    twin = copy.deepcopy(model)
    twin.train()
    opt = make_optimizer(twin)
    g = torch.Generator().manual_seed(0)  # its own stream: the run's generators are not advanced
    n_batches = images.shape[0] // batch_size

    def step(i: int) -> None:
        j = i % n_batches
        x = images[j * batch_size:(j + 1) * batch_size].to(device, non_blocking=True)  # (N, C, H, W) uint8
        loss = simclr_loss(twin, augment, x, temperature, g, channels_last=channels_last, autocast_dtype=autocast_dtype)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(warmup):
        step(i)
    _sync(device)
    times, start = [], time.perf_counter()
    while len(times) < 5 or (len(times) < max_timed and time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        step(warmup + len(times))
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)  # robust to a step slowed by the machine's other work


def time_monitor(monitor) -> float:
    """Seconds for one call of ``monitor()`` (the trainer's kNN monitor pass)."""
    t0 = time.perf_counter()
    monitor()
    return time.perf_counter() - t0


@dataclass(frozen=True)
class BudgetPlan:
    """What the budget bought: ``steps`` of the run, from the measured seconds per step and per monitor pass."""

    minutes: float
    step_s: float
    monitor_s: float
    steps_per_epoch: int
    steps: int
    planned_steps: int  # epochs * steps_per_epoch: what the run would do without a budget

    @property
    def epochs(self) -> float:
        return self.steps / self.steps_per_epoch

    def describe(self) -> str:
        return (f"time budget {self.minutes:g} min: {1000 * self.step_s:.0f} ms/step and {self.monitor_s:.1f} s per kNN "
                f"monitor pass measured here, so {self.steps} steps ({self.epochs:.2f} epochs"
                + (f" of the {self.planned_steps / self.steps_per_epoch:g} planned)" if self.steps < self.planned_steps
                   else ", all that were planned)"))


def plan_steps(minutes: float, step_s: float, monitor_s: float, steps_per_epoch: int, planned_steps: int) -> BudgetPlan:
    """The ``BudgetPlan`` for ``minutes`` from the two measurements."""
    if not (isinstance(minutes, (int, float)) and minutes > 0 and math.isfinite(minutes)):
        raise ValueError(f"minutes must be a finite number > 0, got {minutes!r}")
    steps = steps_in_budget(60.0 * minutes, step_s, monitor_s, steps_per_epoch, planned_steps)
    return BudgetPlan(minutes, step_s, monitor_s, steps_per_epoch, steps, planned_steps)


def plan_run(cfg, model: nn.Module, augment: nn.Module, images: torch.Tensor, steps_per_epoch: int,
             device: torch.device, channels_last: bool = False, autocast_dtype=None, monitor=None,
             batch_size: int | None = None) -> BudgetPlan:
    """The plan for ``cfg.minutes`` of the run ``cfg`` (a TrainConfig) on this machine: its step timed on a copy of
    ``model`` with the run's optimizer settings, and one pass of ``monitor()`` (None: no monitor)."""
    from .schedule import build_optimizer, scaled_lr

    if cfg.minutes is None:
        raise ValueError("plan_run needs cfg.minutes (a time budget in minutes), got None")
    peak = scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling)
    step_s = time_steps(model, lambda m: build_optimizer(cfg.optimizer, m, peak, cfg.momentum, cfg.weight_decay),
                        augment, images, batch_size or cfg.batch_size, cfg.temperature, device, channels_last,
                        autocast_dtype)
    monitor_s = time_monitor(monitor) if monitor is not None else 0.0
    return plan_steps(cfg.minutes, step_s, monitor_s, steps_per_epoch, cfg.epochs * steps_per_epoch)
