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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from grader import ledger, pool

from . import grade_kinds as G
from . import test_class_report as CR
from .synthetic_class import write_class

A1 = "ps1_similarity_matrix"
PROMPT = re.compile(r"In(?:\s|&nbsp;)*\[(?:\s|\d|&nbsp;)*\]")  # the page may write non-breaking spaces
# the class of tests/test_class_report.py (named mistakes, the sheet's reading, a blank, right answers)
KINDS = {(A1, sid): kind for sid, kind in CR.CLASS.items()}


def _grade(root: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "grader.grade", A1, *args], cwd=root, env=G.env(),
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")
    base = tmp_path_factory.mktemp("class")
    side = G.make_course(base / "side_by_side")
    write_class(side, len(CR.CLASS), given=KINDS)
    serial = base / "one_at_a_time"
    shutil.copytree(side, serial, symlinks=True)
    with ThreadPoolExecutor(2) as pool:  # the two copies graded at once: a test of equality, not of speed
        runs = dict(zip(["side", "serial"], pool.map(lambda a: _grade(*a), [(side, "--jobs", "2"),
                                                                          (serial, "--jobs", "1")])))
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


def _lines(run: subprocess.CompletedProcess) -> list[str]:
    """The progress lines, one per submission graded: "[k/N] student  ps  score / max  seconds  status"."""
    return [line for line in run.stdout.splitlines() if line.startswith("[")]


@pytest.mark.slow
def test_side_by_side_grades_exactly_as_one_at_a_time(graded):
    roots, runs = graded
    side, serial = roots["side"], roots["serial"]
    assert _grades(side) == _grades(serial) and len(_grades(side)) == len(CR.CLASS) * len(CR.WANT)
    assert _table(runs["side"]) == _table(runs["serial"])
    assert _verdicts(side) == _verdicts(serial)
    pages = sorted((serial / "grading" / "feedback").glob("*/*/*.html"))
    assert len(pages) == len(CR.CLASS)
    for f in pages:  # a kernel that dies may or may not leave its cell's execution count: its race, not the jobs'
        assert PROMPT.sub("In [?]", (side / f.relative_to(serial)).read_text()) == PROMPT.sub("In [?]", f.read_text())
    rows = [[{k: v for k, v in r.items() if k != "timestamp"} for r in csv.DictReader(open(root / "grades.csv"))]
            for root in (side, serial)]
    assert rows[0] == rows[1] and len(rows[0]) == 4 * len(CR.CLASS)  # every problem set, handed in or not


@pytest.mark.slow
def test_every_submission_is_in_the_gradebook_once_and_none_was_locked_out(graded):
    roots, runs = graded
    with _gradebook(roots["side"]) as gb:
        subs = [(a.name, sub.student.id) for a in gb.assignments for sub in a.submissions]
    assert sorted(subs) == sorted(KINDS)  # no submission lost, none doubled
    logs = "".join(p.read_text() for p in (roots["side"] / "grading" / "logs").glob("worker-*.log"))
    assert len(list((roots["side"] / "grading" / "logs").glob("worker-*.log"))) == 2  # two workers did run
    assert "database is locked" not in logs + runs["side"].stdout + runs["side"].stderr


@pytest.mark.slow
def test_each_submission_has_its_line_and_the_run_its_summary(graded):
    _, runs = graded
    out, lines = runs["side"].stdout, _lines(runs["side"])
    assert sorted(line.split()[1] for line in lines) == sorted(CR.CLASS)
    assert any(" stu-6 " in line and A1 in line and "11 / 11" in line and line.endswith("graded") for line in lines)
    assert any(" stu-5 " in line and " 0 / 11" in line for line in lines)
    assert f"graded {len(CR.CLASS)} submissions in " in out and f"): {len(CR.CLASS)} graded" in out
    assert "slowest: " in out and "class report (python -m grader.report): grading/reports/" in out


@pytest.mark.slow
def test_grading_again_grades_only_what_changed(graded):
    roots, _ = graded
    root = roots["serial"]
    before = _grades(root)
    # a touch changes no answer; a late resubmission (stu-5 hands in her answers) is graded alone
    nb_path = root / "grading" / "submitted" / "stu-1" / A1 / f"{A1}.ipynb"
    os.utime(nb_path, (time.time() + 5, time.time() + 5))
    fixed = nbformat.read(root / "grading" / "submitted" / "stu-6" / A1 / f"{A1}.ipynb", 4)
    for c in fixed.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "student_id":
            c.source = "STUDENT_ID = 'stu-5'"
    nbformat.write(fixed, root / "grading" / "submitted" / "stu-5" / A1 / f"{A1}.ipynb")
    late = _grade(root)
    n = len(CR.CLASS)
    assert f"{A1}: {n} submitted, 0 refused at intake, {n - 1} graded before and unchanged, grading 1" in late.stdout
    assert [line.split()[1] for line in _lines(late)] == ["stu-5"]
    changed = {r[:4]: r for r in _grades(root)}
    assert {k: v for k, v in changed.items() if k[1] != "stu-5"} == {r[:4]: r for r in before if r[1] != "stu-5"}
    assert sum(r[4] for k, r in changed.items() if k[:2] == (A1, "stu-5")) == 11
    forced = _grade(root, "--student", "stu-2", "--force")
    assert [line.split()[1] for line in _lines(forced)] == ["stu-2"]
    assert f"{A1}: 1 submitted, 0 refused at intake, 0 graded before and unchanged, grading 1" in forced.stdout


# ---- the class report (tests/test_class_report.py), on the class graded side by side ----

def graded_class_root(graded) -> Path:
    return graded[0]["side"]


@pytest.mark.slow
def test_the_report_of_a_graded_class_has_its_known_counts(graded):
    CR.check_class(graded_class_root(graded))


@pytest.mark.slow
def test_the_command_and_the_page_name_students_only_when_asked(graded):
    root = graded_class_root(graded)
    proc = CR._run("grader.report", A1, root=root)
    assert proc.returncode == 0, proc.stderr
    page = root / "grading" / "reports" / f"{A1}.html"
    assert f"class report: {page}" in proc.stdout
    assert f"q1_1_terms: 2 x {CR.NO_TAU}" in proc.stdout and CR.ONE_WAY not in proc.stdout
    assert proc.stdout.index("  q1_1_loss: 4 points lost") < proc.stdout.index("  q1_4_hidden: 3 points lost")
    for shown in (proc.stdout, page.read_text(encoding="utf-8")):
        assert not any(sid in shown for sid in CR.CLASS)
    named = CR._run("grader.report", A1, "--names", root=root)
    assert f"{CR.NO_TAU} (stu-1, stu-2)" in named.stdout and "q1_2: blank (stu-5)" in named.stdout
    assert "stu-1, stu-2" in (root / "grading" / "reports" / f"{A1}-names.html").read_text(encoding="utf-8")
    assert CR.report.write_reports(root, [A1, "ps9_unknown"]) == [page]



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
