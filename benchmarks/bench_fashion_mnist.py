"""Time to accuracy on real data: Fashion-MNIST, a fixed wall-clock budget of SimCLR pretraining, then probes.

For the same budget (default 10 minutes) and the same encoder (the cpu preset's small CNN + projection head,
same initial weights), pretrain with
- ours: the trainer's step (``simclr_core.train.loop.simclr_loss``: in-memory uint8 batches, ``BatchAugment``
  twice, model in channels_last under bfloat16 autocast where the CPU has native bf16, ``nt_xent`` in
  float32) with the cpu preset's optimizer, lr, tau, batch size and augmentation;
- lightly (when importable): lightly's SimCLRTransform in a DataLoader + NTXentLoss, as lightly's examples
  write the loop (float32, default memory format), everything else equal (our tuned lr, tau, batch size,
  crop scale, view size, weight decay and schedule: the stricter baseline, it isolates the speed of the pipeline);
- lightly-defaults (when importable): the same loop with lightly's own recipe, as the issue measured it:
  SimCLRTransform at its defaults (``bench_train.lightly_default_transform``, views at the images' own 28x28),
  NTXentLoss's tau = 0.5, SGD lr 0.06 at batch 256 (momentum 0.9, weight decay 5e-4 and the warmup + cosine
  schedule as for the others);
both with a warmup + cosine learning rate driven by each run's own training time (5% warmup), stopped at the
budget, and trained in alternating 20-second slices so that other load on the machine hits both alike;
then evaluate each encoder, the same architecture at random init, and raw pixels with the same protocol
(kNN k=200 t=0.1 and a linear probe on standardised features) on the 10 000 test images.

    PYTHONPATH=$HOME/.cache/simclr-workbook/lightly-pkgs python benchmarks/bench_fashion_mnist.py --minutes 10
    python benchmarks/bench_fashion_mnist.py --minutes 2 --probe-train 10000      # quick look while developing
    python benchmarks/bench_fashion_mnist.py --minutes 3 --no-lightly --val 10000 --size 20 --out /tmp/t.json
        # tuning the preset (also --widths, --tau, --lr, --crop-min, ...): evaluate on 10k held-out *training* images, never on the test set

Writes benchmarks/results/fashion_mnist_<minutes>min.json and .png.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, machine_label  # noqa: E402
from bench_train import endless, have_lightly, lightly_default_transform, lightly_loader  # noqa: E402
from simclr_core.train.config import preset  # noqa: E402
from simclr_core.data.datasets import SYSTEM_FASHION_MNIST, load_dataset  # noqa: E402
from simclr_core.eval.metrics import compare_representations, extract_features, raw_pixel_features  # noqa: E402
from simclr_core.data.fast_augment import BatchAugment  # noqa: E402
from simclr_core.nn.models import SMALL_CNN_WIDTHS  # noqa: E402
from simclr_core.train.schedule import build_optimizer, lr_at, scaled_lr, set_lr  # noqa: E402
from simclr_core.train.loop import build_model, epoch_generator, epoch_order, simclr_loss, speed_setup  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _ours_batches(cfg, images):
    """Endless minibatches (N, C, H, W) uint8 from memory, reshuffled every epoch (as the trainer does)."""
    epoch = 0
    while True:
        order = epoch_order(images.shape[0], cfg.seed, epoch, 0, 1, cfg.batch_size)  # (steps, N)
        for idx in order:
            yield images[idx]
        epoch += 1


def _lightly_batches(cfg, images, workers, transform=None):
    from lightly.loss import NTXentLoss

    crit = NTXentLoss(temperature=cfg.temperature)
    loader = lightly_loader(images, cfg.augment, cfg.batch_size, workers, cfg.seed, transform)
    for v0, v1 in endless(loader):
        yield v0, v1, crit


class TimedRun:
    """One pipeline's pretraining, advanced in time slices. Warmup + cosine learning rate driven by this run's
    own accumulated training time, so both pipelines get a full schedule whatever their speed; same initial
    weights, optimizer, lr, tau and batch size for both."""

    def __init__(self, pipeline: str, cfg, train, budget_s: float, workers: int = 0, warm_frac: float = 0.05):
        torch.manual_seed(cfg.seed)
        self.pipeline, self.cfg, self.budget_s, self.warm_frac, self.workers = pipeline, cfg, budget_s, warm_frac, workers
        self.model = build_model(cfg, train.images.shape[1])
        if pipeline == "ours":  # the trainer's memory format and autocast; lightly's loop stays plain float32
            self.model, self.channels_last, self.dtype = speed_setup(self.model, torch.device("cpu"), cfg.channels_last, cfg.amp)
        self.peak = scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling)
        self.opt = build_optimizer(cfg.optimizer, self.model, self.peak, cfg.momentum, cfg.weight_decay)
        self.steps_per_epoch = len(train) // cfg.batch_size
        if pipeline == "ours":
            self.aug, self.g = BatchAugment(cfg.augment), epoch_generator(cfg.seed, 0)
            self.batches = _ours_batches(cfg, train.images)
        elif pipeline == "lightly-defaults":
            self.batches = _lightly_batches(cfg, train.images, workers, lightly_default_transform(train.images.shape[-1]))
        else:
            self.batches = _lightly_batches(cfg, train.images, workers)
        self.spent, self.steps, self.losses = 0.0, 0, []

    @property
    def done(self) -> bool:
        return self.spent >= self.budget_s

    def run_for(self, seconds: float) -> None:
        """Train until ``seconds`` more have passed (or the budget is spent); counts only this run's time."""
        self.model.train()
        t_start = time.perf_counter()
        while not self.done and time.perf_counter() - t_start < seconds:
            t0 = time.perf_counter()
            frac = self.spent / self.budget_s  # schedule position by this run's training time
            set_lr(self.opt, lr_at(int(frac * 10_000), 10_000, int(self.warm_frac * 10_000), self.peak))
            if self.pipeline == "ours":
                loss = simclr_loss(self.model, self.aug, next(self.batches), self.cfg.temperature, self.g,
                                   channels_last=self.channels_last, autocast_dtype=self.dtype)
            else:
                v0, v1, crit = next(self.batches)  # lightly's per-image PIL transforms
                _, z = self.model(torch.cat([v0, v1]))  # (2N, 128)
                z0, z1 = z.chunk(2)
                loss = crit(z0, z1)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.steps += 1
            self.losses.append(loss.item())
            self.spent += time.perf_counter() - t0

    def summary(self) -> dict:
        bs = self.cfg.batch_size
        return {"steps": self.steps, "epochs": self.steps / self.steps_per_epoch, "train_seconds": self.spent,
                "images_per_s": self.steps * bs / self.spent, "workers": self.workers if self.pipeline != "ours" else None,
                "final_loss": sum(self.losses[-10:]) / max(1, len(self.losses[-10:])),
                "recipe": {"batch_size": bs, "temperature": self.cfg.temperature, "lr": self.cfg.lr,
                           "transform": "lightly SimCLRTransform defaults" if self.pipeline == "lightly-defaults"
                           else str(self.cfg.augment)}}


