"""``make grade``: grade every submission of the requested problem sets, whatever the submissions hold.

    python -m grader.grade ASSIGNMENT... [--student ID]... [--root COURSE]

For each problem set, in order: the gradebook learns the problem set from ``solutions/`` if it does not know it
yet (``nbgrader generate_assignment`` into a temporary folder: ``exercises/`` is never written); every submitted
folder goes through intake (``grader.intake``), which refuses, as "needs review: <reason>", what nbgrader could not
grade safely; the rest is autograded by nbgrader in the sandbox (``grader.sandbox``); a submission nbgrader still
fails on is graded again alone, so that its failure is its own, and recorded as needing review. Then the summary
(``grader.status``) of every requested problem set is printed. The exit status is 0 when every submission was
graded or recorded, 2 for a problem the course has (no such problem set, no bubblewrap).

The unit of work is one student's submission of one problem set (``Job``), so that jobs can be spread over
several processes; the gradebook is written only by the nbgrader process of a batch.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from . import intake, status
from .guards import unsafe_entries
from .limits import DEFAULT


EXCEPTION_LINE = re.compile(r"^\s*[\w.]+(Error|Exception|Exit|Interrupt): ")


@dataclass(frozen=True)
class Course:
    root: Path
    coursedir: object  # nbgrader.coursedir.CourseDirectory

    def folder(self, kind: str, student: str, assignment: str) -> Path:
        return Path(self.coursedir.format_path(getattr(self.coursedir, f"{kind}_directory"), student, assignment))

    @property
    def grading(self) -> Path:
        return Path(self.coursedir.db_url.removeprefix("sqlite:///")).parent


@dataclass(frozen=True)
class Job:
    assignment: str
    student: str


def nbgrader(course: Course, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course.root, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return subprocess.CompletedProcess(e.cmd, 124, out, err + f"\n[ERROR] no result after {timeout:.0f} s")


def released(course: Course, assignment: str) -> dict[str, dict[str, intake.ReleasedCell]]:
    """notebook -> its released cells; the gradebook learns the problem set from the source folder if needed."""
    source = Path(course.coursedir.format_path(course.coursedir.source_directory, ".", assignment))
    names = sorted(p.stem for p in source.glob("*.ipynb"))
    if not names:
        raise LookupError(f"no problem set {assignment!r}: {source} holds no notebook")

    def known():
        with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
            try:
                return {n: intake.released_cells(gb, assignment, n) for n in names}
            except MissingEntry:
                return None

    cells = known()
    if cells is None:
        with tempfile.TemporaryDirectory(prefix="simclr-release-") as tmp:
            proc = nbgrader(course, "generate_assignment", assignment, "--force", "--create",
                            f"--CourseDirectory.release_directory={tmp}", timeout=600)
        cells = known()
        if proc.returncode != 0 or cells is None:
            raise LookupError(f"the gradebook could not learn {assignment}: {_last_error(proc)}")
    return cells


def _last_error(proc: subprocess.CompletedProcess) -> str:
    """The exception nbgrader's log ends with ("JSONDecodeError: ..."), else its last error line."""
    lines = (proc.stdout + proc.stderr).splitlines()
    raised = [l.strip() for l in lines if EXCEPTION_LINE.match(l)]
    errors = [l.split("]", 1)[-1].strip() for l in lines if "| ERROR]" in l]
    return (raised or errors or [f"exit status {proc.returncode}"])[-1][:200]


def submitted(course: Course, assignment: str, only: list[str]) -> list[Job]:
    """One job per student folder holding something named ``assignment`` (links included: intake refuses them)."""
    base = Path(course.coursedir.format_path(course.coursedir.submitted_directory, ".", "."))
    students = sorted(p.name for p in base.iterdir() if (p / assignment).exists() or (p / assignment).is_symlink()) \
        if base.is_dir() else []
    return [Job(assignment, s) for s in students if not only or s in only]


def take_in(course: Course, jobs: list[Job], cells) -> list[Job]:
    """The jobs intake accepts; the others are recorded as needing review, and their students added to the
    gradebook (so that the export and the Formgrader list them)."""
    good, refused = [], []
    for job in jobs:
        try:
            why = intake.check_submission(course.folder("submitted", job.student, job.assignment), cells)
        except OSError as e:
            why = f"its folder cannot be read ({e.strerror})"
        if why:
            intake.write_review(course.grading, job.assignment, job.student, why)
            refused.append(job.student)
        else:
            intake.clear_review(course.grading, job.assignment, job.student)
            good.append(job)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        for student in refused:
            if intake.SAFE_ID.match(student):
                gb.update_or_create_student(student)
    return good


