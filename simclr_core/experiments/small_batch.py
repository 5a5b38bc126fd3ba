"""Notebook 07 (Q4.2): plenty of negatives without a big batch: in-batch negatives only (SimCLR), a PIRL-style
memory bank, and a MoCo queue with a momentum encoder, at a small and a large batch, over seeds."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from .common import Preset, load_data, meta, probe_of
from .short_run import ShortRun, pretrain_short
from .stats import baselines, over_seeds

MOCO_MOMENTUM = 0.99  # theta_k <- m theta_k + (1 - m) theta_q: MoCo's 0.999 is for 100x longer runs
# the refreshed bank's arm: every this many steps the whole bank is re-encoded by the current network, so no entry is
# older than that; at N = 32 on 10,000 images the plain bank rewrites an entry about every 310 steps (cpu: 2.4 s of
# encoding per refresh, 48 refreshes per 1,200-step run)
BANK_REFRESH = 25


def variants(preset: Preset) -> dict[str, ShortRun]:
    """name -> run: at N = small_batch, SimCLR, the bank, the bank re-encoded every ``BANK_REFRESH`` steps (is the
    bank's trouble its stale entries?), a queue of each size and a bank of each other size (is it the number of extra
    negatives?); at N = batch_size, SimCLR, the bank and the largest queue. The same number of steps everywhere (the
    large batch sees N/n times the images)."""
    n, N, K = preset.small_batch, preset.batch_size, max(preset.queue_sizes)
    small = ShortRun(steps=preset.small_batch_steps, batch_size=n, widths=preset.widths)
    large = ShortRun(steps=preset.steps, batch_size=N, widths=preset.widths)
    out = {f"SimCLR, N={n}": small,
           f"memory bank (PIRL), N={n}": replace(small, bank_negatives=preset.bank_negatives),
           f"memory bank re-encoded every {BANK_REFRESH} steps, N={n}": replace(
               small, bank_negatives=preset.bank_negatives, bank_refresh=BANK_REFRESH)}
    for k in sorted(preset.queue_sizes):
        out[f"MoCo queue K={k}, N={n}"] = replace(small, queue_size=k, momentum=MOCO_MOMENTUM)
        if k != preset.bank_negatives:  # the bank with as many extra negatives as this queue
            out[f"memory bank (PIRL) K={k}, N={n}"] = replace(small, bank_negatives=k)
    out[f"SimCLR, N={N}"] = large
    out[f"memory bank (PIRL), N={N}"] = replace(large, bank_negatives=preset.bank_negatives)
    out[f"MoCo queue K={K}, N={N}"] = replace(large, queue_size=K, momentum=MOCO_MOMENTUM)
    return out


def run_small_batch(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                    cache=None) -> dict:
    """kNN and linear probe (mean +- sd over seeds) of every variant, its negatives per anchor, its loss curve
    (first seed) and its training time, next to random init and raw pixels."""
    from tqdm.auto import tqdm

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    runs = variants(preset)
    out = {}
    bar = tqdm(total=len(runs) * len(preset.seeds), disable=not progress, desc="small batches (variants x seeds)")
    for name, run in runs.items():
        rows, secs, curve = [], [], None
        for seed in preset.seeds:
            model, hist = pretrain_short(train, None, replace(run, seed=seed), device, progress=False,
                                         dataset=dataset, cache=cache)
            secs.append(hist["train_s"])
            rows.append(probe_of(model.encoder, train, test, device))
            if curve is None:
                every = max(1, len(hist["loss"]) // 60)
                curve = [[s, round(sum(hist["loss"][s - every:s]) / every, 4)]  # mean loss of the last `every` steps
                         for s in range(every, len(hist["loss"]) + 1, every)]
            bar.update()
        out[name] = {"run": asdict(run), "negatives": run.negatives_per_anchor, **over_seeds(rows),
                     "loss_curve": curve, "train_s": round(sum(secs) / len(secs), 1)}
    bar.close()
    return {**meta("small_batch", preset, dataset, device, t0), "small_batch": preset.small_batch,
            "large_batch": preset.batch_size, "variants": out,
            "baselines": baselines(train, test, preset, dataset, device, runs[f"SimCLR, N={preset.batch_size}"])}
