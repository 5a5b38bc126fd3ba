"""What `make grade` prints and `nbgrader export` writes: a dead kernel is reported as "kernel died in cell X, needs
review", distinct from a missing submission, and the checksum warning fires only for a test cell really changed.

One temporary course, graded through the real nbgrader commands: ps1 from five students (right answers; a kernel
that dies in answer 1.2; an edited test cell; right answers in a notebook whose locked cells an editor re-saved with
CRLF line endings and trailing spaces; one student in the gradebook who submitted nothing) and ps2 from one (right
code, free-response answers written, waiting for the Formgrader).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import nbformat
import pytest

from grader.preprocessors import _same_text
from grader.status import notes

from . import grade_kinds as G
from . import submissions

A1, A2 = "ps1_similarity_matrix", "ps2_temperature"
CRASH = "kernel died in cell q1_2_answer, needs review"
CHECKSUM = "Attribute 'checksum' for cell"


def test_same_text_ignores_only_what_editors_change():
    src = "x = f(1)\nassert x == 2, 'two'\n"
    assert _same_text(src, src.replace("\n", "\r\n"))
    assert _same_text(src, src.replace("\n", "   \n") + "\n\n")
    assert _same_text(src, "\n" + src)
    assert not _same_text(src, src.replace("2", "3"))
    assert not _same_text(src, src.replace("    ", "  ") + "pass\n")
    assert not _same_text("if a:\n    b\n", "if a:\nb\n")  # indentation is code


def test_notes_name_each_cell():
    assert notes({}) == []
    assert notes({"edited_tests": ["q1_1_terms"], "timed_out": ["q1_2_answer", "q1_3_answer"]}) == [
        "cells q1_2_answer, q1_3_answer stopped at the time limit",
        "locked cell q1_1_terms edited; the original restored"]


def resaved(root, a):
    """Right answers; every locked cell re-saved by an editor with CRLF line endings and trailing spaces."""
    nb = submissions.build(root, a, "correct")
    submissions._set_id(submissions._cells(nb), "resaved")  # graded as "resaved": her own id, her own numbers
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("locked"):
            c.source = c.source.replace("\n", "  \r\n") + "\r\n"
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")
    root = G.make_course(tmp_path_factory.mktemp("report") / "course")
    G.submit(root, A1, ["correct", "kernel_crash", "edited_test"])
    out = root / "grading" / "submitted" / "resaved" / A1 / f"{A1}.ipynb"
    out.parent.mkdir(parents=True)
    nbformat.write(resaved(root, A1), out)
    ps2 = submissions.build(root, A2, "correct")
    for c in ps2.cells:  # free-response answers written: they wait for a grade by hand
        if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution"):
            c.source = "A lower temperature sharpens the softmax."
    (root / "grading" / "submitted" / "correct" / A2).mkdir(parents=True)
    nbformat.write(ps2, root / "grading" / "submitted" / "correct" / A2 / f"{A2}.ipynb")
    assert G.nbgrader("db", "student", "add", "absent", cwd=root).returncode == 0
    logs = {}
    for a in (A1, A2):  # as `make grade PS="ps1_similarity_matrix ps2_temperature"`
        proc = G.nbgrader("autograde", a, "--create", "--Execute.timeout=10", cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs[a] = proc.stdout + proc.stderr
    summary = subprocess.run([sys.executable, "-m", "grader.status", A1, A2], cwd=root, env=G.env(),
                             capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr[-3000:]
    export = G.nbgrader("export", "--to=grades.csv", cwd=root)
    assert export.returncode == 0, export.stderr[-3000:]
    with open(root / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(fh)}
    return root, logs, summary.stdout, rows


def test_export_tells_a_dead_kernel_from_a_missing_submission(graded):
    _, _, _, rows = graded
    crash, absent = rows[(A1, "kernel_crash")], rows[(A1, "absent")]
    assert crash["status"] == CRASH
    assert absent["status"] == "missing" and absent["timestamp"] == "" and float(absent["score"]) == 0
    assert float(crash["score"]) == 10 and float(crash["max_score"]) == 11  # only the cell that crashed is lost
    assert rows[(A1, "correct")]["status"] == "graded" and float(rows[(A1, "correct")]["score"]) == 11
    assert rows[(A1, "edited_test")]["notes"] == "locked cell q1_1_terms edited; the original restored"
    assert rows[(A1, "resaved")]["status"] == "graded" and rows[(A1, "resaved")]["notes"] == ""
    # ps2's free-response answers wait for the Formgrader; students who sent no ps2 are missing, not zero-scored
    assert rows[(A2, "correct")]["status"] == "needs manual grading (2 cells)"
    assert {rows[(A2, s)]["status"] for s in ("absent", "kernel_crash", "edited_test", "resaved")} == {"missing"}
    # nbgrader's own columns come first, unchanged
    assert list(rows[(A1, "correct")])[:11] == ["assignment", "duedate", "timestamp", "student_id", "last_name",
                                               "first_name", "email", "raw_score", "late_submission_penalty",
                                               "score", "max_score"]


def test_the_summary_after_grading_names_the_crash_and_the_missing(graded):
    _, _, out, _ = graded
    lines = {line.split()[0]: line for line in out.split(f"{A2}:")[0].splitlines()[2:] if line.strip()}
    assert out.startswith(f"{A1}: 5 students, 4 submitted, 1 missing, 1 needs review"), out
    assert lines["kernel_crash"].split("/ 11")[1].strip() == CRASH, out
    assert lines["absent"].split("/ 11")[1].strip() == "missing", out
    assert lines["correct"].endswith("graded") and lines["resaved"].endswith("graded"), out
    assert f"{A2}: 5 students, 1 submitted, 4 missing, 1 to grade by hand" in out, out


def test_the_formgrader_lists_the_crash_for_review(graded):
    from nbgrader.api import Gradebook

    root, _, _, _ = graded
    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}") as gb:
        crash = gb.find_submission_notebook(A1, A1, "kernel_crash")
        ok = gb.find_submission_notebook(A1, A1, "correct")
        assert crash.flagged and crash.needs_manual_grade
        assert not ok.flagged and not ok.needs_manual_grade
        review = {g.name for g in crash.grades if g.needs_manual_grade}
        assert review and "q1_1_terms" not in review  # the cells before the crash ran and keep their grades


def test_only_the_really_edited_cell_warns(graded):
    root, logs, _, _ = graded
    warned = [line for line in logs[A1].splitlines() if CHECKSUM in line]
    assert len(warned) == 1 and "q1_1_terms" in warned[0], warned  # the edited test; not the re-saved notebook
    assert CHECKSUM not in logs[A2]
    meta = lambda k: {key: v for key, v in nbformat.read(root / "grading" / "autograded" / k / A1 / f"{A1}.ipynb",
                                                          4).metadata.get("simclr_grading", {}).items()
                      if key != "verdicts"}  # what each check found; the rest is a status
    assert meta("resaved") == {} and meta("correct") == {}


def test_a_crash_graded_by_hand_is_reviewed(graded):  # last: it changes the gradebook
    from nbgrader.api import Gradebook

    from grader import status

    root, _, _, _ = graded
    coursedir = status.course_directory(root)
    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}") as gb:
        assert status.row(gb, coursedir, A1, "kernel_crash").status == CRASH
        for g in gb.find_submission_notebook(A1, A1, "kernel_crash").grades:
            if g.needs_manual_grade:  # what entering a score in the Formgrader does
                g.manual_score, g.needs_manual_grade = 0.0, False
        gb.db.commit()
        assert status.row(gb, coursedir, A1, "kernel_crash").status == "kernel died in cell q1_2_answer, reviewed"