def graded_since(course: Course, job: Job, t0: float, cells) -> str | None:
    """Why the job did not come out of autograding whole (None when it did); a link or special file found in
    its autograded folder is removed."""
    folder = course.folder("autograded", job.student, job.assignment)
    if not folder.is_dir():
        return "nbgrader could not grade it"
    bad = unsafe_entries(folder)
    for rel in bad:
        (folder / rel).unlink(missing_ok=True)
    if bad:
        return f"its autograded folder held {', '.join(bad)} (not a regular file; removed)"
    if any(not (folder / f"{n}.ipynb").is_file() or (folder / f"{n}.ipynb").stat().st_mtime < t0
           for n in cells if (course.folder("submitted", job.student, job.assignment) / f"{n}.ipynb").is_file()):
        return "nbgrader could not grade it"
    return None


def up_to_date(course: Course, job: Job, cells) -> bool:
    """Whether every notebook of the submission has an autograded notebook written after it (then it is not
    graded again unless asked: its manual grades and reviews stay as they are)."""
    sub, done = (course.folder(k, job.student, job.assignment) for k in ("submitted", "autograded"))
    pairs = [(sub / f"{n}.ipynb", done / f"{n}.ipynb") for n in cells if (sub / f"{n}.ipynb").is_file()]
    return bool(pairs) and all(d.is_file() and d.stat().st_mtime >= s.stat().st_mtime for s, d in pairs)


def batch_timeout(n: int) -> float:
    return n * (DEFAULT.notebook_seconds + 60) + 300


def autograde(course: Course, jobs: list[Job], excluded: list[str], cells) -> None:
    """nbgrader autograde for ``jobs`` (one problem set, all of them graded again, none of ``excluded``); each
    failure is retried alone and recorded."""
    if not jobs:
        return
    assignment, t0 = jobs[0].assignment, time.time()
    args = ["autograde", assignment, "--create", "--force"]
    if excluded:
        args.append(f"--CourseDirectory.student_id_exclude={','.join(excluded)}")
    if len(jobs) == 1:
        args.append(f"--CourseDirectory.student_id={jobs[0].student}")
    proc = nbgrader(course, *args, timeout=batch_timeout(len(jobs)))
    for job in jobs:
        why = graded_since(course, job, t0, cells)
        if why and len(jobs) > 1:  # alone, so that the failure and its message are its own
            t1 = time.time()
            proc = nbgrader(course, "autograde", assignment, "--create", "--force",
                            f"--CourseDirectory.student_id={job.student}", timeout=batch_timeout(1))
            why = graded_since(course, job, t1, cells)
        if why:
            intake.write_review(course.grading, assignment, job.student, f"{why}: {_last_error(proc)}")


def grade(course: Course, assignment: str, only: list[str], force: bool = False) -> None:
    cells = released(course, assignment)
    everyone = submitted(course, assignment, [])
    jobs = [j for j in everyone if not only or j.student in only]
    gone = set(intake.reviewed_students(course.grading, assignment)) - {j.student for j in everyone}
    for student in gone:  # a refused folder since removed: nothing left to review
        if not only or student in only:
            intake.clear_review(course.grading, assignment, student)
    good = take_in(course, jobs, cells)
    todo = [j for j in good if force or not up_to_date(course, j, cells)]
    for job in good:
        if job not in todo:  # graded before: only what may have reached its folder since is checked
            why = graded_since(course, job, 0.0, cells)
            if why:
                intake.write_review(course.grading, assignment, job.student, why)
    left_out = sorted({j.student for j in everyone} - {j.student for j in todo})
    print(f"{assignment}: {len(jobs)} submitted, {len(jobs) - len(good)} refused at intake, "
          f"{len(good) - len(todo)} graded before and unchanged, grading {len(todo)}", flush=True)
    autograde(course, todo, left_out, cells)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grader.grade", description=__doc__.split("\n\n")[0])
    ap.add_argument("assignments", nargs="+", help="problem sets, e.g. ps1_similarity_matrix")
    ap.add_argument("--student", action="append", default=[], help="grade only this student (repeatable)")
    ap.add_argument("--force", action="store_true", help="grade again submissions graded since they were handed in")
    ap.add_argument("--root", default=".", help="the course root (the folder of nbgrader_config.py)")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    course = Course(root, status.course_directory(root))
    problems = []
    for a in args.assignments:
        try:
            grade(course, a, args.student, args.force)
        except LookupError as e:
            problems.append(str(e))
            print(f"{a}: {e}", file=sys.stderr)
    print()
    status.main([*[a for a in args.assignments], "--root", str(root)])
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
