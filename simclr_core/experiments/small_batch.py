"""Notebook 07 (Q4.2): small batches, and negatives from a queue, a momentum encoder or a memory bank."""

from __future__ import annotations

import time
from dataclasses import asdict

from .common import Preset, ShortRun, default_views, knn_of, load_data, meta, pretrain_short, probe_of


SMALL_BATCH_VARIANTS = {
    "SimCLR, N=32": dict(batch_size=32),
    "SimCLR + queue, N=32": dict(batch_size=32, queue="Q"),
    "SimCLR + queue + momentum encoder (MoCo), N=32": dict(batch_size=32, queue="Q", momentum=0.99),
    "SimCLR + queue/4 + momentum encoder, N=32": dict(batch_size=32, queue="Q/4", momentum=0.99),
    "SimCLR + memory bank (PIRL-style), N=32": dict(batch_size=32, bank="Q"),
    "SimCLR, large batch (reference)": dict(batch_size="B"),
}


def run_small_batch(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True) -> dict:
    """Notebook 07 (Q4.2): at N = 32, in-batch negatives only vs + a queue of K keys (+ momentum encoder)."""
    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    steps = preset.small_batch_steps
    K = {"smoke": 64}.get(preset.name, 4096)
    views = default_views(dataset, train.images.shape[-1])
    curves = {}
    for name, spec in SMALL_BATCH_VARIANTS.items():
        for seed in preset.seeds:
            spec2 = {k: {"Q": K, "Q/4": K // 4, "B": preset.batch_size}.get(v, v) if isinstance(v, str) else v
                     for k, v in spec.items()}
            queue_size, bank = spec2.pop("queue", 0), spec2.pop("bank", 0)
            run = ShortRun(steps=steps, widths=preset.widths, queue_size=queue_size, bank_negatives=bank, seed=seed,
                           **spec2)
            points = []
            t1 = time.time()
            model, hist = pretrain_short(train, views, run, device, progress=progress, dataset=dataset,
                                         callback=lambda s, m: points.append((s, knn_of(m.encoder, train, test, device))),
                                         every=max(1, steps // 6))
            curves.setdefault(name, []).append({"seed": seed, "run": asdict(run), "knn_curve": points,
                                                "final_knn": points[-1][1],
                                                "final_linear": probe_of(model.encoder, train, test, device, preset.probe_iter)[1],
                                                "loss_first": hist["loss"][0],
                                                "loss_last": sum(hist["loss"][-20:]) / len(hist["loss"][-20:]),
                                                "train_s": round(time.time() - t1, 1)})
    return {**meta("small_batch", preset, dataset, device, t0), "queue_size": K, "steps": steps, "variants": curves}
