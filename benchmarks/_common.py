"""Shared helpers for the benchmarks: optional import of lightly (installed apart, see scripts/install_lightly.sh)."""

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
