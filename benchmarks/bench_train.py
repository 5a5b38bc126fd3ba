"""Training throughput (images/s, each image = two views) of the workbook's SimCLR step vs lightly's.

Both pipelines train the same model (``build_model`` of one recipe: encoder + projection head, same initial
weights) with SGD on the same CPU threads, side by side in one run:
- ours: ``simclr_core.train.loop.Trainer.step()``, what ``simclr pretrain`` runs: uint8 images in memory ->
  ``BatchAugment`` twice (batched, per-image randomness) -> model in channels_last, under bfloat16 autocast where
  the CPU computes bf16 natively (``simclr_core.precision.precision_for``) -> NT-Xent in float32 -> the trainer's
  SGD (fused, no weight decay on BN and biases);
- lightly (only when ``import lightly`` works; it is not a dependency): PIL images -> lightly's
  SimCLRTransform in a DataLoader (per image, in worker processes) -> model -> lightly's NTXentLoss, as
  lightly's examples write the loop (float32, default memory format, torch.optim.SGD). Every
  ``--lightly-workers`` setting is measured and the fastest is the baseline.
- ``ours_ceiling``: our model step alone, the same ``Trainer.step()`` fed views made before the timing starts
  (no augmentation), so ``ours / ours_ceiling`` is what the data path costs;
- ``--ablation`` adds two rows that split the gain: our data path and trainer with lightly's model step
  (float32, contiguous), and lightly's data path with our model step (channels_last + bf16 where native).
- ``--precisions fp32,fp32-cl,bf16-cl,bf16`` adds our ``Trainer.step()`` under each of these fixed precisions
  (float32 / bf16 autocast, contiguous / channels_last), whatever this CPU's policy picks: the measurement behind
  the policy table of ``simclr_core.precision``. Run it under ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`` (oneDNN
  without bf16 instructions: an AVX-512 CPU without AVX512-BF16) or ``ONEDNN_MAX_CPU_ISA=AVX2
  ATEN_CPU_CAPABILITY=avx2`` (an AVX2 CPU) to measure those CPU kinds on a newer CPU.

    PYTHONPATH=$HOME/.cache/simclr-workbook/lightly-pkgs python benchmarks/bench_train.py
    python benchmarks/bench_train.py --encoders small_cnn --steps 10      # no lightly needed
    python benchmarks/bench_train.py --quick --out /tmp/bench_train.json  # smallest: a few steps of small_cnn

Writes benchmarks/results/bench_train.json (or ``--out``). Images are random uint8 CIFAR-sized tensors:
throughput does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, import_lightly, machine, open_trainer  # noqa: E402
from simclr_core.data.augment import AugmentConfig  # noqa: E402
from simclr_core.data.fast_augment import BatchAugment  # noqa: E402
from simclr_core.precision import Precision, precision_for  # noqa: E402
from simclr_core.train.config import Recipe  # noqa: E402
from simclr_core.train.step import build_model, project  # noqa: E402


def have_lightly() -> bool:
    """Is lightly importable (from the environment, PYTHONPATH or scripts/install_lightly.sh's folder)?"""
    return import_lightly() is not None


def bench_recipe(encoder: str, batch_size: int, lr: float = 0.06, temperature: float = 0.5, seed: int = 0,
                 fast: bool = True) -> Recipe:
    """The CIFAR-10 cpu-preset recipe with ``encoder`` and ``batch_size``: SGD lr 0.06 x N/256, momentum 0.9,
    weight decay 5e-4, tau 0.5, the paper's CIFAR-10 augmentation. ``fast`` False: float32 and the contiguous
    memory format (the fast layers stay: every pipeline trains the same model)."""
    return Recipe(dataset="cifar10", encoder=encoder, batch_size=batch_size, lr=lr, lr_scaling="linear",
                  temperature=temperature, optimizer="sgd", momentum=0.9, weight_decay=5e-4, augment=AugmentConfig(),
                  minutes=None, seed=seed, amp=fast, channels_last=fast)


def ours_batches(images: torch.Tensor, batch_size: int, seed: int):
    """Endless shuffled uint8 minibatches (N, C, H, W) from memory, like the trainer."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(images.shape[0], generator=g)
        for i in range(0, images.shape[0] - batch_size + 1, batch_size):
            yield images[perm[i:i + batch_size]]


FIXED_PRECISIONS = {"fp32": (None, False), "fp32-cl": (None, True), "bf16-cl": (torch.bfloat16, True),
                    "bf16": (torch.bfloat16, False)}


class PremadeViews:
    """An augmentation that hands out views made in advance, in turn: ``Trainer.step()`` on these times the
    model step alone (the data path's ceiling)."""

    def __init__(self, recipe: Recipe, images: torch.Tensor, batches: int = 4):
        aug, g = BatchAugment(recipe.augment), torch.Generator().manual_seed(recipe.seed)
        src = ours_batches(images, recipe.batch_size, recipe.seed)
        self.views = [aug(x, g) for x in (next(src) for _ in range(batches)) for _ in range(2)]
        self.i = 0

    def __call__(self, x, generator):
        self.i = (self.i + 1) % len(self.views)
        return self.views[self.i]


def ours_step_fn(recipe: Recipe, images, precision: Precision | None = None, premade: bool = False):
    """One step of ``Trainer`` on ``recipe``; returns the loss. ``precision``: default the policy of this CPU
    (``precision_for``); ``premade``: fed views made in advance (``PremadeViews``)."""
    precision = precision or precision_for("cpu", recipe.amp, recipe.channels_last)
    trainer = open_trainer(recipe, images, precision)
    if premade:
        trainer.augment = PremadeViews(recipe, images)

    def step():
        return trainer.step().item()

    step.trainer = trainer
    return step


class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, transform):
        from PIL import Image

        arr = images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
        mode = "L" if arr.shape[-1] == 1 else "RGB"
        self.pil = [Image.fromarray(a[..., 0] if mode == "L" else a, mode) for a in arr]
        self.transform = transform

    def __len__(self):
        return len(self.pil)

    def __getitem__(self, i):
        return self.transform(self.pil[i])  # [view0, view1]


def lightly_transform(aug_cfg: AugmentConfig, channels: int):
    """lightly's SimCLRTransform with the same recipe as ``aug_cfg`` (size, min scale, strength, blur, grayscale)."""
    from lightly.transforms import SimCLRTransform

    normalize = {"mean": list(aug_cfg.mean), "std": list(aug_cfg.std)} if aug_cfg.normalize else None
    return SimCLRTransform(input_size=aug_cfg.size, cj_prob=aug_cfg.jitter_p if aug_cfg.color_jitter else 0.0,
                           cj_strength=aug_cfg.strength, min_scale=aug_cfg.crop_scale[0],
                           random_gray_scale=aug_cfg.grayscale_p if (aug_cfg.grayscale and channels == 3) else 0.0,
                           gaussian_blur=aug_cfg.blur_p if aug_cfg.blur else 0.0, hf_prob=0.5 if aug_cfg.flip else 0.0,
                           normalize=normalize)


def lightly_default_transform(size: int):
    """lightly's SimCLRTransform at its defaults (colour strength 1.0, min crop scale 0.08, blur p = 0.5, grayscale
    p = 0.2), only the size set and no normalisation (every encoder of a benchmark sees [0, 1] pixels)."""
    from lightly.transforms import SimCLRTransform

    return SimCLRTransform(input_size=size, normalize=None)


def lightly_loader(images, aug_cfg, batch_size, workers, seed=0, transform=None):
    g = torch.Generator().manual_seed(seed)
    ds = _PILDataset(images, transform if transform is not None else lightly_transform(aug_cfg, images.shape[1]))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
                                       persistent_workers=workers > 0, generator=g)


