"""Phenomenon P5 (issue 34, exercise Q2.2): which temperature does a training run prefer?

Notebook 02 measures the NT-Xent loss at several tau; what matters is what a network trained at each tau learns.
Every arm here is the main runs' SimCLR (``short_run.ShortRun``: batch, steps, network, augmentation) with only tau
changed, trained from the same initial weights on the same image order (the seed) and probed under the
workbook's one protocol (``eval.probe``). tau = 0.2 is the recipe's own, the run ``small_batch`` and
``visualize`` cache. The phenomena table (``phenomena``) reads the tau with the best mean kNN against every other
tau, paired per seed.
"""

from __future__ import annotations

import time
from dataclasses import replace

from .common import Preset, load_data, meta
from .short_run import ShortRun
from .negatives import measure_arms
from .stats import baselines

__all__ = ["TEMPERATURES", "arms", "arm_name", "run_temperature"]

# the paper's Table 5 range (0.05..1.0), with the recipe's 0.2 among them; smoke: two, to exercise the code only
TEMPERATURES = {"smoke": (0.1, 1.0), "cpu": (0.05, 0.1, 0.2, 0.5, 1.0), "gpu": (0.05, 0.1, 0.2, 0.5, 1.0)}


def arm_name(tau: float) -> str:
    return f"tau={tau:g}"


def arms(preset: Preset) -> dict[str, ShortRun]:
    base = ShortRun(steps=preset.steps, batch_size=preset.batch_size, widths=preset.widths)
    return {arm_name(t): replace(base, temperature=float(t)) for t in TEMPERATURES[preset.name]}


def run_temperature(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                    cache=None) -> dict:
    """kNN and linear probe (mean +- sd over seeds, per-seed values) of a run at every tau, its final loss and
    training time, next to random init and raw pixels."""
    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    runs = arms(preset)
    out = measure_arms(runs, train, test, preset, dataset, device, progress, cache, "temperature (tau x seeds)")
    for name, run in runs.items():
        out[name]["temperature"] = run.temperature
    taus = list(TEMPERATURES[preset.name])
    return {**meta("temperature", preset, dataset, device, t0), "temperatures": taus,
            "design": (f"every arm: N = {preset.batch_size}, {preset.steps} steps, same seeds, initial weights and "
                       f"image order; only tau changes; the phenomena table reads the tau of the best mean kNN "
                       f"against each other tau, paired per seed"),
            "variants": out,
            "baselines": baselines(train, test, preset, dataset, device, runs[arm_name(taus[0])])}
