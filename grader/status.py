"""What happened to each submission: the grading summary of `make grade`, the status column of `nbgrader export`.

The autograding preprocessors (``grader.preprocessors``) record what they find in each autograded notebook's metadata
under ``STATUS_KEY``: the cell in which the kernel died, cells stopped at the time limit, locked cells that were edited
or deleted (and restored), forbidden calls, limits of the sandbox reached. A submission's own ``STATUS_KEY`` is
stripped before grading (``grader.guards``) and every value is type-checked when read (``clean_meta``), so nothing a
student writes becomes a status. This module reads it back, together with the gradebook and the intake's records
(``grader.intake``), and says for each student and assignment one of

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

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor

from . import intake
from .guards import STATUS_KEY
from .limits import DEFAULT, size_text
from .verdict import read_records

LIMIT_TEXT = {"memory": f"used more than {size_text(DEFAULT.memory_bytes)} of memory",
              "disk": f"wrote more than {size_text(DEFAULT.disk_bytes)} to disk",
              "processes": f"started more than {DEFAULT.processes} processes"}

MISSING = "missing"
NOT_ASSIGNED = "not assigned"
NOT_YET = "submitted, not autograded yet"
NOT_AUTOGRADED = "not autograded, needs review"
GRADED = "graded"
REVIEWED = "kernel died in cell {}, reviewed"


def died_status(cell: str) -> str:
    return f"kernel died in cell {cell}, needs review"


def _cells(names) -> str:
    names = list(names)
    return ("cell " if len(names) == 1 else "cells ") + ", ".join(str(n) for n in names)


def _names(value, limit: int = 50) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [v[:100] for v in value[:limit]]
    return None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def clean_meta(meta) -> dict:
    """The ``STATUS_KEY`` values of the autograding preprocessors, each of the type they write; any other value is
    left out (a malformed record never becomes a status nor raises)."""
    if not isinstance(meta, dict):
        return {}
    out = {}
    if isinstance(meta.get("kernel_died_in"), str) and meta["kernel_died_in"]:
        out["kernel_died_in"] = meta["kernel_died_in"][:100]
    if isinstance(meta.get("student_id_typed"), str):
        out["student_id_typed"] = meta["student_id_typed"][:100]
    for key in ("timed_out", "edited_tests", "missing_tests", "forbidden"):
        if _names(meta.get(key)):
            out[key] = _names(meta[key])
    others = meta.get("answers_for_other_students")
    if isinstance(others, dict):
        kept = {k[:100]: _names(v) for k, v in list(others.items())[:50] if isinstance(k, str) and _names(v)}
        if kept:
            out["answers_for_other_students"] = kept
    late = meta.get("notebook_time_limit")
    if isinstance(late, dict) and _count(late.get("seconds")) is not None and _names(late.get("not_run")):
        out["notebook_time_limit"] = {"seconds": late["seconds"], "not_run": _names(late["not_run"])}
    dropped = meta.get("output_dropped")
    if isinstance(dropped, dict) and _count(dropped.get("kept")) is not None and _count(dropped.get("dropped")):
        out["output_dropped"] = {"kept": dropped["kept"], "dropped": dropped["dropped"]}
    hits = meta.get("limits")
    if isinstance(hits, dict):
        kept = {k: _names(v) for k, v in hits.items() if k in LIMIT_TEXT and _names(v)}
        if kept:
            out["limits"] = kept
    verdicts = read_records(meta.get("verdicts"))
    if verdicts:
        out["verdicts"] = verdicts
    return out


def notes(meta: dict) -> list[str]:
    """Readable notes from one autograded notebook's ``STATUS_KEY`` metadata (the kernel's death excepted)."""
    meta = clean_meta(meta)
    out = []
    for kind, cells in meta.get("limits", {}).items():
        out.append(f"stopped: {LIMIT_TEXT[kind]} in {_cells(cells)}")
    if meta.get("notebook_time_limit"):
        late = meta["notebook_time_limit"]
        out.append(f"stopped: the notebook ran past {late['seconds']} s; {_cells(late['not_run'])} not run")
    if meta.get("output_dropped"):
        out.append(f"output beyond {size_text(meta['output_dropped']['kept'])} dropped")
    if meta.get("timed_out"):
        out.append(f"{_cells(meta['timed_out'])} stopped at the time limit")
    if meta.get("edited_tests"):
        out.append(f"locked {_cells(meta['edited_tests'])} edited; the original restored")
    if meta.get("missing_tests"):
        out.append(f"test {_cells(meta['missing_tests'])} deleted; the original restored")
    if meta.get("forbidden"):
        out.append(f"forbidden call in {_cells(meta['forbidden'])}")
    for gid, whose in meta.get("answers_for_other_students", {}).items():
        out.append(f"{gid} holds the answer for the numbers of {', '.join(whose)}")
    if meta.get("student_id_typed"):
        out.append(f"STUDENT_ID typed: {meta['student_id_typed']!r}")
    return out


@dataclass
class Row:
    assignment: str
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        return self.status.endswith("needs review") or self.status.startswith("needs review")


def _read_meta(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return clean_meta(nbformat.read(path, as_version=4).metadata.get(STATUS_KEY, {}))
    except Exception:  # noqa: BLE001 (an unreadable autograded notebook is a failed autograde)
        return None


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
        return Row(assignment, student, intake.NEEDS_REVIEW.format(reason), None, _max_score(gb, assignment))
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
        meta = _read_meta(path)
        if meta is None:
            failed = True
            continue
        if meta.get("kernel_died_in"):
            died.append(str(meta["kernel_died_in"]))
            flagged = flagged and bool(nb.flagged)
        r.notes += notes(meta)
        manual += sum(1 for g in nb.grades if g.needs_manual_grade)
    if died:  # reviewed once every cell FlagForReview marked has a grade from the Formgrader
        r.status = died_status(", ".join(died)) if manual or not flagged else REVIEWED.format(", ".join(died))
    elif failed:
        r.status = NOT_AUTOGRADED
    elif manual:
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
    manual = sum(r.status.startswith("needs manual grading") for r in rs)
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
