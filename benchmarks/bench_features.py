"""Feature extraction, the part of ``simclr probe`` that runs the encoder: images/s under each fixed precision, side
by side in one run, and the precision this CPU's policy picks.

``simclr probe`` extracts h = f(x) for every train and test image twice (the run's encoder and the same network at
random init; ``simclr_core.eval.features.extract_features``), then fits the kNN and linear probes on the features.
Only the first part depends on the precision; this times it alone, on the Fashion-MNIST ``cpu`` preset's encoder
(28x28 images, batch 512 as the probe runs it), interleaved in rounds so a change in machine load hits every
precision alike. Run it under ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`` to see an AVX-512 CPU without bf16
instructions, where emulated bf16 is the slow path.

    python benchmarks/bench_features.py                        # writes benchmarks/results/bench_features.json
    python benchmarks/bench_features.py --quick --out /tmp/bench_features.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine  # noqa: E402
from bench_train import FIXED_PRECISIONS  # noqa: E402

from simclr_core.data.datasets import SYSTEM_FASHION_MNIST, load_dataset  # noqa: E402
from simclr_core.eval.features import extract_features  # noqa: E402
from simclr_core.precision import Precision, precision_for  # noqa: E402
from simclr_core.train.config import preset  # noqa: E402
from simclr_core.train.step import build_model  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-images", type=int, default=10000, help="images per timed pass (default 10000)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precisions", default="fp32,fp32-cl,bf16-cl", help=f"of {', '.join(FIXED_PRECISIONS)}")
    p.add_argument("--data-root", default=str(SYSTEM_FASHION_MNIST))
    p.add_argument("--out", default=str(RESULTS / "bench_features.json"))
    p.add_argument("--quick", action="store_true", help="smallest run: 1024 images, 1 round")
    a = p.parse_args(argv)
    if a.quick:
        a.n_images, a.rounds = 1024, 1
    names = [n for n in a.precisions.split(",") if n]
    if not names or any(n not in FIXED_PRECISIONS for n in names):
        p.error(f"--precisions: each of {', '.join(FIXED_PRECISIONS)}, got {a.precisions!r}")
    recipe = preset("cpu", "fashion-mnist")
    try:
        images = load_dataset("fashion-mnist", a.data_root, train=True).images[:a.n_images]
        source = "Fashion-MNIST training images"
    except Exception:  # timing does not depend on pixel values
        images = torch.randint(0, 256, (a.n_images, 1, 28, 28), dtype=torch.uint8)
        source = "random uint8 28x28 images"
    policy = precision_for("cpu", recipe.amp, recipe.channels_last)
    encoders = {}
    for n in names:
        prec = Precision(torch.device("cpu"), *FIXED_PRECISIONS[n])
        encoders[n] = (prec, prec.prepare(build_model(recipe).encoder))
        extract_features(encoders[n][1], images[:512], 512, prec)  # warm-up: kernel selection
    spent = dict.fromkeys(names, 0.0)
    for _ in range(a.rounds):
        for n, (prec, enc) in encoders.items():
            t0 = time.perf_counter()
            extract_features(enc, images, 512, prec)
            spent[n] += time.perf_counter() - t0
    res = {n: {"images_per_s": a.rounds * len(images) / spent[n], "seconds": spent[n],
               "precision": encoders[n][0].describe()} for n in names}
    print(f"feature extraction, cpu preset encoder, {source}, {len(images)} images x {a.rounds} rounds, "
          f"{torch.get_num_threads()} threads; this CPU's policy: {policy.describe()}")
    for n, r in res.items():
        print(f"  {n:<8} {r['images_per_s']:8.0f} img/s  ({r['precision']})")
    out = {"command": " ".join(["python", "benchmarks/bench_features.py", *(sys.argv[1:] if argv is None else argv)]),
           "torch": torch.__version__, "machine": machine(), "images": source, "n_images": len(images),
           "rounds": a.rounds, "policy": policy.describe(), "results": res,
           "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
