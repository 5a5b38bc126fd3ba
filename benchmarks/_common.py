"""Shared helpers for the benchmarks: optional import of lightly (installed apart, see scripts/install_lightly.sh),
the machine a result was measured on, and a ``Trainer`` to time steps with.

Every SimCLR pretraining of ours in the benchmarks runs through ``simclr_core.train.loop.Trainer`` (what
``simclr pretrain`` runs), one ``step()`` at a time; only lightly's loop, the peer library's, is written out.
"""

import os
import sys
from dataclasses import replace
from pathlib import Path

LIGHTLY_DIR = Path(os.environ.get("LIGHTLY_TARGET", Path.home() / ".cache" / "simclr-workbook" / "lightly-pkgs"))
RESULTS = Path(__file__).resolve().parent / "results"
ENDLESS_EPOCHS = 100_000  # a benchmark's trainer is stepped for a time, never to the end of a schedule (the
# recipe's own bound, train.config.SIZE_LIMITS)


def import_lightly():
    """Return the lightly module, or None when it is not installed (benchmarks then skip the comparison)."""
    if LIGHTLY_DIR.is_dir() and str(LIGHTLY_DIR) not in sys.path:
        sys.path.append(str(LIGHTLY_DIR))
    try:
        import lightly  # noqa: F401
        import lightly.loss  # noqa: F401
        import lightly.transforms  # noqa: F401
        return lightly
    except Exception:
        return None


def machine() -> dict:
    """What decides CPU speed here: the CPU's name, its kind in the precision policy (``simclr_core.precision``:
    amx, avx512_bf16, avx512, avx2, other) and the ISA flags behind it, the vector ISA torch dispatches to (AVX2,
    AVX512, ...), a cap on oneDNN's ISA, whether bfloat16 is native (so the trainer's autocast is on) and the
    thread count."""
    import platform

    import torch

    from simclr_core.precision import cpu_has_fast_bf16, cpu_kind, read_cpu_info

    name = platform.processor()
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = read_cpu_info()
    isa = sorted(f for f in info.flags if f.startswith(("avx", "amx")))
    return {"cpu": name, "cpu_kind": cpu_kind(info), "isa_flags": isa, "cpu_capability": info.aten_capability,
            "onednn_max_cpu_isa": info.onednn_max_isa, "native_bf16": cpu_has_fast_bf16(info),
            "threads": torch.get_num_threads()}


def machine_label(m: dict) -> str:
    """e.g. 'avx2, float32, 2 threads' for a plot title."""
    return f"{m.get('cpu_kind', m['cpu_capability'])}, {'bf16 autocast' if m['native_bf16'] else 'float32'}, {m['threads']} threads"


def open_trainer(recipe, images, precision, model=None, lr_fn=None):
    """A ``Trainer`` of ``recipe`` on uint8 ``images`` to call ``step()`` on for as long as a benchmark likes.

    ``model``: the SimCLR model to train (default ``build_model(recipe)``: fast layers as the recipe says, weights
    from ``recipe.seed``); it is put on the precision's device and memory format here. The recipe's epochs are
    raised to ``ENDLESS_EPOCHS`` so the trainer never reaches the end of its schedule; ``lr_fn(step) -> lr``
    (default: the recipe's peak lr, constant: a benchmark that times steps needs no schedule)."""
    from simclr_core.train.loop import Trainer
    from simclr_core.train.schedule import scaled_lr
    from simclr_core.train.step import build_model

    model = precision.prepare(model if model is not None else build_model(recipe))
    open_recipe = replace(recipe, epochs=max(recipe.epochs, ENDLESS_EPOCHS), max_steps=None, minutes=None)
    if lr_fn is None:
        peak = scaled_lr(recipe.lr, recipe.batch_size, recipe.lr_scaling)
        lr_fn = lambda step: peak  # noqa: E731
    return Trainer(open_recipe, model, images, precision, lr_fn=lr_fn)
