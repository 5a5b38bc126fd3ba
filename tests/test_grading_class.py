"""Grading a class: `python -m grader.grade --jobs N` gives what `--jobs 1` gives, grades again only what changed,
and survives workers that hang, die or find the gradebook busy (grader.pool, grader.ledger, grader.progress).

One small synthetic class (tests/synthetic_class.py) is graded twice, in two copies of the course: side by side
(2 workers) and one at a time; scores of every cell, statuses and notes, the verdicts in the autograded notebooks,
the feedback pages and the export must agree."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from grader import ledger, pool

from . import grade_kinds as G
from .synthetic_class import write_class

A1, A3 = "ps1_similarity_matrix", "ps3_batch_size"
PROMPT = re.compile(r"In(?:\s|&nbsp;)*\[(?:\s|\d|&nbsp;)*\]")  # the page may write non-breaking spaces
CLASS = {(A1, "s001"): "correct", (A1, "s002"): "no_tau", (A1, "s003"): "blank", (A1, "s004"): "copied_numbers",
         (A1, "s005"): "kernel_crash", (A3, "s001"): "correct"}


def _grade(root: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "grader.grade", A1, A3, *args], cwd=root, env=G.env(),
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")
    base = tmp_path_factory.mktemp("class")
    side = G.make_course(base / "side_by_side")
    write_class(side, 5, given=CLASS)
    serial = base / "one_at_a_time"
    shutil.copytree(side, serial, symlinks=True)
    runs = {"side": _grade(side, "--jobs", "2"), "serial": _grade(serial, "--jobs", "1")}
    for root in (side, serial):
        G.nbgrader("generate_feedback", A1, cwd=root)
        G.nbgrader("export", "--to=grades.csv", cwd=root)
    return {"side": side, "serial": serial}, runs


def _gradebook(root: Path) -> Gradebook:
    return Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}")


def _grades(root: Path) -> list[tuple]:
    """(assignment, student, notebook, cell, auto score, manual score, needs manual grade) of every grade."""
    with _gradebook(root) as gb:
        return sorted((a.name, sub.student.id, nb.name, g.name, g.auto_score, g.manual_score, g.needs_manual_grade)
                      for a in gb.assignments for sub in a.submissions for nb in sub.notebooks for g in nb.grades)


def _verdicts(root: Path) -> dict:
    out = {}
    for path in sorted((root / "grading" / "autograded").glob("*/*/*.ipynb")):
        nb = nbformat.read(path, 4)
        out[path.relative_to(root).as_posix()] = (
            [c.get("outputs") for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")],
            nb.metadata.get("simclr_grading"))
    return out


def _table(run: subprocess.CompletedProcess) -> str:
    return run.stdout[run.stdout.index(f"\n\n{A1}: "):]


@pytest.mark.slow
def test_side_by_side_grades_exactly_as_one_at_a_time(graded):
    roots, runs = graded
    side, serial = roots["side"], roots["serial"]
    assert _grades(side) == _grades(serial) and len(_grades(side)) > 10
    assert _table(runs["side"]) == _table(runs["serial"])
    assert _verdicts(side) == _verdicts(serial)
    for f in sorted((serial / "grading" / "feedback").glob("*/*/*.html")):  # the cell a kernel died in may or
        # may not have its execution count ("In [6]:" or "In [ ]:"), however many jobs: the kernel's race, not ours
        assert PROMPT.sub("In [?]", (side / f.relative_to(serial)).read_text()) == PROMPT.sub("In [?]", f.read_text())
    rows = [[{k: v for k, v in r.items() if k != "timestamp"} for r in csv.DictReader(open(root / "grades.csv"))]
            for root in (side, serial)]
    assert rows[0] == rows[1] and len(rows[0]) == 4 * 5  # every problem set of the course, handed in or not


@pytest.mark.slow
def test_every_submission_is_in_the_gradebook_once_and_none_was_locked_out(graded):
    roots, runs = graded
    with _gradebook(roots["side"]) as gb:
        subs = [(a.name, sub.student.id) for a in gb.assignments for sub in a.submissions]
    assert sorted(subs) == sorted(CLASS)  # no submission lost, none doubled
    logs = "".join(p.read_text() for p in (roots["side"] / "grading" / "logs").glob("worker-*.log"))
    assert "database is locked" not in logs + runs["side"].stdout + runs["side"].stderr


@pytest.mark.slow
def test_each_submission_has_its_line_and_the_run_its_summary(graded):
    _, runs = graded
    out = runs["side"].stdout
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == len(CLASS) and {line.split()[1] for line in lines} == {"s001", "s002", "s003", "s004", "s005"}
    assert any(" s001 " in line and A1 in line and "11 / 11" in line and line.endswith("graded") for line in lines)
    assert any(" s005 " in line and "kernel died in cell q1_2_answer, needs review" in line for line in lines)
    assert f"graded {len(CLASS)} submissions in " in out and "5 graded, 1 needs review" in out
    assert "slowest: " in out


@pytest.mark.slow
def test_grading_again_grades_only_what_changed(graded):
    roots, _ = graded
    root = roots["serial"]
    before = _grades(root)
    again = _grade(root)
    assert f"{A1}: 5 submitted, 0 refused at intake, 5 graded before and unchanged, grading 0" in again.stdout
    assert "graded 0 submissions" in again.stdout
    # a touch changes no answer; a late resubmission is graded alone
    nb_path = root / "grading" / "submitted" / "s002" / A1 / f"{A1}.ipynb"
    os.utime(nb_path, (time.time() + 5, time.time() + 5))
    fixed = nbformat.read(root / "grading" / "submitted" / "s001" / A1 / f"{A1}.ipynb", 4)
    for c in fixed.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "student_id":
            c.source = "STUDENT_ID = 's003'"
    nbformat.write(fixed, root / "grading" / "submitted" / "s003" / A1 / f"{A1}.ipynb")
    late = _grade(root)
    assert "4 graded before and unchanged, grading 1" in late.stdout
    assert [line.split()[1] for line in late.stdout.splitlines() if line.startswith("[")] == ["s003"]
    changed = {r[:4]: r for r in _grades(root)}
    assert {k: v for k, v in changed.items() if k[1] != "s003"} == {r[:4]: r for r in before if r[1] != "s003"}
    assert all(r[4] == r[5] or r[5] is None for r in changed.values())
    assert sum(r[4] for k, r in changed.items() if k[:2] == (A1, "s003")) == 11
    forced = _grade(root, "--student", "s004", "--force")
    assert [line.split()[1] for line in forced.stdout.splitlines() if line.startswith("[")] == ["s004"]


# ---- the workers' failures, with a stand-in worker (fast) ----

FAKE_WORKER = '''import json, os, sys, time
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
seen = set()
out.write(json.dumps({"ready": True}) + "\\n"); out.flush()
for line in sys.stdin:
    job = json.loads(line)
    s = job["student"]
    if s == "hangs":
        os.system("sleep 600 &")  # a child of the worker: killed with it
        time.sleep(600)
    if s == "dies":
        os._exit(3)
    if s == "busy" and s not in seen:
        seen.add(s)
        out.write(json.dumps({"ok": False, "log": "[ERROR] (sqlite3.OperationalError) database is locked"}) + "\\n")
    else:
        out.write(json.dumps({"ok": True, "log": "graded " + s}) + "\\n")
    out.flush()
'''


def test_a_worker_that_hangs_or_dies_costs_only_its_job(tmp_path):
    (tmp_path / "grader").mkdir()
    (tmp_path / "grader" / "__init__.py").write_text("")
    (tmp_path / "grader" / "worker.py").write_text(FAKE_WORKER)
    jobs = [pool.Job("ps", s) for s in ("a", "hangs", "b", "dies", "busy", "c")]
    t0 = time.monotonic()
    done = {d.job.student: d for d in pool.run(tmp_path, jobs, 2, 3.0, tmp_path / "logs")}
    assert time.monotonic() - t0 < 60
    assert set(done) == {j.student for j in jobs}
    assert [s for s, d in sorted(done.items()) if d.ok] == ["a", "b", "busy", "c"]
    assert "no answer after 3 s" in done["hangs"].log and "exit status 3" in done["dies"].log
    gone = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, text=True)
    assert gone.stdout.strip() == "", "the hung worker's children survived it"


def test_a_worker_that_cannot_start_fails_its_jobs_with_the_reason(tmp_path):
    (tmp_path / "grader").mkdir()
    (tmp_path / "grader" / "__init__.py").write_text("")
    (tmp_path / "grader" / "worker.py").write_text("raise SystemExit('no nbgrader_config.py here')\n")
    done = list(pool.run(tmp_path, [pool.Job("ps", "a")], 1, 3.0, tmp_path / "logs"))
    assert not done[0].ok and "no nbgrader_config.py here" in done[0].log


def test_the_ledger_follows_contents_not_times(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "a.ipynb").write_text("{}")
    h = ledger.folder_hash(folder)
    os.utime(folder / "a.ipynb", (1, 1))
    assert ledger.folder_hash(folder) == h
    (folder / "a.ipynb").write_text("{ }")
    assert ledger.folder_hash(folder) != h
    (folder / "a.ipynb").write_text("{}")
    (folder / "extra.txt").write_text("")
    assert ledger.folder_hash(folder) != h
    grading = tmp_path / "grading"
    ledger.write(grading, "ps", {"s1": {"submission": h, "source": h}})
    assert ledger.read(grading, "ps") == {"s1": {"submission": h, "source": h}}
    (grading / "graded" / "ps.json").write_text(json.dumps({"s1": {"submission": "x", "source": h}, "s2": 3}))
    assert ledger.read(grading, "ps") == {}
    (grading / "graded" / "ps.json").write_text("[not json")
    assert ledger.read(grading, "ps") == {}


def test_jobs_must_be_at_least_one():
    proc = subprocess.run([sys.executable, "-m", "grader.grade", A1, "--jobs", "0"], cwd=G.ROOT, env=G.env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--jobs must be at least 1, not 0" in proc.stderr
