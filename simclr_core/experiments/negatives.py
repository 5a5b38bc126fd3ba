"""Phenomenon P3 (issue 34): do more negatives help when the images per step are FIXED?

Comparing N = 128 with N = 32 (``small_batch``) changes two things at once: the negatives an anchor sees and the
images the network trains on per step. Here every arm trains on the same N images per step, in one batch of 2N
views (the same BatchNorm statistics), for the same steps, from the same initial weights and the same image order
(the seed); only the NT-Xent denominator changes: the N pairs are split into N / m groups of m pairs and an anchor's
negatives are the 2m - 2 other rows of its group (``train.step.GroupedObjective``). m = N is plain SimCLR, the
very run ``small_batch`` and ``visualize`` cache. Each arm is probed under the workbook's one protocol
(``eval.probe``); the phenomena table (``phenomena``) reads the paired difference largest m - smallest m per seed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from .common import Preset, load_data, meta, probe_of
from .short_run import ShortRun, pretrain_short
from .stats import baselines, over_seeds

__all__ = ["GROUPS", "arms", "arm_name", "measure_arms", "run_negatives"]

# m, pairs per NT-Xent group, per preset: from a handful of negatives up to the whole batch (m = N), each a divisor
# of the preset's batch; 2m - 2 negatives per anchor: 6, 30, 126, 254 at N = 128 (cpu), up to 510 at N = 256 (gpu)
GROUPS = {"smoke": (2, 16), "cpu": (4, 16, 64, 128), "gpu": (4, 16, 64, 256)}


def arm_name(m: int) -> str:
    return f"m={m}"


def arms(preset: Preset) -> dict[str, ShortRun]:
    """name -> run: the main runs' batch, steps and network; m = N is stored as plain SimCLR (group_pairs 0), so
    it is the cached run of the other experiments, not a second copy of it."""
    base = ShortRun(steps=preset.steps, batch_size=preset.batch_size, widths=preset.widths)
    groups = GROUPS[preset.name]
    if max(groups) != preset.batch_size:
        raise ValueError(f"negatives: the {preset.name} preset's groups {groups} must end at its batch "
                         f"N = {preset.batch_size} (plain SimCLR)")
    return {arm_name(m): replace(base, group_pairs=0 if m == preset.batch_size else m) for m in groups}


def measure_arms(runs: dict[str, ShortRun], train, test, preset: Preset, dataset: str, device, progress: bool,
                 cache, desc: str, views: dict | None = None) -> dict:
    """name -> {"run", kNN and linear probe as mean_sd over the preset's seeds (per-seed ``values``), the mean loss
    of the last 5 % of the steps per seed, the mean training time}: every arm trained once per seed from that seed's
    initial weights (``pretrain_short``, cached), so the arms are paired seed by seed. ``views``: name -> the arm's
    view function (absent: the preset's policy). Shared with ``temperature`` and ``composition``."""
    from tqdm.auto import tqdm

    out = {}
    bar = tqdm(total=len(runs) * len(preset.seeds), disable=not progress, desc=desc)
    for name, run in runs.items():
        rows, secs, last = [], [], []
        for seed in preset.seeds:
            model, hist = pretrain_short(train, (views or {}).get(name), replace(run, seed=seed), device,
                                         progress=False, dataset=dataset, cache=cache)
            secs.append(hist["train_s"])
            tail = hist["loss"][-max(1, len(hist["loss"]) // 20):]
            last.append(round(sum(tail) / len(tail), 4))
            rows.append(probe_of(model.encoder, train, test, device))
            bar.update()
        out[name] = {"run": asdict(run), **over_seeds(rows), "final_loss": last,
                     "train_s": round(sum(secs) / len(secs), 1)}
    bar.close()
    return out


def run_negatives(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                  cache=None) -> dict:
    """kNN and linear probe (mean +- sd over seeds, per-seed values) of every group size m, its negatives per
    anchor and its training time, next to random init and raw pixels."""
    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    runs = arms(preset)
    out = measure_arms(runs, train, test, preset, dataset, device, progress, cache, "negatives (group sizes x seeds)")
    for name, run in runs.items():
        out[name].update(group_pairs=int(name[2:]), negatives=run.negatives_per_anchor)
    groups = list(GROUPS[preset.name])
    return {**meta("negatives", preset, dataset, device, t0), "groups": groups, "batch_size": preset.batch_size,
            "design": (f"every arm: N = {preset.batch_size} images per step, {preset.steps} steps, same seeds, "
                       f"initial weights and image order; only the negatives per anchor change (2m - 2, NT-Xent "
                       f"within groups of m pairs); the phenomena table reads m = {max(groups)} - m = {min(groups)}"),
            "variants": out,
            "baselines": baselines(train, test, preset, dataset, device, runs[arm_name(preset.batch_size)])}