def endless(loader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def lightly_step_fn(recipe: Recipe, images, workers, fast=False):
    """lightly's loop as its examples write it, on ``build_model(recipe)``; ``fast``: under our precision policy
    (channels_last + bf16 where native) instead of plain float32."""
    from lightly.loss import NTXentLoss

    precision = precision_for("cpu", amp=fast, channels_last=fast)
    model = precision.prepare(build_model(recipe))
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr * recipe.batch_size / 256, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    crit = NTXentLoss(temperature=recipe.temperature)
    loader = lightly_loader(images, recipe.augment, recipe.batch_size, workers, recipe.seed)
    it = endless(loader)

    def step():
        v0, v1 = next(it)  # lightly's views, (N, C, H, W) each
        z0, z1 = project(model, torch.cat([v0, v1]), precision).chunk(2)  # one forward of the 2N views
        loss = crit(z0, z1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def measure_interleaved(steps_fns: dict, steps: int, warmup: int, batch_size: int, rounds: int = 3) -> dict:
    """images/s of each pipeline; the timed steps are split into ``rounds`` rounds that alternate between the
    pipelines, so a change in machine load hits all of them alike."""
    for fn in steps_fns.values():
        for _ in range(warmup):
            fn()
    spent = {k: 0.0 for k in steps_fns}
    done = {k: 0 for k in steps_fns}
    per_round = [steps // rounds + (1 if r < steps % rounds else 0) for r in range(rounds)]
    for n in per_round:
        for k, fn in steps_fns.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            spent[k] += time.perf_counter() - t0
            done[k] += n
    return {k: {"images_per_s": done[k] * batch_size / spent[k], "seconds": spent[k], "steps": done[k]} for k in steps_fns}


def augment_only(images, aug_cfg, batch_size, lightly_ok: bool, batches: int = 6) -> dict:
    """Milliseconds per image to make both views, data path alone (no model): ours vs lightly (num_workers=0),
    interleaved batch by batch."""
    aug, g = BatchAugment(aug_cfg), torch.Generator().manual_seed(0)
    src = ours_batches(images, batch_size, 0)
    it = endless(lightly_loader(images, aug_cfg, batch_size, 0)) if lightly_ok else None  # --n-images may be small
    t = {"ours": 0.0, "lightly": 0.0}
    for _ in range(batches):
        t0 = time.perf_counter()
        x = next(src)
        aug(x, g), aug(x, g)
        t["ours"] += time.perf_counter() - t0
        if it is not None:
            t0 = time.perf_counter()
            next(it)
            t["lightly"] += time.perf_counter() - t0
    out = {"ours_ms_per_image": 1000 * t["ours"] / (batches * batch_size)}
    if it is not None:
        out["lightly_ms_per_image"] = 1000 * t["lightly"] / (batches * batch_size)
        out["ratio"] = out["lightly_ms_per_image"] / out["ours_ms_per_image"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoders", default="small_cnn,resnet18_cifar")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=0, help="timed steps per pipeline (0: 12 small_cnn, 3 resnet18_cifar)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lightly-workers", default="0,2", help="DataLoader worker counts tried for lightly")
    p.add_argument("--n-images", type=int, default=4096)
    p.add_argument("--ablation", action="store_true",
                   help="also time our data path + plain fp32 step, and lightly's data path + our fast step")
    p.add_argument("--precisions", default="",
                   help=f"also time our step under these fixed precisions, comma-separated: {', '.join(FIXED_PRECISIONS)}")
    p.add_argument("--out", default=str(RESULTS / "bench_train.json"))
    p.add_argument("--quick", action="store_true",
                   help="smallest run: small_cnn only, 3 timed steps, 1 warmup step, 1024 images, lightly with 0 workers")
    args = p.parse_args(argv)
    fixed = [f for f in args.precisions.split(",") if f]
    if any(f not in FIXED_PRECISIONS for f in fixed):
        p.error(f"--precisions: each of {', '.join(FIXED_PRECISIONS)}, got {args.precisions!r}")
    if args.quick:
        args.encoders, args.steps, args.warmup, args.n_images, args.lightly_workers = "small_cnn", 3, 1, 1024, "0"

    if args.threads:
        torch.set_num_threads(args.threads)
    images = torch.randint(0, 256, (args.n_images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    aug_cfg = AugmentConfig()  # the paper's CIFAR-10 recipe: s = 0.5, no blur
    lightly_ok = have_lightly()
    if not lightly_ok:
        print("lightly is not importable: measuring our pipeline only "
              "(PYTHONPATH=$HOME/.cache/simclr-workbook/lightly-pkgs to compare)")
    aug_only = augment_only(images, aug_cfg, args.batch_size, lightly_ok)
    print("augmentation alone (two views): " + ", ".join(f"{k} {v:.3f}" for k, v in aug_only.items()), flush=True)
    rows = []
    for enc in [e for e in args.encoders.split(",") if e]:
        steps = args.steps or (12 if enc == "small_cnn" else 3)
        warm = args.warmup if enc == "small_cnn" else 1
        recipe = bench_recipe(enc, args.batch_size)
        fns = {"ours": ours_step_fn(recipe, images)}
        precision = fns["ours"].trainer.precision
        fns["ours_ceiling"] = ours_step_fn(recipe, images, precision, premade=True)
        for f in fixed:
            fns[f"ours_{f}"] = ours_step_fn(recipe, images, Precision(torch.device("cpu"), *FIXED_PRECISIONS[f]))
        workers = [int(w) for w in args.lightly_workers.split(",")] if lightly_ok else []
        for w in workers:
            fns[f"lightly_w{w}"] = lightly_step_fn(recipe, images, w)
        if args.ablation:
            fns["ours_fp32_contiguous"] = ours_step_fn(bench_recipe(enc, args.batch_size, fast=False), images)
            if workers:
                w = max(workers)
                fns["lightly_fast_step"] = lightly_step_fn(recipe, images, w, fast=True)
        res = measure_interleaved(fns, steps, warm, args.batch_size, rounds=min(3, steps))
        ours = res["ours"]
        row = {"encoder": enc, "batch_size": args.batch_size, "ours": ours,
               "ours_step": {"channels_last": precision.channels_last, "autocast": str(precision.dtype),
                             "precision": precision.describe()}}
        print(f"{enc:>15}  ours:    {ours['images_per_s']:7.1f} images/s  ({steps} steps; {precision.describe()})",
              flush=True)
        row["ours_ceiling"] = res["ours_ceiling"]
        row["ours_over_ceiling"] = ours["images_per_s"] / res["ours_ceiling"]["images_per_s"]
        print(f"{enc:>15}  ceiling: {res['ours_ceiling']['images_per_s']:7.1f} images/s  (the same step on views made "
              f"in advance: ours is {row['ours_over_ceiling']:.2f}x of it)", flush=True)
        for k in ("ours_fp32_contiguous", "lightly_fast_step", *(f"ours_{f}" for f in fixed)):
            if k in res:
                row[k] = res[k]
                print(f"{enc:>15}  {k}: {res[k]['images_per_s']:7.1f} images/s  (ablation)", flush=True)
        if workers:
            runs = [dict(res[f"lightly_w{w}"], workers=w) for w in workers]
            for r in runs:
                print(f"{enc:>15}  lightly: {r['images_per_s']:7.1f} images/s  (num_workers={r['workers']})", flush=True)
            best = max(runs, key=lambda r: r["images_per_s"])
            row["lightly_runs"], row["lightly"] = runs, best
            row["ratio"] = ours["images_per_s"] / best["images_per_s"]
            print(f"{enc:>15}  ratio ours / best lightly = {row['ratio']:.2f}x", flush=True)
        rows.append(row)
    out = {"command": " ".join(["python", "benchmarks/bench_train.py", *(sys.argv[1:] if argv is None else argv)]),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "platform": platform.platform(),
           "processor": platform.processor(), "machine": machine(), "lightly": lightly_ok, "augment_only": aug_only, "results": rows,
           "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
