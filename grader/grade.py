"""``make grade``: grade every submission of the requested problem sets, whatever the submissions hold.

    python -m grader.grade ASSIGNMENT... [--student ID]... [--jobs N] [--force] [--root COURSE]

For each problem set: the gradebook learns the problem set from ``solutions/`` if it does not know it yet
(``nbgrader generate_assignment`` into a temporary folder: ``exercises/`` is never written); every submitted folder
goes through intake (``grader.intake``), which refuses, as "needs review: <reason>", what nbgrader could not grade
safely; of the rest, the submissions new or changed since they were last graded whole (``grader.ledger``; all of
them with ``--force``) are graded, N side by side (``grader.pool``: one sandboxed nbgrader autograde per
submission, in N worker processes), each printed as it finishes (``grader.progress``). A submission nbgrader
fails on is recorded as needing review, with the reason. Then the run's summary and the table (``grader.status``)
of every requested problem set are printed. The exit status is 0 when every submission was graded or recorded,
2 for a problem the course has (no such problem set).

The unit of work is one student's submission of one problem set (``grader.pool.Job``). Only the workers'
nbgrader writes the gradebook's grades (each its own submission's rows); intake, reviews, the ledger and the
progress lines are written by this process alone, one finished job after another, so the results do not depend
on N (tests/test_grading_class.py).
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

from . import intake, ledger, pool, report, status
from .guards import unsafe_entries
from .limits import DEFAULT
from .pool import Job
from .progress import Progress


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


def nbgrader(course: Course, *args: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course.root, env=pool.nbgrader_env(),
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


def _last_error(log: str | subprocess.CompletedProcess) -> str:
    """The exception nbgrader's log ends with ("JSONDecodeError: ..."), else its last error line."""
    fallback = "no error in its log"
    if isinstance(log, subprocess.CompletedProcess):
        log, fallback = log.stdout + log.stderr, f"exit status {log.returncode}"
    lines = log.splitlines()
    raised = [l.strip() for l in lines if EXCEPTION_LINE.match(l)]
    errors = [l.split("]", 1)[-1].strip() for l in lines if "ERROR]" in l]
    return (raised or errors or [fallback])[-1][:200]


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


def current(course: Course, job: Job, cells, entry: dict | None, now: dict) -> bool:
    """Whether the submission was graded whole as it is now (same files, same problem set source) and every
    notebook it handed in still has its autograded notebook."""
    if not entry or entry != now:
        return False
    done = course.folder("autograded", job.student, job.assignment)
    sub = course.folder("submitted", job.student, job.assignment)
    return all((done / f"{n}.ipynb").is_file() for n in cells if (sub / f"{n}.ipynb").is_file())


def jobs_default() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Plan:
    """One problem set's run: what to grade, with the hashes to record for each when it comes out whole."""
    assignment: str
    cells: dict
    todo: list[Job]
    hashes: dict[str, dict[str, str]]
    record: dict[str, dict[str, str]]


def plan(course: Course, assignment: str, only: list[str], force: bool) -> Plan:
    """Intake of every submission of ``assignment`` (of ``only``), then the ones new or changed since graded."""
    cells = released(course, assignment)
    everyone = submitted(course, assignment, [])
    jobs = [j for j in everyone if not only or j.student in only]
    unknown = sorted(set(only) - {j.student for j in everyone})
    if unknown:
        print(f"{assignment}: no submission from {', '.join(unknown)} in {course.folder('submitted', '*', assignment)}",
              file=sys.stderr)
    gone = set(intake.reviewed_students(course.grading, assignment)) - {j.student for j in everyone}
    for student in gone:  # a refused folder since removed: nothing left to review
        if not only or student in only:
            intake.clear_review(course.grading, assignment, student)
    good = take_in(course, jobs, cells)
    record = ledger.read(course.grading, assignment)
    source = ledger.folder_hash(Path(course.coursedir.format_path(course.coursedir.source_directory, ".", assignment)))
    hashes = {j.student: {"submission": ledger.folder_hash(course.folder("submitted", j.student, assignment)),
                          "source": source} for j in good}
    todo = [j for j in good if force or not current(course, j, cells, record.get(j.student), hashes[j.student])]
    for job in good:
        if job not in todo:  # graded before: only what may have reached its folder since is checked
            why = graded_since(course, job, 0.0, cells)
            if why:
                intake.write_review(course.grading, assignment, job.student, why)
    print(f"{assignment}: {len(jobs)} submitted, {len(jobs) - len(good)} refused at intake, "
          f"{len(good) - len(todo)} graded before and unchanged, grading {len(todo)}", flush=True)
    return Plan(assignment, cells, todo, hashes, record)


