"""Time to accuracy on real data: Fashion-MNIST, a fixed wall-clock budget of SimCLR pretraining, then probes.

For the same budget (default 10 minutes) and the same model (the cpu preset's small CNN + projection head,
``build_model`` of the recipe: same initial weights), pretrain with
- ours: ``simclr_core.train.loop.Trainer.step()``, what ``simclr pretrain`` runs (in-memory uint8 batches,
  ``BatchAugment`` twice, the model in channels_last under bfloat16 autocast where the CPU has native bf16,
  NT-Xent in float32, the trainer's SGD) with the cpu preset's optimizer, lr, tau, batch size and augmentation;
- lightly (when importable): lightly's SimCLRTransform in a DataLoader + NTXentLoss, as lightly's examples
  write the loop (float32, default memory format), everything else equal (our tuned lr, tau, batch size,
  crop scale, view size, weight decay and schedule: the stricter baseline, it isolates the speed of the pipeline);
- lightly-defaults (when importable): the same loop with lightly's own recipe: SimCLRTransform at its defaults
  (``bench_train.lightly_default_transform``, views at the images' own 28x28), NTXentLoss's tau = 0.5, SGD lr
  0.06 at batch 256 (momentum 0.9, weight decay 5e-4 and the warmup + cosine schedule as for the others);
all with a warmup + cosine learning rate driven by each run's own training time (5% warmup; ours passes it to the
Trainer as ``lr_fn``), stopped at the budget, and trained in alternating 20-second slices so that other load on
the machine hits every pipeline alike; then evaluate each encoder, the same architecture at random init, and raw
pixels with the workbook's one probe protocol (``simclr_core.eval.probe.PROTOCOL``: kNN k=200 t=0.1 and a
linear probe on standardised features run to convergence) on the 10 000 test images.

Time to accuracy: ours keeps a snapshot of its encoder every ``--snapshot-every`` seconds of its training time
(default a tenth of the budget). After training, the snapshots are probed in time order with the same protocol
until each of the kNN and linear accuracies the lightly runs reached at the end of their budget is reached; the
time ours needed is interpolated linearly between the last snapshot below and the first at or above (random init
is the snapshot at 0 s), and reported with lightly's training time and their ratio. Without lightly this part is
skipped (``--curve`` still probes every snapshot, for an accuracy-vs-time curve of ours alone).

    PYTHONPATH=$HOME/.cache/simclr-workbook/lightly-pkgs python benchmarks/bench_fashion_mnist.py --minutes 10
    python benchmarks/bench_fashion_mnist.py --minutes 2 --probe-train 10000      # a quick look
    python benchmarks/bench_fashion_mnist.py --minutes 0.2 --no-lightly --probe-train 2000 --out /tmp/bfm.json  # smallest
    python benchmarks/bench_fashion_mnist.py --minutes 3 --no-lightly --val 10000 --size 20 --out /tmp/t.json
        # tuning the preset (also --widths, --tau, --lr, --crop-min, ...): evaluate on 10k held-out *training* images, never on the test set

Writes benchmarks/results/fashion_mnist_<minutes>min.json and .png (or ``--out`` and the .png beside it).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, machine_label, open_trainer  # noqa: E402
from bench_train import endless, have_lightly, lightly_default_transform, lightly_loader  # noqa: E402
from simclr_core.data.datasets import SYSTEM_FASHION_MNIST, load_dataset  # noqa: E402
from simclr_core.eval.probe import PROTOCOL, features, probe, probe_precision, probe_table  # noqa: E402
from simclr_core.nn.models import SMALL_CNN_WIDTHS  # noqa: E402
from simclr_core.train.config import preset  # noqa: E402
from simclr_core.train.runs import run_precision  # noqa: E402
from simclr_core.train.schedule import build_optimizer, lr_at, scaled_lr, set_lr  # noqa: E402
from simclr_core.train.step import build_model  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

METRICS = ("knn", "linear")


def _lightly_batches(cfg, images, workers, transform=None):
    from lightly.loss import NTXentLoss

    crit = NTXentLoss(temperature=cfg.temperature)
    loader = lightly_loader(images, cfg.augment, cfg.batch_size, workers, cfg.seed, transform)
    for v0, v1 in endless(loader):
        yield v0, v1, crit


class TimedRun:
    """One pipeline's pretraining, advanced in time slices. Warmup + cosine learning rate driven by this run's
    own accumulated training time, so every pipeline gets a full schedule whatever its speed; same initial
    weights (``build_model(cfg)``), optimizer, lr, tau and batch size for ours and 'lightly'.

    Ours is a ``Trainer`` stepped one ``step()`` at a time, its ``lr_fn`` reading this run's spent time; with
    ``snapshot_every`` it keeps a copy of its encoder's weights each time that many more seconds of training
    have passed (``snapshots``: seconds, steps, state_dict; the copying is not counted as training time)."""

    def __init__(self, pipeline: str, cfg, train, budget_s: float, workers: int = 0, warm_frac: float = 0.05,
                 snapshot_every: float | None = None):
        self.pipeline, self.cfg, self.budget_s, self.warm_frac, self.workers = pipeline, cfg, budget_s, warm_frac, workers
        self.peak = scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling)
        self.spent, self.steps, self.losses = 0.0, 0, []
        self.snapshot_every, self.snapshots = snapshot_every, []
        self._next_snapshot = snapshot_every
        if pipeline == "ours":  # the trainer: the recipe's memory format and autocast, its optimizer
            self.trainer = open_trainer(cfg, train.images, run_precision(cfg, "cpu"), lr_fn=self._lr)
            self.model, self.steps_per_epoch = self.trainer.model, self.trainer.steps_per_epoch
            return
        # lightly's loop stays plain float32 in the default memory format, as lightly's examples write it
        self.model = build_model(cfg)
        self.opt = build_optimizer(cfg.optimizer, self.model, self.peak, cfg.momentum, cfg.weight_decay)
        self.steps_per_epoch = len(train) // cfg.batch_size
        transform = lightly_default_transform(train.images.shape[-1]) if pipeline == "lightly-defaults" else None
        self.batches = _lightly_batches(cfg, train.images, workers, transform)

    def _lr(self, step: int = 0) -> float:
        """The learning rate at this run's schedule position, its spent fraction of the budget."""
        frac = self.spent / self.budget_s
        return lr_at(int(frac * 10_000), 10_000, int(self.warm_frac * 10_000), self.peak)

    @property
    def done(self) -> bool:
        return self.spent >= self.budget_s

    def _lightly_step(self) -> torch.Tensor:
        self.model.train()
        set_lr(self.opt, self._lr())
        v0, v1, crit = next(self.batches)  # lightly's per-image PIL transforms
        _, z = self.model(torch.cat([v0, v1]))  # (2N, 128)
        z0, z1 = z.chunk(2)
        loss = crit(z0, z1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def run_for(self, seconds: float) -> None:
        """Train until ``seconds`` more have passed (or the budget is spent); counts only this run's time."""
        t_start = time.perf_counter()
        while not self.done and time.perf_counter() - t_start < seconds:
            t0 = time.perf_counter()
            loss = self.trainer.step() if self.pipeline == "ours" else self._lightly_step()
            self.losses.append(loss.item())
            self.steps += 1
            self.spent += time.perf_counter() - t0
            if self._next_snapshot is not None and self.spent >= self._next_snapshot and not self.done:
                self.snapshots.append({"seconds": self.spent, "steps": self.steps,
                                       "state": {k: v.detach().clone() for k, v in self.model.encoder.state_dict().items()}})
                while self._next_snapshot <= self.spent:
                    self._next_snapshot += self.snapshot_every

    def summary(self) -> dict:
        bs = self.cfg.batch_size
        return {"steps": self.steps, "epochs": self.steps / self.steps_per_epoch, "train_seconds": self.spent,
                "images_per_s": self.steps * bs / self.spent, "workers": self.workers if self.pipeline != "ours" else None,
                "final_loss": sum(self.losses[-10:]) / max(1, len(self.losses[-10:])),
                "loop": "Trainer.step" if self.pipeline == "ours" else "lightly's example loop",
                "snapshots": len(self.snapshots),
                "recipe": {"batch_size": bs, "temperature": self.cfg.temperature, "lr": self.cfg.lr,
                           "transform": "lightly SimCLRTransform defaults" if self.pipeline == "lightly-defaults"
                           else str(self.cfg.augment)}}


def pipeline_recipe(pipeline: str, cfg):
    """The recipe a pipeline trains with: ours and 'lightly' share ``cfg``; 'lightly-defaults' gets lightly's."""
    if pipeline == "lightly-defaults":
        return replace(cfg, temperature=0.5, lr=0.06, batch_size=256, weight_decay=5e-4)
    return cfg


def run_interleaved(pipelines, cfg, train, budget_s: float, workers: int, slice_s: float = 20.0,
                    snapshot_every: float | None = None) -> dict:
    """Advance all pipelines in alternating slices of ``slice_s`` seconds until each has trained ``budget_s``:
    a change in machine load (other processes) then hits every pipeline alike. Ours keeps encoder snapshots
    every ``snapshot_every`` seconds of its training time (None: none)."""
    runs = {name: TimedRun(name, pipeline_recipe(name, cfg), train, budget_s, workers,
                           snapshot_every=snapshot_every if name == "ours" else None) for name in pipelines}
    bar = tqdm(total=int(budget_s * len(runs)), desc="pretrain " + " + ".join(pipelines), unit="s")
    while not all(r.done for r in runs.values()):
        for r in runs.values():
            r.run_for(slice_s)
        bar.n = int(sum(min(r.spent, budget_s) for r in runs.values()))
        bar.set_postfix({k: f"{r.steps / r.steps_per_epoch:.2f} ep, loss {r.losses[-1]:.3f}" for k, r in runs.items()})
    bar.close()
    return runs


class Prober:
    """The workbook's one probe protocol (``simclr_core.eval.probe``) on the probe-train and evaluation images, on
    the run's device, with the augmentation's mean/std when it normalises: the protocol of every row."""

    def __init__(self, cfg, ptrain, test, protocol=PROTOCOL):
        self.ptrain, self.test, self.protocol = ptrain, test, protocol
        self.precision = run_precision(cfg, "cpu")
        self.norm = (cfg.augment.mean, cfg.augment.std) if cfg.augment.normalize else None

    def features(self, encoder) -> tuple[torch.Tensor, torch.Tensor]:
        return (features(encoder, self.ptrain.images, self.precision, self.protocol, self.norm),
                features(encoder, self.test.images, self.precision, self.protocol, self.norm))

    def scores(self, encoder, metrics=METRICS) -> dict:
        return probe(encoder, self.ptrain, self.test, self.precision, self.protocol, self.norm, metrics).scores()

    def table(self, encoders: dict) -> list[dict]:
        """One row per ``name -> encoder`` (None: raw pixels)."""
        return probe_table(encoders, self.ptrain, self.test, self.precision, self.protocol, self.norm)


def first_reach(points: list[tuple[float, float]], target: float) -> dict:
    """The first of ``points`` (seconds, accuracy), in time order, at or above ``target``: its time, and the time
    interpolated linearly from the point before it (the first point itself when it already reaches)."""
    for i, (t, acc) in enumerate(points):
        if acc >= target:
            if i == 0:
                return {"reached": True, "seconds": t, "first_snapshot_seconds": t}
            t0, a0 = points[i - 1]
            return {"reached": True, "seconds": t0 + (target - a0) / (acc - a0) * (t - t0), "first_snapshot_seconds": t}
    return {"reached": False, "seconds": None, "first_snapshot_seconds": None}


def time_to_accuracy(ours: TimedRun, final: dict, init: dict, targets: dict, other_seconds: dict, prober: Prober,
                     probe_all: bool) -> tuple[list[dict], dict]:
    """(ours' accuracy curve, the time-to-accuracy table).

    ``final``/``init``: ours' scores at the end of its budget and at random init; ``targets[other][metric]``: the
    accuracy 'other' reached at the end of its budget, which took it ``other_seconds[other]`` of training. The
    snapshots are probed in time order, each metric only while one of its targets is unreached (``probe_all``:
    every snapshot, both metrics)."""
    curve = [{"seconds": 0.0, "steps": 0, **init, "snapshot": "random init"}]
    pending = {(o, m) for o, ms in targets.items() for m in ms}

    def reached(o, m):
        return any(p.get(m) is not None and p[m] >= targets[o][m] for p in curve)

    pending = {k for k in pending if not reached(*k)}
    encoder = copy.deepcopy(ours.model.encoder)
    for snap in tqdm(ours.snapshots, desc="probe snapshots", unit="snapshot"):
        metrics = METRICS if probe_all else tuple(m for m in METRICS if any(pm == m for _, pm in pending))
        if not metrics:
            break
        encoder.load_state_dict(snap["state"])
        t0 = time.perf_counter()
        point = {"seconds": snap["seconds"], "steps": snap["steps"], **prober.scores(encoder, metrics)}
        point["probe_seconds"] = time.perf_counter() - t0
        curve.append(point)
        pending = {k for k in pending if not reached(*k)}
    curve.append({"seconds": ours.spent, "steps": ours.steps, **final, "snapshot": "end of budget"})
    table = {}
    for other, ms in targets.items():
        table[other] = {}
        for m, target in ms.items():
            hit = first_reach([(p["seconds"], p[m]) for p in curve if p.get(m) is not None], target)
            row = {"target": target, "other_seconds": other_seconds[other], **hit,
                   "random_init_reaches": init[m] >= target,  # then the target says nothing about training
                   "ours_over_other": None if not hit["reached"] else hit["seconds"] / other_seconds[other],
                   "speedup": None if not hit["reached"] or hit["seconds"] <= 0 else other_seconds[other] / hit["seconds"]}
            table[other][m] = row
    return curve, table


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["results"]
    curve = out.get("ours_curve") or []
    with_curve = len(curve) > 2
    fig, axes = plt.subplots(1, 2 if with_curve else 1, figsize=(15 if with_curve else 9, 4.5),
                             gridspec_kw={"width_ratios": [9, 6]} if with_curve else None)
    ax = axes[0] if with_curve else axes
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
    if with_curve:
        ax = axes[1]
        for m, color, label in (("knn", "C0", "kNN"), ("linear", "C1", "linear")):
            pts = [(p["seconds"], 100 * p[m]) for p in curve if p.get(m) is not None]
            ax.plot(*zip(*pts), "o-", color=color, ms=3, label=f"ours, {label}")
        tta = out.get("time_to_accuracy") or {}
        for (other, ms), ls in zip(((o, v) for o, v in tta.items() if isinstance(v, dict) and "knn" in v), ("--", ":")):
            for m, color in (("knn", "C0"), ("linear", "C1")):
                r = ms[m]
                ax.axhline(100 * r["target"], color=color, ls=ls, lw=1, label=f"{other}, {m} at {r['other_seconds']:.0f} s")
                if r["reached"]:
                    ax.plot([r["seconds"]], [100 * r["target"]], "x", color="k", ms=7)
        ax.set_xlabel("ours' training time (s)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title("ours along the way\n(x: where it reaches lightly's end-of-budget accuracy)")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--snapshot-every", type=float, default=None, metavar="SECONDS",
                   help="time to accuracy: snapshot ours' encoder every SECONDS of its training time (default: a tenth "
                        "of the budget)")
    p.add_argument("--curve", action="store_true",
                   help="probe every snapshot with both metrics (an accuracy-vs-time curve of ours), also without lightly")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--save-encoders", default=None, metavar="DIR",
                   help="also save each pretrained encoder's state_dict to DIR/<pipeline>.pt, and ours' snapshots to "
                        "DIR/ours_<seconds>s.pt (to probe them again later)")
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
    if not args.minutes > 0:
        raise SystemExit(f"--minutes must be > 0, got {args.minutes}")
    if args.snapshot_every is not None and not args.snapshot_every > 0:
        raise SystemExit(f"--snapshot-every must be > 0 seconds, got {args.snapshot_every}")
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
    cfg = preset("cpu", "fashion-mnist", seed=args.seed, minutes=None, **over)  # budget: --minutes
    budget = 60 * args.minutes
    print(f"budget {args.minutes:g} min per pipeline; {cfg.encoder}, N={cfg.batch_size}, tau={cfg.temperature}, "
          f"lr={cfg.lr} x N/256, {cfg.optimizer}; augment {cfg.augment}", flush=True)

    pipelines = ["ours"]
    if not args.no_lightly and have_lightly():
        names = {"ours": "lightly", "defaults": "lightly-defaults"}
        pipelines += [names[r] for r in args.lightly_recipes.split(",") if r]
    if len(pipelines) == 1:
        print("lightly not importable (or --no-lightly): measuring our pipeline only", flush=True)
    with_tta = len(pipelines) > 1 or args.curve
    snapshot_every = (args.snapshot_every or budget / 10) if with_tta else None

    encoders, runs = {}, {}
    save_dir = Path(args.save_encoders) if args.save_encoders else None
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    timed = run_interleaved(pipelines, cfg, train, budget, args.lightly_workers, snapshot_every=snapshot_every)
    for name, run in timed.items():
        r = run.summary()
        print(f"{name}: {r['steps']} steps ({r['epochs']:.2f} epochs) in {r['train_seconds']:.0f} s, "
              f"{r['images_per_s']:.0f} images/s", flush=True)
        encoders[f"SimCLR ({name})"] = run.model.encoder
        runs[name] = r
        if save_dir is not None:
            torch.save(run.model.encoder.state_dict(), save_dir / f"{name}.pt")
            for snap in run.snapshots:
                torch.save(snap["state"], save_dir / f"{name}_{snap['seconds']:.0f}s.pt")
    encoders["random init"] = build_model(cfg).encoder  # ours' (and lightly's) initial weights: from cfg.seed

    ptrain = train if args.probe_train is None else train.subset(args.probe_train, seed=args.seed)
    prober = Prober(cfg, ptrain, test)
    t0 = time.perf_counter()
    rows = prober.table({**encoders, "raw pixels": None})
    probe_s = time.perf_counter() - t0
    print(f"\n{'representation':<26} {'kNN':>7} {'linear':>7}")
    for r in rows:
        print(f"{r['name']:<26} {100 * r['knn']:6.2f}% {100 * r['linear']:6.2f}%")
    out = {"minutes": args.minutes, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "platform": platform.platform(), "machine": machine(), "n_probe_train": len(ptrain), "n_test": len(test),
           "config": cfg.to_dict(), "precision": probe_precision(prober.precision).describe(),
           "protocol": PROTOCOL.describe(),
           "evaluated_on": "test" if args.val is None else f"{args.val} held-out training images",
           "runs": runs, "probe_seconds": probe_s, "results": rows,
           "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    by = {r["name"]: r for r in rows}
    for other in ("lightly", "lightly-defaults"):
        if other in runs:
            key = "ours_minus_" + other.replace("-", "_") + "_points"
            out[key] = {m: 100 * (by["SimCLR (ours)"][m] - by[f"SimCLR ({other})"][m]) for m in METRICS}
            print(f"ours - {other}: kNN {out[key]['knn']:+.2f} points, linear {out[key]['linear']:+.2f} points")

    # time to accuracy: when does ours reach what each lightly run reached at the end of its budget?
    others = [o for o in ("lightly", "lightly-defaults") if o in runs]
    if with_tta:
        targets = {o: {m: by[f"SimCLR ({o})"][m] for m in METRICS} for o in others}
        score = lambda name: {m: by[name][m] for m in METRICS}  # noqa: E731
        t0 = time.perf_counter()
        curve, table = time_to_accuracy(timed["ours"], score("SimCLR (ours)"), score("random init"), targets,
                                        {o: runs[o]["train_seconds"] for o in others}, prober, args.curve)
        out["snapshot_every_s"] = snapshot_every
        out["snapshot_probe_seconds"] = time.perf_counter() - t0
        out["ours_curve"] = curve
    if others:
        out["time_to_accuracy"] = table
        print("\ntime to accuracy (ours' training time to reach what lightly reached at the end of its budget):")
        for other, ms in table.items():
            for m, r in ms.items():
                head = f"  {other:<17} {m:<6} {100 * r['target']:6.2f}% after {r['other_seconds']:.0f} s: ours "
                if r["reached"]:
                    print(head + f"{r['seconds']:.0f} s (first snapshot at or above: {r['first_snapshot_seconds']:.0f} s)"
                          f" = {r['ours_over_other']:.2f} of lightly's time"
                          + (f", {r['speedup']:.1f}x faster" if r["speedup"] else "")
                          + (" (random init already reaches it)" if r["random_init_reaches"] else ""))
                else:
                    print(head + f"not reached within its {runs['ours']['train_seconds']:.0f} s")
    else:
        reason = "--no-lightly" if args.no_lightly else "lightly is not importable (scripts/install_lightly.sh)"
        out["time_to_accuracy"] = {"skipped": f"{reason}: no lightly accuracy to reach"}
        print(f"\ntime to accuracy: skipped ({reason}): there is no lightly accuracy to reach", flush=True)
    path = Path(args.out) if args.out else RESULTS / f"fashion_mnist_{args.minutes:g}min.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    plot(out, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
