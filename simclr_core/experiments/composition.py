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
from dataclasses import asdict, replace

from .common import Preset, ShortRun, compose, load_data, meta, pretrain_short, probe_of
from .stats import baselines, over_seeds

__all__ = ["ARMS", "run_composition"]

# arm -> the operators of its two views, in order (None: the preset's default policy, the main run)
ARMS = {"default policy": None, "crop": ("crop",), "color": ("color",), "crop then color": ("crop", "color")}


def run_composition(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                    cache=None) -> dict:
    """kNN and linear probe (mean +- sd over seeds, per-seed values) of each arm of ``ARMS`` pretrained for the
    main runs' steps, with random init and raw pixels under the same protocol."""
    from tqdm.auto import tqdm

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    run = ShortRun(steps=preset.steps, batch_size=preset.batch_size, widths=preset.widths)
    size = run.recipe(dataset, len(train)).augment.size
    arms = {}
    bar = tqdm(total=len(ARMS) * len(preset.seeds), disable=not progress, desc="P2 at length (arms x seeds)")
    for name, ops in ARMS.items():
        views = None if ops is None else compose(list(ops), size=size)
        rows = []
        for seed in preset.seeds:
            model, _ = pretrain_short(train, views, replace(run, seed=seed), device, progress=False, dataset=dataset,
                                      cache=cache)
            rows.append(probe_of(model.encoder, train, test, device))
            bar.update()
        arms[name] = {"ops": list(ops) if ops else None, **over_seeds(rows)}
    bar.close()
    return {**meta("composition", preset, dataset, device, t0), "run": asdict(run), "view_size": size,
            "design": (f"{len(ARMS)} arms of {run.steps} steps at N = {run.batch_size} (the main runs' recipe), "
                       f"{len(preset.seeds)} seeds each, the same seeds on every arm"),
            "variants": arms, "baselines": baselines(train, test, preset, dataset, device, run)}
