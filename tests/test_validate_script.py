"""`make validate` (scripts/validate.py): one line per graded cell and a total, exit status 1 when a test fails."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*paths):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "validate.py"), *map(str, paths)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_blank_problem_set_fails_briefly_and_the_solution_passes():
    ps = "ps1_similarity_matrix"
    blank = _run(ROOT / "exercises" / ps / f"{ps}.ipynb")
    assert blank.returncode == 1
    lines = blank.stdout.splitlines()
    assert len(lines) <= 40 and "Traceback" not in blank.stdout
    assert any("q1_3_anchor" in line and "FAIL  0/2  NotImplementedError" in line for line in lines)
    assert any("q1_4_hidden" in line and "runs when graded" in line for line in lines)
    assert lines[-1].strip().startswith("total: 0/8")
    solved = _run(ROOT / "solutions" / ps / f"{ps}.ipynb")
    assert solved.returncode == 0, solved.stdout
    assert solved.stdout.splitlines()[-1].strip().startswith("total: 11/11")


def test_a_missing_notebook_is_a_clear_error(tmp_path):
    r = _run(tmp_path / "nope.ipynb")
    assert r.returncode == 2 and "no notebook at" in r.stderr
