"""Phenomenon P1 (issue 34): how long must SimCLR pretrain before it clearly beats its own random init?

The main runs (``Preset.steps``: 1,200 steps at N = 128 on the cpu preset) put SimCLR about 2 points above the
same network untrained, by kNN and by the linear probe: real, but small. Here one longer run per seed
(``LONG_STEPS``) is probed under the workbook's one protocol (``eval.probe``) at ``CHECKPOINTS`` evenly spaced
steps, and its last probe is paired, seed by seed, with the same network at its initial weights. The curve is one
run's: its learning-rate schedule is the long run's, so its point at 1,200 steps is not a 1,200-step run.

A seed's probes are kept in the cache folder (``<run key>.curve.json``) once its run has finished, so an interrupted
experiment resumes at the next seed; the runs themselves are not kept (the curve needs probes during the run).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace

from ..train.runfolder import write_text_atomic
from .common import Preset, load_data, meta, probe_of
from .short_run import ShortRun, pretrain_short, run_cache_file
from .stats import baselines, over_seeds

__all__ = ["LONG_STEPS", "CHECKPOINTS", "arm_name", "long_run", "run_pretraining"]

# steps of the long run per preset: on the cpu preset 6,000 steps (5x the main runs) take the kNN gain over random
# init from about 2 points to about 5.5 (pretraining.json), ~13 minutes per seed on one core
LONG_STEPS = {"smoke": 6, "cpu": 6000, "gpu": 20000}
CHECKPOINTS = 5  # probes per run, evenly spaced: enough to see the curve bend, each costs a probe (~30 s, cpu)


def arm_name(steps: int) -> str:
    return f"SimCLR, {steps:,} steps"


def long_run(preset: Preset) -> ShortRun:
    """The main runs' SimCLR (batch, network, tau, augmentation) with the long run's steps."""
    return ShortRun(steps=LONG_STEPS[preset.name], batch_size=preset.batch_size, widths=preset.widths)


def _curve(train, test, run: ShortRun, dataset: str, device, cache) -> list[dict]:
    """[{"step", "knn", "linear"}] at every checkpoint of one run (the last: its end), from the cache when kept."""
    file = run_cache_file(cache, train, None, run, dataset)
    file = None if file is None else file.with_suffix(".curve.json")
    if file is not None and file.is_file():
        return json.loads(file.read_text())
    every = max(1, run.steps // CHECKPOINTS)
    points = []

    def probe_now(step, model):
        points.append({"step": step, **probe_of(model.encoder, train, test, device)})

    model, _ = pretrain_short(train, None, run, device, progress=False, callback=probe_now, every=every,
                              dataset=dataset)
    if not points or points[-1]["step"] != run.steps:  # steps not a multiple of every: probe the end too
        probe_now(run.steps, model)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(file, json.dumps(points))
    return points


def run_pretraining(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                    cache=None) -> dict:
    """The long run's kNN and linear probe at every checkpoint (mean +- sd over seeds, per-seed values), its end
    paired with random init (the same network, each seed's initial weights) and raw pixels."""
    from tqdm.auto import tqdm

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    run = long_run(preset)
    curves = []
    for seed in tqdm(preset.seeds, disable=not progress, desc=f"P1 ({run.steps:,}-step runs x seeds)"):
        curves.append(_curve(train, test, replace(run, seed=seed), dataset, device, cache))
    curve = [{"step": pts[0]["step"], **over_seeds([{k: p[k] for k in ("knn", "linear")} for p in pts])}
             for pts in zip(*curves)]
    steps = run.steps
    return {**meta("pretraining", preset, dataset, device, t0), "steps": steps, "main_steps": preset.steps,
            "design": (f"one run of {steps} steps per seed at N = {preset.batch_size} (the main runs' recipe), "
                       f"probed at {len(curve)} checkpoints; its end paired per seed with the same network at "
                       f"its initial weights (random init)"),
            "variants": {arm_name(steps): {"run": asdict(run), "knn": curve[-1]["knn"], "linear": curve[-1]["linear"],
                                           "curve": curve}},
            "baselines": baselines(train, test, preset, dataset, device, run)}
