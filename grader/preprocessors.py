"""nbgrader preprocessors of the course's autograding pipeline (configured in ``nbgrader_config.py``).

* ``QuietOverwriteCells`` restores test cells like nbgrader's ``OverwriteCells``, but warns only for a locked cell a
  student really changed (nbgrader compares with the source cell, hidden tests included, so it warns for every
  untouched cell that has hidden tests, and for a cell whose line endings or trailing spaces an editor changed) and
  records edited and deleted test cells for the summary.
* ``SandboxedExecute`` runs the notebook in a bubblewrap sandbox (``grader.sandbox``) and, when the kernel dies,
  records the cell and keeps the notebook instead of dropping the submission.
* ``TrustedChecks`` replaces each graded code cell's outputs with the trusted checker's verdict, on the numbers
  of the student the notebook is graded as (``grader.problems``; the id typed in the notebook chooses only what
  the kernel computed).

What they find goes into the notebook's metadata under ``STATUS_KEY``; ``grader.status`` turns it into the
summary of ``make grade`` and the status column of ``nbgrader export`` (``grader.export``).
"""

from __future__ import annotations

import glob
import json
import os
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader.preprocessors import ClearHiddenTests, Execute, NbGraderPreprocessor, OverwriteCells
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from traitlets import Bool, Integer

from grader_probe import MIME
from simclr_core.teaching.variants import same_student

from . import CHECKS, shortcuts
from .guards import OutputBudget, limit_hits
from .limits import DEFAULT
from .problems import VARIANT_ASSIGNMENTS, other_variants, problem
from .verdict import Verdict

STATUS_KEY = "simclr_grading"
TIMEOUT_ERRORS = ("CellTimeoutError", "KeyboardInterrupt")
STUDENT_ENV = "SIMCLR_STUDENT_ID"  # the id being graded, for a notebook whose STUDENT_ID is left empty


def _status(nb) -> dict:
    return nb.metadata.setdefault(STATUS_KEY, {})


