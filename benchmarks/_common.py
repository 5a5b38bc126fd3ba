"""Shared helpers for the benchmarks: optional import of lightly (installed apart, see scripts/install_lightly.sh), and
the machine a result was measured on."""

import os
import sys
from pathlib import Path

LIGHTLY_DIR = Path(os.environ.get("LIGHTLY_TARGET", Path.home() / ".cache" / "simclr-workbook" / "lightly-pkgs"))
RESULTS = Path(__file__).resolve().parent / "results"


def import_lightly():
    """Return the lightly module, or None when it is not installed (benchmarks then skip the comparison)."""
    if LIGHTLY_DIR.is_dir() and str(LIGHTLY_DIR) not in sys.path:
        sys.path.append(str(LIGHTLY_DIR))
    try:
        import lightly  # noqa: F401
        import lightly.loss  # noqa: F401
        return lightly
    except Exception:
        return None


def machine() -> dict:
    """What decides CPU speed here: the vector ISA torch dispatches to (AVX2, AVX512, ...), whether bfloat16 is
    native (so the trainer's autocast is on), the thread count and the CPU's name."""
    import platform

    import torch

    from simclr_core.train.loop import cpu_has_fast_bf16

    name = platform.processor()
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": name, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_fast_bf16(),
            "threads": torch.get_num_threads()}


def machine_label(m: dict) -> str:
    """e.g. 'AVX2, float32, 2 threads' for a plot title."""
    return f"{m['cpu_capability']}, {'bf16 autocast' if m['native_bf16'] else 'float32'}, {m['threads']} threads"
