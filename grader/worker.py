"""One grading worker of ``make grade JOBS=n``: nbgrader's autograding of one submission at a time, in a process
that imports nbgrader once and grades many submissions.

    python -m grader.worker --root COURSE      # started by grader.pool, never by hand

It reads one job per line on stdin (``{"assignment": ..., "student": ...}``) and answers one line per job on its
own copy of stdout (``{"ok": bool, "log": <the end of nbgrader's log>}``). Everything else that reaches file
descriptor 1 (a kernel's stray output, a library's print) goes to stderr, so no byte of a submission's output can
enter the answers; the copy is not inherited by the kernels (``os.dup`` makes it close-on-exec).

Each job is ``nbgrader autograde ASSIGNMENT --create --force --CourseDirectory.student_id=STUDENT`` as nbgrader's
own command runs it (the course's nbgrader_config.py: the sandbox, the trusted checks), without the start-up of a
new Python and nbgrader per submission (about 2.7 s of CPU on the reference machine, half a submission's
grading). Workers share the gradebook, a SQLite file: each connection waits up to ``BUSY_SECONDS`` for another's
write to end instead of failing with "database is locked" (SQLite's busy timeout, ``timeout`` of the URL).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import traceback

BUSY_SECONDS = 300
LOG_CHARS = 6000


def with_busy_timeout(db_url: str, seconds: float = BUSY_SECONDS) -> str:
    """The gradebook URL with SQLite's busy timeout (a URL that already names one keeps it)."""
    if not db_url.startswith("sqlite:") or "timeout=" in db_url:
        return db_url
    return f"{db_url}{'&' if '?' in db_url else '?'}timeout={seconds:g}"


def autograde_app():
    """nbgrader's autograde application with the course's configuration (read from the working directory)."""
    from nbgrader.apps.autogradeapp import AutogradeApp

    app = AutogradeApp()
    app.initialize(["--create", "--force"])
    app.coursedir.db_url = with_busy_timeout(app.coursedir.db_url)
    return app


def grade_one(app, assignment: str, student: str) -> dict:
    """Autograde one submission; ``ok`` is nbgrader's verdict on its own run, ``log`` the end of its log."""
    from nbgrader.converters import Autograde
    from nbgrader.converters.base import NbGraderException

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    app.log.addHandler(handler)
    app.coursedir.assignment_id, app.coursedir.student_id = assignment, student
    ok = False
    try:
        Autograde(coursedir=app.coursedir, parent=app).start()
        ok = True
    except NbGraderException:  # nbgrader has logged why
        pass
    except Exception:  # noqa: BLE001 (one submission's failure is recorded; the worker grades the next)
        buffer.write("[ERROR] " + traceback.format_exc())
    finally:
        app.log.removeHandler(handler)
        os.chdir(app.coursedir.root)
    return {"ok": ok, "log": buffer.getvalue()[-LOG_CHARS:]}


def serve(requests, answers) -> None:
    app = autograde_app()
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        job = json.loads(line)
        answers.write(json.dumps(grade_one(app, str(job["assignment"]), str(job["student"]))) + "\n")
        answers.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grader.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="the course root (the folder of nbgrader_config.py)")
    args = ap.parse_args(argv)
    os.chdir(args.root)
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