def recipe(pipeline: str, cfg):
    """The settings a pipeline trains with: ours and 'lightly' share ``cfg``; 'lightly-defaults' gets lightly's."""
    if pipeline == "lightly-defaults":
        from dataclasses import replace

        return replace(cfg, temperature=0.5, lr=0.06, batch_size=256, weight_decay=5e-4)
    return cfg


def run_interleaved(pipelines, cfg, train, budget_s: float, workers: int, slice_s: float = 20.0) -> dict:
    """Advance all pipelines in alternating slices of ``slice_s`` seconds until each has trained ``budget_s``:
    a change in machine load (other processes) then hits every pipeline alike."""
    runs = {name: TimedRun(name, recipe(name, cfg), train, budget_s, workers) for name in pipelines}
    bar = tqdm(total=int(budget_s * len(runs)), desc="pretrain " + " + ".join(pipelines), unit="s")
    while not all(r.done for r in runs.values()):
        for r in runs.values():
            r.run_for(slice_s)
        bar.n = int(sum(min(r.spent, budget_s) for r in runs.values()))
        bar.set_postfix({k: f"{r.steps / r.steps_per_epoch:.2f} ep, loss {r.losses[-1]:.3f}" for k, r in runs.items()})
    bar.close()
    return runs


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["results"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    w = 0.38
    for i, r in enumerate(rows):
        b1 = ax.bar(i - w / 2, 100 * r["knn"], w, color="C0", label="kNN (k=200)" if i == 0 else None)
        b2 = ax.bar(i + w / 2, 100 * r["linear"], w, color="C1", label="linear probe" if i == 0 else None)
        ax.bar_label(b1, fmt="%.1f", fontsize=8)
        ax.bar_label(b2, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(rows)), [r["name"].replace(" (", "\n(") for r in rows])
    lo = min(min(r["knn"], r["linear"]) for r in rows) * 100
    ax.set_ylim(max(0, lo - 10), 100)
    ax.set_ylabel("test top-1 (%)")
    widths = out["config"].get("widths") or SMALL_CNN_WIDTHS
    size = out["config"]["augment"]["size"]
    ax.set_title(f"Fashion-MNIST, {out['minutes']:g} min of SimCLR pretraining per pipeline\n"
                 f"(small CNN {'-'.join(map(str, widths))}, {size}x{size} views, "
                 f"{machine_label(out['machine']) if 'machine' in out else str(out['threads']) + ' threads'}; "
                 f"evaluated on {out.get('evaluated_on', 'test')})")
    ax.legend(loc="upper right", ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="pretraining budget per pipeline (default 10)")
    p.add_argument("--data-root", default=str(SYSTEM_FASHION_MNIST))
    p.add_argument("--probe-train", type=int, default=None, help="probe on this many training images (default: all 60k)")
    p.add_argument("--val", type=int, default=None,
                   help="tuning mode: hold out this many training images as the evaluation set (pretrain and probe-train "
                        "on the rest); the 10k test images are not touched")
    p.add_argument("--lightly-workers", type=int, default=0, help="DataLoader workers for lightly's transforms")
    p.add_argument("--no-lightly", action="store_true")
    p.add_argument("--lightly-recipes", default="ours,defaults",
                   help="lightly runs: 'ours' (our settings), 'defaults' (lightly's recipe), or both (default)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--save-encoders", default=None, metavar="DIR",
                   help="also save each pretrained encoder's state_dict to DIR/<pipeline>.pt (to probe it again later)")
    # Overrides of the cpu preset (default: the preset's value), for tuning the preset itself.
    p.add_argument("--lr", type=float, default=None, help="base lr (x B/256); default: the cpu preset's")
    p.add_argument("--tau", type=float, default=None, help="NT-Xent temperature; default: the cpu preset's")
    p.add_argument("--batch-size", type=int, default=None, help="default: the cpu preset's")
    p.add_argument("--weight-decay", type=float, default=None, help="default: the cpu preset's")
    p.add_argument("--optimizer", choices=("sgd", "lars"), default=None, help="default: the cpu preset's")
    p.add_argument("--widths", type=int, nargs="+", default=None, help="small_cnn widths; default: the cpu preset's")
    p.add_argument("--proj-hidden", type=int, default=None, help="projection head hidden width; default: the cpu preset's")
    p.add_argument("--proj-dim", type=int, default=None, help="projection head output width (z); default: the cpu preset's")
    p.add_argument("--crop-min", type=float, default=None, help="lower crop scale; default: the cpu preset's")
    p.add_argument("--strength", type=float, default=None, help="colour-jitter strength s; default: the cpu preset's")
    p.add_argument("--size", type=int, default=None,
                   help="side of the augmented views in pixels (train at low resolution, probe at 28); default: the cpu preset's")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    train = load_dataset("fashion-mnist", args.data_root, train=True)
    test = load_dataset("fashion-mnist", args.data_root, train=False)
    if args.val is not None:
        if not 1 <= args.val < len(train):
            raise SystemExit(f"--val must be in 1..{len(train) - 1}, got {args.val}")
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(12345))
        train, test = train.select(perm[args.val:]), train.select(perm[:args.val])
        print(f"tuning split: pretrain/probe-train on {len(train)}, evaluate on {len(test)} held-out training images",
              flush=True)
    over = {k: v for k, v in (("lr", args.lr), ("temperature", args.tau), ("batch_size", args.batch_size),
                              ("weight_decay", args.weight_decay), ("optimizer", args.optimizer),
                              ("proj_hidden", args.proj_hidden), ("proj_dim", args.proj_dim),
                              ("widths", None if args.widths is None else tuple(args.widths))) if v is not None}
    aug_over = {k: v for k, v in (("crop_scale", None if args.crop_min is None else (args.crop_min, 1.0)),
                                  ("strength", args.strength), ("size", args.size)) if v is not None}
    if aug_over:
        over["augment"] = aug_over
    cfg = preset("cpu", "fashion-mnist", seed=args.seed, progress=True, minutes=None, **over)  # budget: --minutes
    budget = 60 * args.minutes
    print(f"budget {args.minutes:g} min per pipeline; {cfg.encoder}, N={cfg.batch_size}, tau={cfg.temperature}, "
          f"lr={cfg.lr} x N/256, {cfg.optimizer}; augment {cfg.augment}", flush=True)

    encoders, runs = {}, {}
    save_dir = Path(args.save_encoders) if args.save_encoders else None
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    pipelines = ["ours"]
    if have_lightly() and not args.no_lightly:
        names = {"ours": "lightly", "defaults": "lightly-defaults"}
        pipelines += [names[r] for r in args.lightly_recipes.split(",") if r]
    if len(pipelines) == 1:
        print("lightly not importable (or --no-lightly): measuring our pipeline only", flush=True)
    for name, run in run_interleaved(pipelines, cfg, train, budget, args.lightly_workers).items():
        r = run.summary()
        print(f"{name}: {r['steps']} steps ({r['epochs']:.2f} epochs) in {r['train_seconds']:.0f} s, "
              f"{r['images_per_s']:.0f} images/s", flush=True)
        encoders[f"SimCLR ({name})"] = run.model.encoder
        runs[name] = r
        if save_dir is not None:
            torch.save(run.model.encoder.state_dict(), save_dir / f"{name}.pt")
    torch.manual_seed(cfg.seed)
    encoders["random init"] = build_model(cfg, 1).encoder

    ptrain = train if args.probe_train is None else train.subset(args.probe_train, seed=args.seed)
    t0 = time.perf_counter()
    feats = {name: (extract_features(enc, ptrain.images, channels_last=True), extract_features(enc, test.images, channels_last=True))
             for name, enc in encoders.items()}
    feats["raw pixels"] = (raw_pixel_features(ptrain.images), raw_pixel_features(test.images))
    rows = compare_representations(feats, ptrain.targets, test.targets)
    probe_s = time.perf_counter() - t0
    print(f"\n{'representation':<26} {'kNN':>7} {'linear':>7}")
    for r in rows:
        print(f"{r.name:<26} {100 * r.knn:6.2f}% {100 * r.linear:6.2f}%")
    out = {"minutes": args.minutes, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "platform": platform.platform(), "machine": machine(), "n_probe_train": len(ptrain), "n_test": len(test), "config": cfg.to_dict(),
           "evaluated_on": "test" if args.val is None else f"{args.val} held-out training images",
           "runs": runs, "probe_seconds": probe_s, "results": [r.__dict__ for r in rows],
           "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    by = {r.name: r for r in rows}
    for other in ("lightly", "lightly-defaults"):
        if other in runs:
            key = "ours_minus_" + other.replace("-", "_") + "_points"
            out[key] = {"knn": 100 * (by["SimCLR (ours)"].knn - by[f"SimCLR ({other})"].knn),
                        "linear": 100 * (by["SimCLR (ours)"].linear - by[f"SimCLR ({other})"].linear)}
            print(f"ours - {other}: kNN {out[key]['knn']:+.2f} points, linear {out[key]['linear']:+.2f} points")
    path = Path(args.out) if args.out else RESULTS / f"fashion_mnist_{args.minutes:g}min.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    plot(out, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