def _gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _same_text(a: str, b: str) -> bool:
    """Equal but for line endings (CRLF, CR), trailing spaces and blank lines at either end: what editors and
    file transfers change without anyone editing the cell."""
    def norm(s: str) -> str:
        return "\n".join(line.rstrip() for line in s.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()
    return norm(a) == norm(b)


class QuietOverwriteCells(OverwriteCells):
    def preprocess(self, nb, resources):
        before = {_gid(c) for c in nb.cells}
        nb, resources = super().preprocess(nb, resources)
        added = [_gid(c) for c in nb.cells if _gid(c) not in before]
        if added:
            _status(nb)["missing_tests"] = added
        edited = resources.pop("_edited_tests", [])
        if edited:
            _status(nb)["edited_tests"] = edited
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        gid = _gid(cell)
        if gid is not None and utils.is_locked(cell):
            try:
                source = self.gradebook.find_source_cell(gid, self.notebook_id, self.assignment_id)
            except Exception:  # noqa: BLE001 (unknown cells are nbgrader's to report)
                return super().preprocess_cell(cell, resources, cell_index)
            released = NotebookNode(cell_type=source.cell_type, source=source.source, metadata={})
            ClearHiddenTests()._remove_hidden_test_region(released)
            if _same_text(cell.source, released.source) or _same_text(cell.source, source.source):
                cell.source = source.source  # the released cell, untouched: put its hidden tests back silently
            else:
                resources.setdefault("_edited_tests", []).append(gid)
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        return cell, resources


class SandboxedExecute(Execute):
    sandbox = Bool(True, help="Run grading kernels under bubblewrap (grader.sandbox); False only to debug "
                              "the pipeline on a machine without bwrap.").tag(config=True)
    notebook_timeout = Integer(DEFAULT.notebook_seconds, help="Seconds the whole notebook may run; the cells left "
                               "when they are spent are not run (each cell also has Execute.timeout)").tag(config=True)
    output_bytes = Integer(DEFAULT.output_bytes, help="Bytes of output kept per notebook; the rest is dropped "
                           "and noted").tag(config=True)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._student = None
        if self.sandbox:
            from .sandbox import SandboxKernelManager, bwrap_path

            if bwrap_path() is None:
                raise RuntimeError("sandboxed grading needs bubblewrap (`sudo apt-get install bubblewrap`, or "
                                   "`make system`); --SandboxedExecute.sandbox=False grades WITHOUT a sandbox")
            self.kernel_manager_class = SandboxKernelManager

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and time.monotonic() >= self._deadline:
            self._late.append(_gid(cell) or f"#{index + 1}")
            cell.outputs = [from_dict({"output_type": "error", "ename": "NotebookTimeLimit", "evalue": "not run",
                                       "traceback": [f"Not run: the notebook used its {self.notebook_timeout} s."]})]
            return cell, resources
        self._running = (index, cell)
        return super().preprocess_cell(cell, resources, index)

    def _cell_timeout(self, cell) -> int:
        """The per-cell limit, or the notebook's time left if less."""
        return max(1, int(min(self.timeout or self.notebook_timeout, self._deadline - time.monotonic()) + 0.999))

    def output(self, outs, msg, display_id, cell_index):
        if not self._budget.admit(msg, outs):
            return None
        return super().output(outs, msg, display_id, cell_index)

    def start_new_kernel(self, **kwargs):
        if self._student:  # the sandbox passes on only this variable (grader.sandbox)
            kwargs["env"] = {**os.environ, **kwargs.get("env", {}), STUDENT_ENV: self._student}
        return super().start_new_kernel(**kwargs)

    def preprocess(self, nb, resources, km=None):
        self._running = None
        self._student = (resources or {}).get("nbgrader", {}).get("student")
        self._deadline = time.monotonic() + self.notebook_timeout
        self._late, self._budget = [], OutputBudget(self.output_bytes)
        self.timeout_func = self._cell_timeout
        try:
            nb, resources = super().preprocess(nb, resources, km=km)
        except (DeadKernelError, CellTimeoutError) as e:
            # the kernel died, or stopped answering (e.g. a submission that broke IPython itself)
            if self._running is None:
                raise  # it never started: a set-up problem, not the submission's
            index, cell = self._running
            where = _gid(cell) or f"#{index + 1}"
            what = "died" if isinstance(e, DeadKernelError) else "stopped responding"
            cell.outputs.append(from_dict({"output_type": "error", "ename": "KernelDied", "evalue": where,
                                           "traceback": [f"The kernel {what} in cell {where}: needs review."]}))
            _status(nb)["kernel_died_in"] = where
        timed_out = [(_gid(c) or f"#{k + 1}") for k, c in enumerate(nb.cells) if c.cell_type == "code"
                     and any(o.output_type == "error" and o.get("ename") in TIMEOUT_ERRORS for o in c.outputs)]
        if timed_out:
            _status(nb)["timed_out"] = timed_out
        if self._late:
            _status(nb)["notebook_time_limit"] = {"seconds": self.notebook_timeout, "not_run": self._late}
        if self._budget.dropped:
            _status(nb)["output_dropped"] = {"kept": self._budget.limit, "dropped": self._budget.dropped}
        hits = limit_hits(nb, _gid)
        if hits:
            _status(nb)["limits"] = hits
        return nb, resources


def _reported(cell, gid):
    """The payload a hidden test displayed: {"check": gid, "values": {...}, "variant": id typed (optional)}."""
    for out in cell.get("outputs", []):
        data = out.get("data", {}) if out.get("output_type") in ("display_data", "execute_result") else {}
        payload = data.get(MIME)
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                payload = None
        if isinstance(payload, dict) and payload.get("check") == gid and isinstance(payload.get("values"), dict):
            return payload
    return None


def _typed_id(payloads) -> str | None:
    """The student id the kernel's numbers came from (STUDENT_ID), as most graded cells reported it."""
    ids = [p.get("variant") for p in payloads if isinstance(p.get("variant"), str)]
    return max(sorted(set(ids)), key=ids.count) if ids else None


def _kernel_error(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            name, value = str(out.get("ename", "Error")), str(out.get("evalue", ""))
            return f"{name}: {value}"[:300] if value else name
    return None


def _render(verdict: Verdict, points: float) -> list:
    text = verdict.message + "\n"
    if verdict.fraction >= 1.0:
        return [from_dict({"output_type": "stream", "name": "stdout", "text": text})]
    if verdict.fraction <= 0.0:
        first = next(m for p, m in verdict.parts if p == 0.0)
        return [from_dict({"output_type": "error", "ename": "Not yet right", "evalue": first[6:],
                           "traceback": verdict.message.split("\n")})]
    earned = round(verdict.fraction * points, 2)
    return [from_dict({"output_type": "stream", "name": "stdout", "text": text}),
            from_dict({"output_type": "execute_result", "execution_count": None, "metadata": {},
                       "data": {"text/plain": f"{earned:g}"}})]


class TrustedChecks(NbGraderPreprocessor):
    """Score every graded code cell from the values it reported, compared outside the kernel."""

    def _roster(self, resources) -> set[str]:
        """The course's students: the gradebook's and those with a submission of this assignment."""
        info = resources.get("nbgrader", {})
        ids = set()
        try:
            with Gradebook(info["db_url"]) as gb:
                ids.update(s.id for s in gb.students)
        except Exception:  # noqa: BLE001 (no gradebook: only the submitted folders)
            self.log.warning("could not read the students of the gradebook")
        coursedir = CourseDirectory(config=self.config)
        folders = glob.glob(coursedir.format_path(coursedir.submitted_directory, "*", info.get("assignment", "")))
        return ids | {os.path.basename(os.path.dirname(f)) for f in folders if os.path.isdir(f)}

    def _params(self, nb, resources, payloads) -> dict:
        info = resources.get("nbgrader", {})
        assignment, student = info.get("assignment", ""), info.get("student", "")
        try:
            params = problem(assignment, student)
        except ValueError as e:  # an id no variant can be made of: every numeric check says "needs review"
            self.log.error("no numbers for student %r: %s", student, e)
            return {"student": student, "others": []}
        if assignment in VARIANT_ASSIGNMENTS:
            typed = _typed_id(payloads)
            params["others"] = other_variants(assignment, student, typed, self._roster(resources))
            try:
                if typed is not None and not same_student(typed, student):
                    _status(nb)["student_id_typed"] = typed.strip()  # the numbers of another id than the graded one
            except ValueError:
                _status(nb)["student_id_typed"] = typed[:100]
        return params

    def preprocess(self, nb, resources):
        payloads = {_gid(c): _reported(c, _gid(c)) for c in nb.cells if c.cell_type == "code" and utils.is_grade(c)}
        params = self._params(nb, resources, [p for p in payloads.values() if p])
        answers = {_gid(c): c.source for c in nb.cells if utils.is_solution(c) and c.cell_type == "code"}
        forbidden = shortcuts.violations(answers)
        status = nb.metadata.get(STATUS_KEY, {})
        died, timed_out = status.get("kernel_died_in"), status.get("timed_out", [])
        if forbidden:
            _status(nb)["forbidden"] = sorted(forbidden)
        copied = {}
        for cell in nb.cells:
            gid = _gid(cell)
            if cell.cell_type != "code" or not utils.is_grade(cell):
                continue
            v = Verdict()
            values = (payloads.get(gid) or {}).get("values")
            if gid in forbidden:
                v.add(False, forbidden[gid])
            elif gid not in CHECKS:
                v.add(False, f"no trusted check exists for {gid}; grade it by hand")
            elif values is not None:
                try:
                    v = CHECKS[gid](values, params)
                except Exception as e:  # noqa: BLE001 (a checker bug must not cost the student the submission)
                    self.log.exception("checker %s failed", gid)
                    v = Verdict()
                    v.add(False, f"the checker could not judge these values ({type(e).__name__}); needs review")
            elif died and not cell.outputs:
                v.add(False, f"not run: the kernel died in cell {died} (needs review)")
            else:
                why = _kernel_error(cell) or "the test cell did not report its values"
                late = f" (cell {', '.join(timed_out)} was stopped at the time limit)" if timed_out else ""
                v.add(False, f"{why}{late}")
            if v.copied_from:
                copied[gid] = sorted(v.copied_from)
            cell.outputs = _render(v, float(cell.metadata["nbgrader"]["points"]))
        if copied:  # for the instructor: whose numbers these answers are for (the feedback names no one)
            _status(nb)["answers_for_other_students"] = copied
        return nb, resources
