"""The Fashion-MNIST cpu preset's training step, with each speed-up toggled off one at a time, side by side.

The step is the trainer's (``simclr_core.train.loop.simclr_loss`` + backward + optimizer step, channels_last and
bfloat16 autocast where the CPU computes bf16 natively) on the cpu preset's model (small_cnn 32-64-128-1024,
batch 128 of 16x16 views). Variants:
- ``preset``: what ``simclr pretrain --preset cpu --dataset fashion-mnist`` runs;
- ``nn.Conv2d``: the encoder's ``Conv3x3`` layers replaced by plain nn.Conv2d (same weights), so the last
  block's 2x2 maps are convolved over their zero padding;
- ``AdaptiveAvgPool2d``: the encoder's ``GlobalAvgPool`` replaced by nn.AdaptiveAvgPool2d(1) + nn.Flatten();
- ``unfused SGD``: torch.optim.SGD without ``fused=True`` (torch's default per-tensor loop on the CPU);
- ``none of them``: all three of the above (the step before these changes).

The variants run interleaved in rounds (``measure_interleaved``), so drifts in machine load hit them alike;
quote the ratios, not the absolute images/s.

    python benchmarks/bench_step.py                 # writes benchmarks/results/bench_step.json
    python benchmarks/bench_step.py --steps 10      # quick
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine  # noqa: E402
from bench_train import measure_interleaved  # noqa: E402

from simclr_core.train.config import preset  # noqa: E402
from simclr_core.data.datasets import SYSTEM_FASHION_MNIST, load_dataset  # noqa: E402
from simclr_core.data.fast_augment import BatchAugment  # noqa: E402
from simclr_core.nn.models import Conv3x3, GlobalAvgPool  # noqa: E402
from simclr_core.train.schedule import build_optimizer, scaled_lr  # noqa: E402
from simclr_core.train.loop import build_model, simclr_loss, speed_setup  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def older_layers(model: nn.Module, conv: bool = True, pool: bool = True) -> nn.Module:
    """A copy of ``model`` with Conv3x3 -> plain nn.Conv2d (same weights) and/or GlobalAvgPool ->
    nn.AdaptiveAvgPool2d(1) + nn.Flatten()."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if conv and isinstance(child, Conv3x3):
                plain = nn.Conv2d(child.in_channels, child.out_channels, 3, padding=1, bias=False)
                plain.weight = nn.Parameter(child.weight.detach().clone())
                setattr(parent, name, plain)
            elif pool and isinstance(child, GlobalAvgPool):
                setattr(parent, name, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    return model


def step_fn(model, cfg, images, fused: bool, seed: int = 0):
    device = torch.device("cpu")
    model, channels_last, dtype = speed_setup(model, device, cfg.channels_last, cfg.amp)
    opt = build_optimizer(cfg.optimizer, model, scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling),
                          cfg.momentum, cfg.weight_decay)
    if not fused:
        for group in opt.param_groups:
            group["fused"] = None
        opt.defaults["fused"] = None
    augment = BatchAugment(cfg.augment)
    g = torch.Generator().manual_seed(seed)
    state = {"i": 0}

    def step():
        i = state["i"] % (images.shape[0] // cfg.batch_size)
        state["i"] += 1
        x = images[i * cfg.batch_size:(i + 1) * cfg.batch_size]  # (N, 1, 28, 28) uint8
        loss = simclr_loss(model, augment, x, cfg.temperature, g, channels_last=channels_last, autocast_dtype=dtype)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60, help="timed steps per variant (default 60)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-root", default=str(SYSTEM_FASHION_MNIST))
    p.add_argument("--out", default=str(RESULTS / "bench_step.json"))
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = preset("cpu", "fashion-mnist")
    try:
        images = load_dataset("fashion-mnist", a.data_root, train=True).images[:8192]
        source = "Fashion-MNIST training images"
    except Exception:  # timing does not depend on pixel values
        images = torch.randint(0, 256, (8192, 1, 28, 28), dtype=torch.uint8)
        source = "random uint8 28x28 images"
    torch.manual_seed(cfg.seed)
    base = build_model(cfg, 1)
    variants = {
        "preset": step_fn(copy.deepcopy(base), cfg, images, fused=True),
        "nn.Conv2d": step_fn(older_layers(base, pool=False), cfg, images, fused=True),
        "AdaptiveAvgPool2d": step_fn(older_layers(base, conv=False), cfg, images, fused=True),
        "unfused SGD": step_fn(copy.deepcopy(base), cfg, images, fused=False),
        "none of them": step_fn(older_layers(base), cfg, images, fused=False),
    }
    res = measure_interleaved(variants, a.steps, a.warmup, cfg.batch_size, rounds=a.rounds)
    ref = res["preset"]["images_per_s"]
    print(f"cpu preset step on {source}, batch {cfg.batch_size}, {cfg.augment.size}x{cfg.augment.size} views, "
          f"{torch.get_num_threads()} threads")
    for k, r in res.items():
        r["preset_speedup"] = ref / r["images_per_s"]
        print(f"  {k:<18} {r['images_per_s']:8.0f} img/s   preset / this: {r['preset_speedup']:.2f}x")
    out = {"torch": torch.__version__, "platform": platform.processor() or platform.machine(), "machine": machine(),
           "threads": torch.get_num_threads(), "images": source, "batch_size": cfg.batch_size,
           "view_size": cfg.augment.size, "widths": list(cfg.widths), "results": res}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
