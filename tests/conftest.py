"""Fixtures shared by several test modules."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from simclr_core.data.synthetic import write_fake_cifar10


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """A 200 + 60 image CIFAR-format folder (class-structured synthetic images)."""
    return write_fake_cifar10(tmp_path_factory.mktemp("cifar"), n_train=200, n_test=60, seed=0)


@pytest.fixture(scope="session")
def smoke_site(tmp_path_factory):
    """One smoke build of the rendered site (scripts/build_site.py --smoke), shared by the whole session: its
    folder holds html/, jupyter_execute/ and src/, whose notebooks/ are the notebooks executed in smoke mode, so the
    notebook tests read them instead of running each notebook a second time.

    SIMCLR_SITE_BUILD=<folder> checks an existing build instead (a full one from ``make site``, say: build/site)."""
    given = os.environ.get("SIMCLR_SITE_BUILD")
    if given:
        out = Path(given).resolve()
        if not (out / "html" / "build_info.json").is_file():
            pytest.fail(f"SIMCLR_SITE_BUILD={given}: no html/build_info.json there; build one with "
                        f"python scripts/build_site.py --out {given}")
        return out
    # under pytest-xdist every worker is its own session: the first to get here builds, the others wait and reuse
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    out, failed = shared / "smoke_site", shared / "smoke_site.failed"
    with FileLock(str(shared / "smoke_site.lock")):
        if failed.is_file():
            pytest.fail(failed.read_text())
        if not (out / "html" / "build_info.json").is_file():
            t0 = time.monotonic()
            script = Path(__file__).resolve().parent.parent / "scripts" / "build_site.py"
            proc = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(out)],
                                  capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                failed.write_text(f"the smoke build of the site failed (exit {proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
                pytest.fail(failed.read_text())
            info = json.loads((out / "html" / "build_info.json").read_text())
            print(f"smoke site build: {time.monotonic() - t0:.1f} s ({info['jobs']} notebooks at a time)")
    return out


@pytest.fixture(scope="session")
def smoke_executed(smoke_site):
    """name -> notebooks/<name>.ipynb as the session's smoke build of the site executed it. Skips when
    SIMCLR_SITE_BUILD names a build that need not be a smoke build."""
    import nbformat

    if json.loads((smoke_site / "html" / "build_info.json").read_text())["mode"] != "smoke":
        pytest.skip("SIMCLR_SITE_BUILD names a full build; these checks are about the smoke run")

    def read(name: str):
        path = smoke_site / "src" / "notebooks" / f"{name}.ipynb"
        if not path.is_file():
            pytest.fail(f"the site build holds no executed {name}.ipynb ({path})")
        return nbformat.read(path, as_version=4)

    return read
