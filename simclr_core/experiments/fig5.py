"""Notebook 06 (Q4.1, Figure 5): pretraining with each single augmentation and each ordered pair."""

from __future__ import annotations

import time
from dataclasses import asdict

from .common import Preset, ShortRun, build_model, compose, default_views, load_data, meta, pretrain_short, probe_of


def run_fig5(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True) -> dict:
    """Notebook 06 (Q4.1, Figure 5): kNN accuracy after pretraining with each single op and each ordered pair."""
    from tqdm.auto import tqdm

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    run = ShortRun(steps=preset.fig5_steps, batch_size=preset.fig5_batch, widths=preset.widths)
    ops = list(preset.fig5_ops)
    knn = [[0.0] * len(ops) for _ in ops]
    linear = [[0.0] * len(ops) for _ in ops]
    cells = [(i, j) for i in range(len(ops)) for j in range(len(ops))]
    for i, j in tqdm(cells, disable=not progress, desc="Figure 5 grid"):
        names = [ops[i]] if i == j else [ops[i], ops[j]]  # row: 1st transformation, column: 2nd
        model, _ = pretrain_short(train, compose(names), run, device, progress=False, dataset=dataset)
        knn[i][j], linear[i][j] = probe_of(model.encoder, train, test, device, preset.probe_iter)
    model, _ = pretrain_short(train, default_views(dataset, train.images.shape[-1]), run, device, progress=False, dataset=dataset)
    default = probe_of(model.encoder, train, test, device, preset.probe_iter)
    random_init = probe_of(build_model(train.images.shape[1], run, dataset).encoder.to(device), train, test, device, preset.probe_iter)
    return {**meta("fig5", preset, dataset, device, t0), "run": asdict(run), "ops": ops, "knn": knn, "linear": linear,
            "default_policy_knn": default[0], "default_policy_linear": default[1],
            "random_init_knn": random_init[0], "random_init_linear": random_init[1]}
