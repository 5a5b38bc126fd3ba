"""The Fashion-MNIST cpu preset's training step: the plain teaching model vs the model with ``use_fast_layers``, and
each speed-up toggled off one at a time, side by side in one run.

Every variant is ``simclr_core.train.loop.Trainer.step()`` (two ``BatchAugment`` views, the model in channels_last
under bfloat16 autocast where the CPU computes bf16 natively, NT-Xent in float32, backward, the trainer's optimizer)
on the cpu preset's recipe (small_cnn 32-64-128-1024, batch 128 of 16x16 views), same initial weights. Variants:
- ``preset``: what ``simclr pretrain --preset cpu --dataset fashion-mnist`` runs: the model with
  ``simclr_core.nn.fast_layers.use_fast_layers`` and fused SGD;
- ``plain model``: the plain teaching model of ``simclr_core.nn.models`` (nn.Conv2d, nn.AdaptiveAvgPool2d(1) +
  nn.Flatten()), fused SGD: ``preset / plain model`` is what ``use_fast_layers`` buys;
- ``nn.Conv2d``: the fast layers except ``Conv3x3`` (plain nn.Conv2d, same weights), so the last block's 2x2 maps
  are convolved over their zero padding;
- ``AdaptiveAvgPool2d``: the fast layers except ``GlobalAvgPool`` (nn.AdaptiveAvgPool2d(1) + nn.Flatten());
- ``unfused SGD``: the preset's model, torch.optim.SGD without ``fused=True`` (torch's per-tensor loop on the CPU);
- ``none of them``: the plain model and unfused SGD;
- ``views made in advance``: the preset's step fed views made before the timing starts
  (``bench_train.PremadeViews``): the model step's ceiling, so ``preset / views made in advance`` is what the
  data path (two ``BatchAugment`` calls) costs.

The variants run interleaved in rounds (``bench_train.measure_interleaved``), so drifts in machine load hit them
alike; quote the ratios, not the absolute images/s.

    python benchmarks/bench_step.py                 # writes benchmarks/results/bench_step.json
    python benchmarks/bench_step.py --steps 10      # shorter
    python benchmarks/bench_step.py --quick --out /tmp/bench_step.json   # smallest: a few steps per variant
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, open_trainer  # noqa: E402
from bench_train import PremadeViews, measure_interleaved  # noqa: E402

from simclr_core.data.datasets import SYSTEM_FASHION_MNIST, load_dataset  # noqa: E402
from simclr_core.nn.fast_layers import Conv3x3, GlobalAvgPool, use_fast_layers  # noqa: E402
from simclr_core.train.config import preset  # noqa: E402
from simclr_core.train.runs import run_precision  # noqa: E402
from simclr_core.train.step import build_model  # noqa: E402


def fast_layers(model: nn.Module, conv: bool = True, pool: bool = True) -> nn.Module:
    """A copy of the plain ``model`` with ``use_fast_layers``, then the ``Conv3x3`` layers (``conv`` False) and/or the
    ``GlobalAvgPool`` (``pool`` False) put back to the plain nn layers (same weights)."""
    model = use_fast_layers(copy.deepcopy(model))
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not conv and isinstance(child, Conv3x3):
                plain = nn.Conv2d(child.in_channels, child.out_channels, 3, padding=1, bias=False)
                plain.weight = child.weight
                setattr(parent, name, plain)
        if not pool and isinstance(parent, nn.Sequential):  # GlobalAvgPool + Identity -> AdaptiveAvgPool2d + Flatten
            mods = list(parent)
            for i in range(len(mods) - 1):
                if isinstance(mods[i], GlobalAvgPool) and isinstance(mods[i + 1], nn.Identity):
                    parent[i], parent[i + 1] = nn.AdaptiveAvgPool2d(1), nn.Flatten()
    return model


def layer_kinds(model: nn.Module) -> dict:
    """How many of each convolution / pooling layer the model holds (recorded with each variant)."""
    kinds = {}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.AdaptiveAvgPool2d, GlobalAvgPool)):
            kinds[type(m).__name__] = kinds.get(type(m).__name__, 0) + 1
    return kinds


def step_fn(recipe, model: nn.Module, images: torch.Tensor, fused: bool, premade: bool = False):
    """``Trainer.step`` of ``recipe`` on a copy of ``model``; ``fused`` False: the SGD without its fused kernel;
    ``premade``: fed views made in advance."""
    trainer = open_trainer(recipe, images, run_precision(recipe, "cpu"), model=copy.deepcopy(model))
    if premade:
        trainer.augment = PremadeViews(recipe, images)
    if not fused:
        for group in trainer.optimizer.param_groups:
            group["fused"] = None
        trainer.optimizer.defaults["fused"] = None

    def step():
        return trainer.step()

    step.trainer = trainer
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60, help="timed steps per variant (default 60)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--n-images", type=int, default=8192, help="training images the steps draw from (default 8192)")
    p.add_argument("--data-root", default=str(SYSTEM_FASHION_MNIST))
    p.add_argument("--out", default=str(RESULTS / "bench_step.json"))
    p.add_argument("--quick", action="store_true", help="smallest run: 4 timed steps per variant in 2 rounds, "
                                                        "1 warmup step, 1024 images")
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.warmup, a.rounds, a.n_images = 4, 1, 2, 1024
    if a.threads:
        torch.set_num_threads(a.threads)
    recipe = preset("cpu", "fashion-mnist")
    try:
        images = load_dataset("fashion-mnist", a.data_root, train=True).images[:a.n_images]
        source = "Fashion-MNIST training images"
    except Exception:  # timing does not depend on pixel values
        images = torch.randint(0, 256, (a.n_images, 1, 28, 28), dtype=torch.uint8)
        source = "random uint8 28x28 images"
    plain = build_model(replace(recipe, fast_layers=False))  # the teaching model; weights from recipe.seed
    fast = build_model(recipe)  # the preset's: the same weights with use_fast_layers
    assert all(torch.equal(v, fast.state_dict()[k]) for k, v in plain.state_dict().items()), "same weights"
    models = {
        "preset": (fast, True),
        "plain model": (plain, True),
        "nn.Conv2d": (fast_layers(plain, conv=False), True),
        "AdaptiveAvgPool2d": (fast_layers(plain, pool=False), True),
        "unfused SGD": (fast, False),
        "none of them": (plain, False),
    }
    variants = {k: step_fn(recipe, m, images, fused) for k, (m, fused) in models.items()}
    variants["views made in advance"] = step_fn(recipe, fast, images, True, premade=True)
    models["views made in advance"] = (fast, True)
    precision = variants["preset"].trainer.precision
    res = measure_interleaved(variants, a.steps, a.warmup, recipe.batch_size, rounds=a.rounds)
    ref = res["preset"]["images_per_s"]
    print(f"cpu preset step (Trainer.step) on {source}, batch {recipe.batch_size}, "
          f"{recipe.augment.size}x{recipe.augment.size} views, {precision.describe()}, {torch.get_num_threads()} threads")
    for k, r in res.items():
        r["preset_speedup"] = ref / r["images_per_s"]
        r["layers"] = layer_kinds(models[k][0])
        r["fused_sgd"] = models[k][1]
        print(f"  {k:<22} {r['images_per_s']:8.0f} img/s   preset / this: {r['preset_speedup']:.2f}x")
    fast_vs_plain = res["preset"]["images_per_s"] / res["plain model"]["images_per_s"]
    print(f"use_fast_layers: {fast_vs_plain:.2f}x the plain teaching model's images/s "
          f"(Conv3x3 alone {res['AdaptiveAvgPool2d']['images_per_s'] / res['plain model']['images_per_s']:.2f}x, "
          f"GlobalAvgPool alone {res['nn.Conv2d']['images_per_s'] / res['plain model']['images_per_s']:.2f}x)")
    ceiling = res["preset"]["images_per_s"] / res["views made in advance"]["images_per_s"]
    print(f"data path: the preset's step runs at {ceiling:.2f}x of the same step on views made in advance")
    out = {"command": " ".join(["python", "benchmarks/bench_step.py", *(sys.argv[1:] if argv is None else argv)]),
           "torch": torch.__version__, "platform": platform.processor() or platform.machine(), "machine": machine(),
           "threads": torch.get_num_threads(), "images": source, "n_images": int(images.shape[0]),
           "batch_size": recipe.batch_size, "view_size": recipe.augment.size, "widths": list(recipe.widths),
           "precision": precision.describe(), "steps": a.steps, "rounds": a.rounds,
           "fast_layers_vs_plain_model": fast_vs_plain, "preset_over_ceiling": ceiling,
           "conv3x3_alone_vs_plain_model": res["AdaptiveAvgPool2d"]["images_per_s"] / res["plain model"]["images_per_s"],
           "global_avg_pool_alone_vs_plain_model": res["nn.Conv2d"]["images_per_s"] / res["plain model"]["images_per_s"],
           "results": res}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
