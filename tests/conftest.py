"""Fixtures shared by several test modules."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from simclr_core.data.synthetic import write_fake_cifar10

from .figure_facts import record_in_kernels


# test files that read the session's ``graded_course``: under pytest-xdist they run on one worker, which grades it once
GRADED_COURSE_FILES = ("tests/test_grading.py", "tests/test_grading_attacks.py")


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs test files on TEST_JOBS pytest-xdist workers, a file whole on one worker so that its module
    fixtures are built once (--dist loadfile); the files of GRADED_COURSE_FILES count as one file here."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedCourseScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "graded_course" if scope in GRADED_COURSE_FILES else scope

    return SharedCourseScheduling(config, log)


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """Every kind of submission and every attack, graded once per session through the real `nbgrader autograde` in
    the sandbox (tests/grade_kinds.grade_shared_course): {"kinds": ..., "attacks": ...}, each (root, procs,
    results). The files that use it are GRADED_COURSE_FILES."""
    from . import grade_kinds

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")
    return grade_kinds.grade_shared_course(tmp_path_factory.mktemp("graded") / "course")


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
            # every figure a kernel displays carries what tests/test_figures.py checks (tests/figure_facts.py)
            env = {**os.environ, "IPYTHONDIR": str(record_in_kernels(shared / "smoke_site_ipython"))}
            proc = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(out)],
                                  capture_output=True, text=True, timeout=900, env=env)
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
