"""Phenomenon P2 at the main runs' length (notebook 06): crop, colour and crop then colour, each pretrained as long
as the main runs, beside the default policy and random init.

The Figure 5 grid (``fig5``) trains its 17 cells x 3 seeds for ``Preset.fig5_steps`` short steps, too short for the
default policy to beat the untrained network by kNN. Here fewer arms train ``Preset.steps`` steps at
``Preset.batch_size`` (the main runs' recipe, which beats random init by both probes, P1): the default policy is
the main run itself (shared through the run cache), and the three composition arms differ from it only in the
view function (``common.compose``, the grid's operators at the preset's view size). Every arm is paired per seed
with the others and with the same network at its initial weights.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from .common import Preset, compose, load_data, meta
from .short_run import ShortRun
from .negatives import measure_arms
from .stats import baselines

__all__ = ["ARMS", "run_composition"]

# arm -> the operators of its two views, in order (None: the preset's default policy, the main run)
ARMS = {"default policy": None, "crop": ("crop",), "color": ("color",), "crop then color": ("crop", "color")}


def run_composition(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                    cache=None) -> dict:
    """kNN and linear probe (mean +- sd over seeds, per-seed values) of each arm of ``ARMS`` pretrained for the
    main runs' steps, with random init and raw pixels under the same protocol."""
    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    run = ShortRun(steps=preset.steps, batch_size=preset.batch_size, widths=preset.widths)
    size = run.recipe(dataset, len(train)).augment.size
    views = {name: compose(list(ops), size=size) for name, ops in ARMS.items() if ops is not None}
    arms = measure_arms({name: run for name in ARMS}, train, test, preset, dataset, device, progress, cache,
                        "P2 at length (arms x seeds)", views)
    for name, ops in ARMS.items():
        arms[name]["ops"] = list(ops) if ops else None
    return {**meta("composition", preset, dataset, device, t0), "view_size": size,
            "design": (f"{len(ARMS)} arms of {run.steps} steps at N = {run.batch_size} (the main runs' recipe), "
                       f"{len(preset.seeds)} seeds each, the same seeds on every arm"),
            "run": asdict(run), "variants": arms, "baselines": baselines(train, test, preset, dataset, device, run)}
