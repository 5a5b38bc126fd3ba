"""The ``simclr`` command (also ``python -m simclr_core``).

    simclr pretrain --dataset cifar10 --preset cpu --out runs/cifar10_cpu [--epochs N --batch-size B ...]
    simclr probe runs/cifar10_cpu

``pretrain`` trains SimCLR (Chen et al. 2020, arXiv:2002.05709) with a preset from simclr_core.train.config
and any setting overridden by a flag; ``probe`` evaluates a run folder's encoder next to a random-init
encoder and raw pixels (kNN and linear probe); ``export`` writes a run's model as a small folder to share. Errors a
user can fix (bad values, missing data, a checkpoint that does not fit) are printed as one clear message without a
traceback, exit status 2. The parser, its option types and --help are ``simclr_core.cli_args``.
"""

from __future__ import annotations

import sys

from .cli_args import build_parser

__all__ = ["main", "build_parser"]


def _pretrain(args) -> int:
    from .eval.metrics import format_probe_table
    from .train.config import RunOptions, preset
    from .train.probe import probe_run
    from .train.runs import pretrain

    overrides = {k: v for k, v in {
        "epochs": args.epochs, "batch_size": args.batch_size, "temperature": args.temperature, "lr": args.lr,
        "optimizer": args.optimizer, "encoder": args.encoder, "warmup_epochs": args.warmup_epochs,
        "weight_decay": args.weight_decay, "subset": args.subset, "widths": args.widths, "minutes": args.minutes,
    }.items() if v is not None}
    if args.epochs is not None and args.minutes is None:
        overrides["minutes"] = None  # --epochs N alone: exactly N epochs, whatever the preset's time budget
    if "epochs" in overrides and "warmup_epochs" not in overrides:
        base = preset(args.preset, args.dataset)
        overrides["warmup_epochs"] = min(base.warmup_epochs, overrides["epochs"])
    if args.encoder is not None and args.encoder != "small_cnn" and args.widths is None:
        overrides["widths"] = None  # a preset's small_cnn widths do not apply to another encoder
    recipe = preset(args.preset, args.dataset, seed=args.seed, sync_bn=args.sync_bn, amp=not args.no_amp, **overrides)
    options = RunOptions(out=args.out, data_root=args.data_root, download=args.download, device=args.device,
                         num_threads=args.num_threads, progress=not args.no_progress, time_limit_s=args.time_limit,
                         resume=args.resume, force=args.force)
    result = pretrain(recipe, options)
    if result.rank != 0:  # under torchrun rank 0 reports and probes
        return 0
    if result.run_dir is not None:
        steps = sum(h["steps"] for h in result.history)
        last = result.history[-1] if result.history else None
        knn = f", kNN monitor {100 * last['knn_acc']:.2f}%" if last and "knn_acc" in last else ""
        how = "stopped by the time limit after" if result.stopped_early else "done:"
        print(f"{how} {steps} steps ({steps / result.extra['steps_per_epoch']:.2f} epochs) in {result.run_dir}"
              + (f"; last loss {last['loss']:.4f}{knn}" if last else ""), file=sys.stderr)
        if result.stopped_early:
            print(f"continue with: simclr pretrain ... --out {args.out} --resume", file=sys.stderr)
    if args.probe and not result.stopped_early:
        print(format_probe_table(probe_run(args.out, device=args.device, data_root=args.data_root,
                                           progress=not args.no_progress)))
    elif args.probe:
        print(f"no probe: the run stopped before its end; probe it with: simclr probe {args.out}", file=sys.stderr)
    return 0


def _probe(args) -> int:
    from .eval.metrics import format_probe_table
    from .train.probe import probe_run

    result = probe_run(args.run, device=args.device, train_subset=args.train_subset, test_subset=args.test_subset,
                       k=args.k, t=args.knn_t, weight_decay=args.weight_decay, data_root=args.data_root,
                       progress=not args.no_progress)
    print(format_probe_table(result))
    return 0


def _export(args) -> int:
    from .train.pretrained import MODEL_FILE, export_pretrained

    out = export_pretrained(args.run, args.out, command=args.made_with)
    size = (out / MODEL_FILE).stat().st_size
    print(f"exported {args.run} -> {out} (model.pt: {size / 2**20:.2f} MiB float16)\n"
          f"load it in Python with:\n"
          f"    from simclr_core.train.pretrained import load_pretrained\n"
          f"    pretrained = load_pretrained({str(out)!r})\n"
          f"    h = pretrained.features(images_uint8)  # (n, C, H, W) uint8 -> (n, d) features")
    return 0


def _kept(args) -> str:
    """What an interrupted pretraining left in --out, in words."""
    from pathlib import Path

    if args.command != "pretrain":
        return "nothing was written"
    from .train.runfolder import CHECKPOINT

    ckpt = Path(args.out) / CHECKPOINT
    if not ckpt.is_file():
        return f"no epoch was complete, so {args.out} holds no checkpoint yet (start again without --resume)"
    try:
        from .train.checkpoint import load_checkpoint

        epoch = int(load_checkpoint(ckpt)["epoch"])
        return f"the checkpoint of epoch {epoch + 1} is kept in {ckpt} (continue with --resume)"
    except Exception:
        return f"{ckpt} is kept (continue with --resume)"


def main(argv=None) -> int:
    import signal

    from .data.datasets import DatasetUnavailable
    from .train.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)

    def on_sigterm(signum, frame):  # SIGTERM ends a run like Ctrl-C: a message, the last checkpoint kept
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm) if _main_thread() else None
    try:
        return {"pretrain": _pretrain, "probe": _probe, "export": _export}[args.command](args)
    except (DatasetUnavailable, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"simclr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a file-size limit, a folder made read-only mid-run
        print(f"simclr {args.command}: error: {err.strerror or err} ({getattr(err, 'filename', '') or ''})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"simclr {args.command}: interrupted; {_kept(args)}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
