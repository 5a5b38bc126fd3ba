"""The package that notebook kernels and subprocesses import is this checkout's, not another clone's."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_installed_simclr_core_is_this_checkout():
    # From / the cwd cannot shadow the install: this is what a kernel started elsewhere sees.
    out = subprocess.run([sys.executable, "-c", "import simclr_core; print(simclr_core.__file__)"], cwd="/",
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    where = Path(out.stdout.strip()).resolve().parents[1]
    assert where == ROOT, (f"simclr_core is installed from {where}, not from this checkout {ROOT}: "
                           f"run `bash scripts/setup_env.sh` (or `pip install --no-deps -e {ROOT}`)")
