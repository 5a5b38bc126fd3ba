"""What happened to each submission: the grading summary of `make grade`, the status column of `nbgrader export`.

The autograding preprocessors (``grader.preprocessors``) record what they find in each autograded notebook's metadata
under ``STATUS_KEY`` (read back and type-checked by ``grader.status_meta``, so nothing a student writes becomes a
status). This module reads that record, together with the gradebook and the intake's records (``grader.intake``), and
says for each student and assignment one of

    not assigned                             no one has handed in this problem set: not handed out yet
    missing                                  not handed in (others have handed it in)
    needs review: <reason>                   refused at intake (a link, an invalid notebook, ...) or nbgrader could
                                             not grade it; the reason says what to look at
    submitted, not autograded yet            a notebook in grading/submitted/, not in the gradebook
    kernel died in cell X, needs review      the kernel died (or stopped answering) in cell X; later cells did not run
    kernel died in cell X, reviewed          ... and every cell from X on has been graded in the Formgrader
    not autograded, needs review             in the gradebook, but the autograded notebook is missing (autograde failed)
    needs manual grading (N cells)           autograded; N answers wait for a grade in the Formgrader
    graded                                   every cell has its grade

plus notes ("locked cell q1_1_terms was edited; the original was restored", ...).

    python -m grader.status [ASSIGNMENT ...]     # from the course root; prints one table per assignment

``FlagForReview`` (an autograde preprocessor, after ``SaveAutoGrades``) makes a dead kernel visible in the Formgrader
as well: the notebook is flagged, and the graded cells from the one that crashed onwards need a manual grade.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor

from . import intake
from .guards import STATUS_KEY
from .status_meta import LIMIT_TEXT, clean_meta, notes, read_meta

__all__ = ["Row", "row", "rows", "submitted_students", "handed_in", "grading_dir", "course_directory", "table",
           "headline", "fmt_number", "died_status", "FlagForReview", "main", "MISSING", "NOT_ASSIGNED", "NOT_YET",
           "NOT_AUTOGRADED", "GRADED", "REVIEWED", "LIMIT_TEXT", "clean_meta", "notes", "read_meta"]


MISSING = "missing"
NOT_ASSIGNED = "not assigned"
NOT_YET = "submitted, not autograded yet"
NOT_AUTOGRADED = "not autograded, needs review"
GRADED = "graded"
REVIEWED = "kernel died in cell {}, reviewed"


def died_status(cell: str) -> str:
    return f"kernel died in cell {cell}, needs review"


@dataclass
class Row:
    """One student's submission of one assignment: its status (the words above), score and notes, and what the status
    means for the counts: whether a person must look at it, and how many answers wait for a grade by hand."""

    assignment: str
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    notes: list[str] = field(default_factory=list)
    needs_review: bool = False  # refused at intake, kernel died and not reviewed yet, or not autograded
    manual_cells: int = 0  # answers waiting for a grade in the Formgrader (status "needs manual grading (N cells)")


def submitted_students(coursedir, assignment: str) -> list[str]:
    """Students with a folder for ``assignment`` under the submitted directory."""
    pattern = coursedir.format_path(coursedir.submitted_directory, "*", assignment)
    root = coursedir.format_path(coursedir.submitted_directory, ".", ".")
    found = []
    for d in glob.glob(pattern):
        if os.path.isdir(d) and glob.glob(os.path.join(d, "*.ipynb")):
            found.append(os.path.relpath(d, root).split(os.sep)[0])
    return sorted(found)


def grading_dir(coursedir) -> Path:
    """The folder of the gradebook (``grading/``), where the intake keeps its records."""
    return Path(str(coursedir.db_url).removeprefix("sqlite:///")).parent


def handed_in(gb: Gradebook, coursedir, assignment: str, submitted) -> bool:
    """Whether anyone has handed ``assignment`` in (a submitted folder, a refused one, or a gradebook entry):
    until then it counts as not handed out, and no one is "missing" it."""
    if submitted or intake.reviewed_students(grading_dir(coursedir), assignment):
        return True
    try:
        return bool(gb.find_assignment(assignment).submissions)
    except MissingEntry:
        return False


def _max_score(gb: Gradebook, assignment: str):
    try:
        return gb.find_assignment(assignment).max_score
    except MissingEntry:
        return None


def row(gb: Gradebook, coursedir, assignment: str, student: str, submitted=None, handed_out=None) -> Row:
    """The status of one student's submission of one assignment; ``submitted``: ``submitted_students`` of the
    assignment, ``handed_out``: ``handed_in(...)``, when the caller has them (looked up here otherwise)."""
    reason = intake.read_review(grading_dir(coursedir), assignment, student)
    if reason is not None:
        return Row(assignment, student, intake.NEEDS_REVIEW.format(reason), None, _max_score(gb, assignment),
                   needs_review=True)
    try:
        sub = gb.find_submission(assignment, student)
    except MissingEntry:
        if submitted is None:
            submitted = submitted_students(coursedir, assignment)
        if handed_out is None:
            handed_out = handed_in(gb, coursedir, assignment, submitted)
        status = NOT_YET if student in submitted else MISSING if handed_out else NOT_ASSIGNED
        return Row(assignment, student, status, None, _max_score(gb, assignment))
    r = Row(assignment, student, GRADED, sub.score, sub.max_score)
    died, failed, manual, flagged = [], False, 0, True
    for nb in sub.notebooks:
        path = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment)) / f"{nb.name}.ipynb"
        meta = read_meta(path)
        if meta is None:
            failed = True
            continue
        if meta.get("kernel_died_in"):
            died.append(str(meta["kernel_died_in"]))
            flagged = flagged and bool(nb.flagged)
        r.notes += notes(meta)
        manual += sum(1 for g in nb.grades if g.needs_manual_grade)
    if died:  # reviewed once every cell FlagForReview marked has a grade from the Formgrader
        r.needs_review = bool(manual) or not flagged
        r.status = died_status(", ".join(died)) if r.needs_review else REVIEWED.format(", ".join(died))
    elif failed:
        r.status, r.needs_review = NOT_AUTOGRADED, True
    elif manual:
        r.manual_cells = manual
        r.status = f"needs manual grading ({manual} {'cell' if manual == 1 else 'cells'})"
    return r


def rows(gb: Gradebook, coursedir, assignment: str, students=None) -> list[Row]:
    """One row per student known to the gradebook or with a submitted folder (or per ``students``)."""
    submitted = set(submitted_students(coursedir, assignment))  # once per assignment, not once per student
    handed_out = handed_in(gb, coursedir, assignment, submitted)
    if students is None:
        refused = intake.reviewed_students(grading_dir(coursedir), assignment)
        students = sorted({s.id for s in gb.students} | submitted | set(refused))
    return [row(gb, coursedir, assignment, s, submitted, handed_out) for s in students]


def fmt_number(x) -> str:
    return "-" if x is None else f"{x:g}"


def table(rs: list[Row]) -> str:
    if not rs:
        return "(no students)"
    width = max(7, *(len(r.student) for r in rs))
    lines = [f"{'student':<{width}}  {'score':>11}  status"]
    for r in rs:
        status = "; ".join([r.status, *r.notes])
        lines.append(f"{r.student:<{width}}  {fmt_number(r.score):>5} / {fmt_number(r.max_score):<3}  {status}")
    return "\n".join(lines)


def headline(assignment: str, rs: list[Row]) -> str:
    n = len(rs)
    if rs and all(r.status == NOT_ASSIGNED for r in rs):
        return f"{assignment}: {n} student{'s' if n != 1 else ''}, not handed out yet (no one has handed it in)"
    missing = sum(r.status == MISSING for r in rs)
    review = sum(r.needs_review for r in rs)
    manual = sum(r.manual_cells > 0 for r in rs)
    parts = [f"{n} student{'s' if n != 1 else ''}", f"{n - missing} submitted", f"{missing} missing"]
    if review:
        parts.append(f"{review} need{'s' if review == 1 else ''} review")
    if manual:
        parts.append(f"{manual} to grade by hand")
    return f"{assignment}: " + ", ".join(parts)


class FlagForReview(NbGraderPreprocessor):
    """After ``SaveAutoGrades``: a notebook whose kernel died is flagged in the gradebook, and its graded cells from
    the one that crashed onwards need a manual grade, so the Formgrader lists it among those to review."""

    def preprocess(self, nb, resources):
        died = clean_meta(nb.metadata.get(STATUS_KEY)).get("kernel_died_in")
        if not died:
            return nb, resources
        info = resources["nbgrader"]
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        number = died[1:] if died.startswith("#") and died[1:].isdigit() else None
        start = ids.index(died) if died in ids else (int(number) - 1 if number else 0)
        later = [c.metadata.nbgrader["grade_id"] for c in nb.cells[start:] if utils.is_grade(c)]
        with Gradebook(info["db_url"]) as gb:
            sub = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            sub.flagged = True
            for gid in later:
                gb.find_grade(gid, info["notebook"], info["assignment"], info["student"]).needs_manual_grade = True
            gb.db.commit()
        return nb, resources


def course_directory(root: Path):
    """nbgrader's CourseDirectory of the course at ``root`` (its nbgrader_config.py)."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return CourseDirectory(config=cfg)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grader.status", description="Grading summary per assignment.")
    ap.add_argument("assignments", nargs="*", help="default: every assignment in the gradebook")
    ap.add_argument("--root", default=".", help="the course root (the folder of nbgrader_config.py)")
    args = ap.parse_args(argv)
    coursedir = course_directory(Path(args.root).resolve())
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        names = args.assignments or [a.name for a in gb.assignments]
        for i, a in enumerate(names):
            rs = rows(gb, coursedir, a)
            print(("\n" if i else "") + headline(a, rs))
            print(table(rs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
