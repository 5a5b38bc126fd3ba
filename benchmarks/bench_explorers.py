"""How quickly the explorers answer a slider step: the time from setting a control's value (what the front end
does when a slider moves) to the new PNG and numbers being in the widgets, median over a sweep of steps.

    python benchmarks/bench_explorers.py [--steps 20]

Each explorer is built once (which draws it once); then every step moves one control to the next value of a
sweep, which runs the explorer's callback synchronously (figure + table), as the kernel does when the front end
sends the new value. The batch-size explorer's tau slider updates on release and recomputes its curves.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

TARGET_S = 0.3  # what feels immediate when dragging a slider


def time_steps(widget, values) -> list[float]:
    """Seconds per step of ``widget.value = v`` for every v (callbacks run synchronously)."""
    out = []
    for v in values:
        t0 = time.perf_counter()
        widget.value = v
        out.append(time.perf_counter() - t0)
    return out


def n_values(steps: int) -> list[int]:
    """``steps`` batch sizes 2..256 among those the N slider offers (log-spaced)."""
    from simclr_core.teaching.explorers.batch_size import slider_grid

    grid = slider_grid(256, 1)
    return [grid[1 + k % (len(grid) - 1)] for k in range(0, steps * 3, 3)][:steps]


def cases(steps: int):
    """(name, explorer factory, control getter, sweep values) for every explorer control a student drags."""
    from simclr_core.teaching.explorers import augmentation_explorer, batch_size_explorer, temperature_explorer

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)  # four CIFAR-sized images
    taus = [float(t) for t in np.geomspace(0.02, 4.0, steps)]
    strengths = [round(0.05 * (k % 20) + 0.05, 2) for k in range(steps)]
    return [
        ("temperature: tau slider", temperature_explorer, lambda w: w.tau_slider, taus),
        ("temperature: anchor dropdown", temperature_explorer, lambda w: w.anchor_dropdown, [k % 6 for k in range(1, steps + 1)]),
        ("batch size: N slider", batch_size_explorer, lambda w: w.n_slider, n_values(steps)),
        ("batch size: tau slider", batch_size_explorer, lambda w: w.tau_slider, taus[::4]),  # recomputes the curves
        ("augmentation: strength slider", lambda: augmentation_explorer(images), lambda w: w.controls["strength"], strengths),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="slider steps per control (default 20)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seconds per step, target <= {TARGET_S} s")
    print(f"{'control':32s} {'steps':>5s} {'build s':>8s} {'median s':>9s} {'max s':>7s}  ok")
    for name, make, control, values in cases(args.steps):
        t0 = time.perf_counter()
        w = make()
        build = time.perf_counter() - t0
        times = time_steps(control(w), values)
        med = statistics.median(times)
        print(f"{name:32s} {len(times):5d} {build:8.3f} {med:9.3f} {max(times):7.3f}  {'yes' if med <= TARGET_S else 'NO'}")


if __name__ == "__main__":
    main()
