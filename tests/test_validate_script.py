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
    assert any("q1_3_anchor" in line and "FAIL  visible test (2 pts)  NotImplementedError" in line for line in lines)
    assert any("q1_4_hidden" in line and "runs when graded" in line for line in lines)
    assert lines[-2].strip().startswith("visible tests pass for 0 of the 8 points that have one")
    solved = _run(ROOT / "solutions" / ps / f"{ps}.ipynb")
    assert solved.returncode == 0, solved.stdout
    assert "visible tests pass for 8 of the 8 points" in solved.stdout
    assert "All 11 autograded points are decided at grading" in solved.stdout


@pytest.mark.slow
def test_a_wrong_value_that_the_visible_tests_miss_is_never_called_passing(tmp_path):
    """L_34 wrong (the log of the wrong anchor's loss) passes its visible test, whose values only grading checks:
    the summary must say the points are decided at grading, not that the notebook passes all the tests."""
    import nbformat

    ps = "ps1_similarity_matrix"
    nb = nbformat.read(ROOT / "solutions" / ps / f"{ps}.ipynb", 4)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_2_answer":
            c.source = "L_34 = 0.123  # wrong, but > 0"
    path = tmp_path / f"{ps}.ipynb"
    nbformat.write(nb, path)
    r = _run(path)
    assert r.returncode == 0, r.stdout
    assert "passes all the tests" not in r.stdout.lower()
    assert "q1_2                     visible test passes (1 pts, decided at grading)" in r.stdout
    assert "decided at grading, by checks not in this notebook (3 of them have no visible test)" in r.stdout


def test_a_missing_notebook_is_a_clear_error(tmp_path):
    r = _run(tmp_path / "nope.ipynb")
    assert r.returncode == 2 and "no notebook at" in r.stderr
