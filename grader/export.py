"""``nbgrader export`` with a status column (configured in ``nbgrader_config.py`` as ``ExportApp.plugin_class``).

nbgrader's CSV exporter writes a missing submission and a notebook whose kernel died alike: a score and nothing
else. This one writes nbgrader's columns and two more: ``status`` (``missing``, ``kernel died in cell X, needs
review``, ``needs manual grading (N cells)``, ``graded``, ...; see ``grader.status``) and ``notes`` (edited or
deleted test cells, time limits, limits of the sandbox, forbidden calls). Values are quoted as CSV requires; a
problem set no one has handed in yet is ``not assigned`` for everyone, with no score.
"""

from __future__ import annotations

import csv
import os
import tempfile

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import CsvExportPlugin

from . import status

COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "raw_score",
           "late_submission_penalty", "score", "max_score", "status", "notes"]


def _coursedir(plugin):
    coursedir = getattr(plugin.parent, "coursedir", None)
    if coursedir is None:  # used outside `nbgrader export`
        from nbgrader.coursedir import CourseDirectory

        coursedir = CourseDirectory(config=plugin.config)
    return coursedir


def _text(value) -> str:
    return "" if value is None else str(value)


class StatusCsvExportPlugin(CsvExportPlugin):
    """nbgrader's CSV export plus ``status`` and ``notes`` (a crash is not a missing submission, a problem set no
    one has handed in is "not assigned"). The file is written whole or not at all: it is built beside ``dest``
    and renamed over it only once every row is written; any error leaves ``dest`` as it was and fails the
    command."""

    def export(self, gradebook: Gradebook) -> None:
        dest = os.path.abspath(self.to or "grades.csv")
        self.log.info("Exporting grades, with each submission's status, to %s", dest)
        fd, tmp = tempfile.mkstemp(prefix=".grades-", suffix=".csv", dir=os.path.dirname(dest))
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh)
                out.writerow(COLUMNS)
                for values in self._rows(gradebook):
                    out.writerow([_text(v) for v in values])
            os.replace(tmp, dest)
        except BaseException:
            os.unlink(tmp)
            raise

    def _rows(self, gradebook: Gradebook):
        students = [str(s) for s in self.student]
        assignments = [str(a) for a in self.assignment]
        coursedir = _coursedir(self)
        for assignment in gradebook.assignments:
            if assignments and assignment.name not in assignments:
                continue
            submitted = set(status.submitted_students(coursedir, assignment.name))  # once per assignment
            handed_out = status.handed_in(gradebook, coursedir, assignment.name, submitted)
            for student in gradebook.students:
                if students and student.id not in students:
                    continue
                r = status.row(gradebook, coursedir, assignment.name, student.id, submitted, handed_out)
                if r.status == status.NOT_ASSIGNED or r.needs_review and r.score is None:
                    timestamp, raw, penalty, score = "", "", "", ""  # no score to give, not a zero
                else:
                    try:
                        sub = gradebook.find_submission(assignment.name, student.id)
                    except MissingEntry:
                        timestamp, raw, penalty, score = "", 0.0, 0.0, 0.0
                    else:
                        timestamp, raw, penalty = sub.timestamp, sub.score, sub.late_submission_penalty
                        score = max(0.0, sub.score - penalty)
                yield (assignment.name, assignment.duedate, timestamp, student.id, student.last_name,
                       student.first_name, student.email, raw, penalty, score, assignment.max_score,
                       r.status, "; ".join(r.notes))