def enrol(course: Course, jobs: list[Job]) -> None:
    """Every student about to be graded is in the gradebook before the workers start (one writer, no race), and
    the instructor sees who was not on its list yet (a roster typo shows here)."""
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        known = {s.id for s in gb.students}
        new = sorted({j.student for j in jobs} - known)
        for student in new:
            gb.update_or_create_student(student)
    if new and known:
        shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        print(f"not in the gradebook before, added: {shown}", flush=True)


def finish(course: Course, p: Plan, done: pool.Done) -> status.Row:
    """Record one finished job (its review or its hashes), and read back its row of the summary."""
    job = done.job
    why = graded_since(course, job, done.started, p.cells)
    if why:
        intake.write_review(course.grading, job.assignment, job.student, f"{why}: {_last_error(done.log)}")
        p.record.pop(job.student, None)
    else:
        p.record[job.student] = p.hashes[job.student]
    ledger.write(course.grading, job.assignment, p.record)
    with Gradebook(course.coursedir.db_url, course.coursedir.course_id) as gb:
        return status.row(gb, course.coursedir, job.assignment, job.student)


def grade(course: Course, plans: list[Plan], n: int) -> str:
    """Grade every plan's jobs on ``n`` workers, printing each as it finishes; the run's summary."""
    jobs = [j for p in plans for j in p.todo]
    by_name = {p.assignment: p for p in plans}
    enrol(course, jobs)
    progress = Progress(len(jobs), width=max([12, *(len(j.student) for j in jobs)]))
    t0 = time.monotonic()
    try:
        for done in pool.run(course.root, jobs, n, job_timeout(), course.grading / "logs"):
            progress.finished(finish(course, by_name[done.job.assignment], done), done.seconds)
    finally:
        progress.close()
    return progress.summary(time.monotonic() - t0)


def job_timeout() -> float:
    """Seconds one submission may take in a worker before it is stopped (the sandbox's own limits end sooner)."""
    return DEFAULT.notebook_seconds + 60 + 300


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grader.grade", description=__doc__.split("\n\n")[0])
    ap.add_argument("assignments", nargs="+", help="problem sets, e.g. ps1_similarity_matrix")
    ap.add_argument("--student", action="append", default=[], help="grade only this student (repeatable)")
    ap.add_argument("--force", action="store_true", help="grade again submissions graded as they are now")
    ap.add_argument("--jobs", type=int, default=jobs_default(), help="submissions graded side by side "
                    "(default: the cores this process may use)")
    ap.add_argument("--root", default=".", help="the course root (the folder of nbgrader_config.py)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, not {args.jobs}")
    root = Path(args.root).resolve()
    course = Course(root, status.course_directory(root))
    plans, problems = [], []
    for a in args.assignments:
        try:
            plans.append(plan(course, a, args.student, args.force))
        except LookupError as e:
            problems.append(str(e))
            print(f"{a}: {e}", file=sys.stderr)
    try:
        print(grade(course, plans, args.jobs))
    except KeyboardInterrupt:  # the workers and their sandboxes are stopped by then (grader.pool.run)
        print("\ninterrupted: what finished is recorded; `make grade` again grades the rest", file=sys.stderr)
        return 130
    print()
    status.main([*[a for a in args.assignments], "--root", str(root)])
    pages = report.write_reports(root, args.assignments)  # for the projector: no student names
    if pages:
        print("\nclass report" + ("s" if len(pages) > 1 else "") + " (python -m grader.report): "
              + ", ".join(os.path.relpath(p, root) for p in pages))
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
