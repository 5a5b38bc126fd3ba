"""The ``simclr`` command (also ``python -m simclr_core``).

    simclr pretrain --dataset cifar10 --preset cpu --out runs/cifar10_cpu [--epochs N --batch-size B ...]
    simclr probe runs/cifar10_cpu

``pretrain`` trains SimCLR (Chen et al. 2020, arXiv:2002.05709) with a preset from simclr_core.config
and any setting overridden by a flag; ``probe`` evaluates a run folder's encoder next to a random-init
encoder and raw pixels (kNN and linear probe). Errors a user can fix (bad values, missing data, a
checkpoint that does not fit) are printed as one clear message without a traceback, exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys

__all__ = ["main", "build_parser"]


def _int_at_least(name: str, low: int):
    """argparse type: an integer >= low; the error names the option and the value."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = None
        if v is None or v < low:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {s!r}")
        return v
    return parse


def _positive_int(name: str):
    return _int_at_least(name, 1)


def _positive_float(name):
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number > 0, got {s!r}") from None
        if not (v > 0 and math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number > 0, got {s!r}")
        return v
    return parse


def _widths(s: str) -> tuple[int, ...]:
    try:
        w = tuple(int(x) for x in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--widths must be comma-separated positive integers like 16,32,64, got {s!r}") from None
    if not w or min(w) < 1:
        raise argparse.ArgumentTypeError(f"--widths must be comma-separated positive integers like 16,32,64, got {s!r}")
    return w


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS, preset
    from .data import DATASETS
    from .models import ENCODERS
    from .schedule import OPTIMIZERS

    p = argparse.ArgumentParser(prog="simclr", description="SimCLR pretraining and linear evaluation (Chen et al. 2020).")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("pretrain", help="pretrain a SimCLR encoder", description="Pretrain SimCLR; writes config.json, "
                       "metrics.jsonl and checkpoint.pt (every epoch, atomically) to --out.")
    t.add_argument("--dataset", choices=DATASETS, default="cifar10")
    t.add_argument("--preset", choices=PRESETS, default="cpu",
                   help="cpu: small CNN, minutes on a laptop; gpu: ResNet-18, batch 512, LARS, 500 epochs (paper B.9)")
    t.add_argument("--out", required=True, help="run folder, e.g. runs/cifar10_cpu")
    t.add_argument("--data-root", help="dataset folder (default: $SIMCLR_DATA or ~/.cache/simclr-workbook/data)")
    t.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    t.add_argument("--epochs", type=_positive_int("--epochs"))
    t.add_argument("--batch-size", type=_positive_int("--batch-size"))
    t.add_argument("--temperature", "--tau", type=_positive_float("--temperature"))
    t.add_argument("--lr", type=_positive_float("--lr"), help="base learning rate (scaled by batch/256)")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--encoder", choices=sorted(ENCODERS))
    t.add_argument("--widths", type=_widths, help="small_cnn channel widths, e.g. 16,32,64")
    t.add_argument("--warmup-epochs", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--subset", type=_positive_int("--subset"), help="train on a random subset of this many images")
    t.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    t.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:<i>, mps")
    t.add_argument("--num-threads", type=_positive_int("--num-threads"))
    t.add_argument("--minutes", type=_positive_float("--minutes"),
                   help="fit pretraining into about this many minutes: a few steps are timed first and the run gets the "
                        "steps that fit (at most the preset's epochs), its learning-rate schedule ending there "
                        f"(the cpu preset: {preset('cpu').minutes:g} minutes; --epochs without --minutes trains "
                        "exactly that many epochs)")
    t.add_argument("--time-limit", type=_positive_float("--time-limit"),
                   help="stop after this many seconds of training, wherever the schedule is (a safety net; see --minutes)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes under torchrun (CUDA)")
    t.add_argument("--no-amp", action="store_true", help="train in float32 (default: bfloat16 autocast on CUDA and on CPUs with native bf16)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    t.add_argument("--probe", action="store_true", help="run `simclr probe` on the run when pretraining ends")

    q = sub.add_parser("probe", help="kNN + linear probe of a run vs random init vs raw pixels")
    q.add_argument("run", help="run folder written by `simclr pretrain`")
    q.add_argument("--device", default="auto")
    q.add_argument("--train-subset", type=_positive_int("--train-subset"), help="probe on this many training images")
    q.add_argument("--test-subset", type=_positive_int("--test-subset"), help="evaluate on this many test images")
    q.add_argument("--k", type=_positive_int("--k"), default=200, help="kNN neighbours (default 200)")
    q.add_argument("--knn-t", type=_positive_float("--knn-t"), default=0.1, help="kNN vote temperature (default 0.1)")
    q.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty of the linear probe")
    q.add_argument("--no-progress", action="store_true")
    return p


def _pretrain(args) -> int:
    from .config import preset
    from .trainer import pretrain

    overrides = {k: v for k, v in {
        "epochs": args.epochs, "batch_size": args.batch_size, "temperature": args.temperature, "lr": args.lr,
        "optimizer": args.optimizer, "encoder": args.encoder, "warmup_epochs": args.warmup_epochs,
        "weight_decay": args.weight_decay, "subset": args.subset, "num_threads": args.num_threads,
        "time_limit_s": args.time_limit, "widths": args.widths, "minutes": args.minutes,
    }.items() if v is not None}
    if args.epochs is not None and args.minutes is None:
        overrides["minutes"] = None  # --epochs N alone: exactly N epochs, whatever the preset's time budget
    if "epochs" in overrides and "warmup_epochs" not in overrides:
        base = preset(args.preset, args.dataset)
        overrides["warmup_epochs"] = min(base.warmup_epochs, overrides["epochs"])
    cfg = preset(args.preset, args.dataset, data_root=args.data_root, download=args.download, seed=args.seed,
                 device=args.device, out=args.out, resume=args.resume, sync_bn=args.sync_bn, amp=not args.no_amp,
                 progress=not args.no_progress, **overrides)
    result = pretrain(cfg)
    if result.history and (result.run_dir is not None):
        last = result.history[-1]
        steps = sum(h["steps"] for h in result.history)
        print(f"done: {len(result.history)} epochs ({steps} steps) logged in {result.run_dir}; last loss {last['loss']:.4f}, "
              f"kNN monitor {100 * last['knn_acc']:.2f}%", file=sys.stderr)
    if args.probe and not result.stopped_early and _is_main():
        from .evaluate import format_probe_table, probe_run

        print(format_probe_table(probe_run(args.out, device=args.device, progress=not args.no_progress)))
    return 0


def _is_main() -> bool:
    import os
    return int(os.environ.get("RANK", "0")) == 0


def _probe(args) -> int:
    from .evaluate import format_probe_table, probe_run

    result = probe_run(args.run, device=args.device, train_subset=args.train_subset, test_subset=args.test_subset,
                       k=args.k, t=args.knn_t, weight_decay=args.weight_decay, progress=not args.no_progress)
    print(format_probe_table(result))
    return 0


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .data import DatasetUnavailable

    args = build_parser().parse_args(argv)
    try:
        return _pretrain(args) if args.command == "pretrain" else _probe(args)
    except (DatasetUnavailable, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"simclr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"simclr {args.command}: interrupted; the last completed epoch's checkpoint is kept "
              f"(continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
