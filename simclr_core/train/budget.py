"""Fitting a pretraining run into a time budget: ``Recipe.minutes`` (``simclr_core.train.config``) -> ``max_steps``.

The same step runs at very different speeds on different 2-core machines (a CPU that computes bfloat16 natively
against one that does not differs several-fold; docs/benchmarks.md records them), so a fixed number of epochs
that fits one laptop's budget overruns another's. With ``minutes`` set, the trainer plans the run before it starts:

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
``plan_steps`` puts them together (notebook 05 calls them with the trainer's twin), ``plan_for_trainer`` does all
three for a ``train.loop.Trainer`` (``runs.pretrain``), and ``short_budget_warning`` is what a run of fewer than
``MIN_USEFUL_EPOCHS`` epochs is told.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace

import torch

from .. import checks
from .process_group import min_over_processes

__all__ = ["steps_in_budget", "time_steps", "time_monitor", "plan_steps", "plan_for_trainer", "BudgetPlan",
           "MIN_USEFUL_EPOCHS", "short_budget_warning"]

# below half an epoch the presets' learning-rate warmup (0.25-0.5 epochs) has barely ended, and the encoder's kNN
# accuracy stays at or below its random initialisation's (docs/benchmarks.md, "how short a pretraining learns nothing")
MIN_USEFUL_EPOCHS = 0.5


def steps_in_budget(budget_s: float, step_s: float, monitor_s: float, steps_per_epoch: int, max_steps: int) -> int:
    """The most steps T <= max_steps with  T * step_s + ceil(T / steps_per_epoch) * monitor_s <= budget_s  (at least 1).

    Every epoch that holds a step, the last partial one included, pays one kNN monitor pass."""
    checks.positive_float("budget_s", budget_s, "of seconds")
    checks.positive_float("step_s", step_s, "of seconds")
    checks.nonnegative_float("monitor_s", monitor_s, "of seconds")
    checks.positive_int("steps_per_epoch", steps_per_epoch)
    checks.positive_int("max_steps", max_steps)
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


def time_steps(step, device: torch.device, seconds: float = 3.0, warmup: int = 5, max_timed: int = 50) -> float:
    """Seconds per call of ``step()`` (the median of the timed calls): ``warmup`` untimed calls first (kernel
    selection, allocator), then timed calls until ``seconds`` have passed (at least 5, at most ``max_timed``).

    The trainer passes the step of a *twin* (``Trainer.twin()``: a deep copy of the model, its own optimizer and
    random stream), so the run itself is untouched."""
    for _ in range(warmup):
        step()
    _sync(device)
    times, start = [], time.perf_counter()
    while len(times) < 5 or (len(times) < max_timed and time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        step()
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
    checks.positive_float("minutes", minutes)
    steps = steps_in_budget(60.0 * minutes, step_s, monitor_s, steps_per_epoch, planned_steps)
    return BudgetPlan(minutes, step_s, monitor_s, steps_per_epoch, steps, planned_steps)


def plan_for_trainer(minutes: float, epochs: int, trainer, monitor, world: int, is_main: bool) -> BudgetPlan:
    """The steps of ``trainer``'s run that fit ``minutes``: the step timed on the trainer's twin, one ``monitor``
    pass (on the main process only); under torchrun every process takes the smallest plan (they must agree on the
    schedule)."""
    twin = trainer.twin()
    step_s = time_steps(twin.step, trainer.precision.device)
    monitor_s = time_monitor(lambda: monitor(trainer)) if (is_main and monitor is not None) else 0.0
    plan = plan_steps(minutes, step_s, monitor_s, trainer.steps_per_epoch, epochs * trainer.steps_per_epoch)
    if world > 1:
        plan = replace(plan, steps=min_over_processes(plan.steps))
    return plan


def short_budget_warning(epochs: float) -> str:
    """What a run of ``epochs`` (< MIN_USEFUL_EPOCHS) should be told."""
    return (f"warning: {epochs:.2f} epochs is too short to learn anything: below {MIN_USEFUL_EPOCHS:g} epochs the "
            f"learning-rate warmup has barely ended and the encoder's kNN accuracy stays at or below its random "
            f"initialisation's; give --minutes enough for at least {MIN_USEFUL_EPOCHS:g} epochs (or use --epochs)")
