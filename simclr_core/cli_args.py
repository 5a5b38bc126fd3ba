"""The ``simclr`` command line: its parser (``build_parser``), the value types of its options, and its --help.

Each option's value is parsed and checked here, and a bad one is named with the option and the text given (argparse
exits with status 2). The commands themselves run in ``simclr_core.cli``.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["build_parser"]


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


def _seed(s: str) -> int:
    v = _int_at_least("--seed", 0)(s)
    if v >= 2**32:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in 0..{2**32 - 1}, got {s!r}")
    return v


def _folder(name: str):
    """argparse type: a folder path that is not empty (an empty one would mean the current folder)."""
    def parse(s: str) -> str:
        if not s.strip():
            raise argparse.ArgumentTypeError(f"{name} must be a folder path, got {s!r}")
        return s
    return parse


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


def _nonneg_float(name):
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = math.nan
        if not (v >= 0 and math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number >= 0, got {s!r}")
        return v
    return parse


def _device(s: str) -> str:
    from .precision import parse_device  # the one place a device's spelling is decided

    try:
        return parse_device(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--device must be auto, cpu, cuda, cuda:<index> or mps, got {s!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simclr", description="SimCLR pretraining and linear evaluation (Chen et al. 2020).",
                                allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    _add_pretrain(sub)
    _add_probe(sub)
    _add_export(sub)
    return p


def _add_pretrain(sub) -> None:
    from .data.datasets import DATASETS
    from .nn.models import ENCODERS
    from .train.config import PRESET_NAMES, preset
    from .train.schedule import OPTIMIZERS

    t = sub.add_parser("pretrain", help="pretrain a SimCLR encoder", formatter_class=_DefaultsFormatter,
                       allow_abbrev=False,
                       description="Pretrain SimCLR; writes config.json, metrics.jsonl and checkpoint.pt (after every "
                                   "epoch, atomically) to --out. Settings not given come from the preset "
                                   "(default: the preset's value).")
    t.add_argument("--dataset", choices=DATASETS, default="cifar10", help="training data")
    t.add_argument("--preset", choices=PRESET_NAMES, default="cpu",
                   help="cpu: small CNN, minutes on a laptop; gpu: ResNet-18, batch 512, LARS, 500 epochs (paper B.9)")
    t.add_argument("--out", required=True, help="run folder, e.g. runs/cifar10_cpu")
    t.add_argument("--force", action="store_true", help="write the run into a non-empty folder that is not a run "
                                                        "(its files are kept; none may have a run file's name)")
    t.add_argument("--data-root", type=_folder("--data-root"),
                   help="dataset folder (default: $SIMCLR_DATA or ~/.cache/simclr-workbook/data; "
                        "Fashion-MNIST: /usr/share/datasets/fashion-mnist when present)")
    t.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    t.add_argument("--epochs", type=_positive_int("--epochs"), help="epochs to train (alone: exactly this many, no time budget)")
    t.add_argument("--batch-size", type=_positive_int("--batch-size"), help="N, images per step (2N views)")
    t.add_argument("--temperature", "--tau", type=_positive_float("--temperature"), help="NT-Xent temperature tau")
    t.add_argument("--lr", type=_positive_float("--lr"), help="base learning rate (scaled by batch/256)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd (with momentum) or lars")
    t.add_argument("--encoder", choices=sorted(ENCODERS), help="the encoder f")
    t.add_argument("--widths", type=_widths, help="small_cnn channel widths, e.g. 16,32,64")
    t.add_argument("--warmup-epochs", type=_nonneg_float("--warmup-epochs"), help="epochs of linear learning-rate warmup")
    t.add_argument("--weight-decay", type=_nonneg_float("--weight-decay"), help="L2 weight decay (not on BN and biases)")
    t.add_argument("--subset", type=_positive_int("--subset"), help="train on a random subset of this many images")
    t.add_argument("--seed", type=_seed, default=0, help="seed of weights, batches and views")
    t.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:<i> or mps")
    t.add_argument("--num-threads", type=_positive_int("--num-threads"), help="torch CPU threads (default: torch's)")
    t.add_argument("--minutes", type=_positive_float("--minutes"),
                   help="fit pretraining into about this many minutes: a few steps are timed first and the run gets the "
                        "steps that fit (at most the preset's epochs), its learning-rate schedule ending there "
                        f"(the cpu preset: {preset('cpu').minutes:g} minutes)")
    t.add_argument("--time-limit", type=_positive_float("--time-limit"),
                   help="stop after this many seconds of training, wherever the schedule is (a safety net; see --minutes)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes under torchrun (CUDA)")
    t.add_argument("--no-amp", action="store_true", help="float32 everywhere (default: bfloat16 autocast on CUDA and on "
                                                         "CPUs with native bf16)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--probe", action="store_true", help="run `simclr probe` on the run when pretraining ends")


def _add_probe(sub) -> None:
    q = sub.add_parser("probe", help="kNN + linear probe of a run vs random init vs raw pixels",
                       formatter_class=_DefaultsFormatter, allow_abbrev=False)
    q.add_argument("run", type=_folder("run"), help="run folder written by `simclr pretrain`")
    q.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:<i> or mps")
    q.add_argument("--data-root", type=_folder("--data-root"),
                   help="dataset folder (default: $SIMCLR_DATA or ~/.cache/simclr-workbook/data, as for pretrain; a "
                        "received run's recorded folder is only named, never read unless given here)")
    q.add_argument("--train-subset", type=_int_at_least("--train-subset", 2), help="probe on this many training images")
    q.add_argument("--test-subset", type=_positive_int("--test-subset"), help="evaluate on this many test images")
    # default None: the workbook's one probe protocol (eval.probe.PROTOCOL), so the command and every other probe agree
    # (tests/test_probe_protocol.py holds these help texts to it; torch is not imported for --help)
    q.add_argument("--k", type=_positive_int("--k"), help="kNN neighbours (default: the protocol's, 200)")
    q.add_argument("--knn-t", type=_positive_float("--knn-t"), help="kNN vote temperature (default: the protocol's, 0.1)")
    q.add_argument("--weight-decay", type=_nonneg_float("--weight-decay"),
                   help="L2 penalty of the linear probe (default: the protocol's, 1e-4)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_export(sub) -> None:
    e = sub.add_parser("export", help="write a run's model as a small float16 folder to ship or share",
                       formatter_class=_DefaultsFormatter, allow_abbrev=False,
                       description="Write model.pt (f and g, float16), config.json (recipe, steps, command), "
                                   "probe.json, metrics.jsonl and SHA256SUMS (a digest of each) of a run folder to "
                                   "--out; load it with simclr_core.train.pretrained.load_pretrained, which checks "
                                   "every digest.")
    e.add_argument("run", type=_folder("run"), help="run folder written by `simclr pretrain`")
    e.add_argument("--out", required=True, type=_folder("--out"), help="new (or empty) folder for the exported model")
    e.add_argument("--made-with", default="", help="the command that made the run, recorded in config.json")


_FROM_PRESET = {"epochs": "epochs", "batch_size": "batch_size", "temperature": "temperature", "lr": "lr",
                "optimizer": "optimizer", "encoder": "encoder", "widths": "widths", "warmup_epochs": "warmup_epochs",
                "weight_decay": "weight_decay", "minutes": "minutes"}


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in --help; for the settings a preset decides, the presets' values."""

    def _get_help_string(self, action):
        field = _FROM_PRESET.get(action.dest)
        if field is not None and action.default is None:
            from .train.config import PRESETS

            from .nn.models import SMALL_CNN_WIDTHS

            vals = {}
            for name, ds in sorted(PRESETS):
                v = PRESETS[(name, ds)].get(field)
                if field == "widths" and v is None:  # the encoder's own default
                    v = SMALL_CNN_WIDTHS if PRESETS[(name, ds)]["encoder"] == "small_cnn" else "n/a"
                vals[f"{name} {ds}"] = v
            shown = ", ".join(f"{k}: {_show(v)}" for k, v in vals.items())
            return f"{action.help} (default: the preset's; {shown})"
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _show(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return f"{v:g}" if isinstance(v, float) else str(v)

