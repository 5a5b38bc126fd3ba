"""Notebook 06 (Q4.1, Figure 5): pretraining with each single augmentation and each ordered pair, over seeds."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from .common import Preset, compose, load_data, meta, probe_of
from .short_run import ShortRun, pretrain_short
from .stats import baselines, over_seeds


def run_fig5(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True, cache=None) -> dict:
    """kNN and linear-probe accuracy (mean +- sd over the seeds) after pretraining with each single op (diagonal)
    and each ordered pair (row: 1st op, column: 2nd op), the default policy and the two baselines."""
    from tqdm.auto import tqdm

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    run = ShortRun(steps=preset.fig5_steps, batch_size=preset.fig5_batch, widths=preset.widths)
    size = run.recipe(dataset, len(train)).augment.size  # the preset's view size: the grid trains like the preset
    ops = list(preset.fig5_ops)
    cells = [(i, j) for i in range(len(ops)) for j in range(len(ops))] + [None]  # None: the default policy
    scores = {}
    bar = tqdm(total=len(cells) * len(preset.seeds), disable=not progress, desc="Figure 5 grid (cells x seeds)")
    for cell in cells:
        rows = []
        for seed in preset.seeds:
            if cell is None:
                views = None  # the preset's policy: crop + flip + brightness/contrast jitter
            else:
                i, j = cell
                views = compose([ops[i]] if i == j else [ops[i], ops[j]], size=size)
            model, _ = pretrain_short(train, views, replace(run, seed=seed), device, progress=False, dataset=dataset,
                                      cache=cache)
            rows.append(probe_of(model.encoder, train, test, device))
            bar.update()
        scores[cell] = over_seeds(rows)
    bar.close()
    grid = {m: [[scores[(i, j)][m] for j in range(len(ops))] for i in range(len(ops))] for m in ("knn", "linear")}
    return {**meta("fig5", preset, dataset, device, t0), "run": asdict(run), "view_size": size, "ops": ops,
            "knn": grid["knn"], "linear": grid["linear"], "default_policy": scores[None],
            "baselines": baselines(train, test, preset, dataset, device, run)}
