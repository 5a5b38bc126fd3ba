"""nbgrader preprocessors of the course's autograding pipeline (configured in ``nbgrader_config.py``).

* ``QuietOverwriteCells`` restores test cells like nbgrader's ``OverwriteCells``, but warns only for a locked cell a
  student really changed (nbgrader compares with the source cell, hidden tests included, so it warns for every
  untouched cell that has hidden tests, and for a cell whose line endings or trailing spaces an editor changed) and
  records edited and deleted test cells for the summary.
* ``SandboxedExecute`` runs the notebook in a bubblewrap sandbox (``grader.sandbox``) and, when the kernel dies,
  records the cell and keeps the notebook instead of dropping the submission.
* ``TrustedChecks`` replaces each graded code cell's outputs with the trusted checker's verdict.

What they find goes into the notebook's metadata under ``STATUS_KEY``; ``grader.status`` turns it into the
summary of ``make grade`` and the status column of ``nbgrader export`` (``grader.export``).
"""

from __future__ import annotations

import json

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader.preprocessors import ClearHiddenTests, Execute, NbGraderPreprocessor, OverwriteCells
from nbgrader import utils
from traitlets import Bool

from grader_probe import MIME

from . import CHECKS, shortcuts
from .problems import problem
from .verdict import Verdict

STATUS_KEY = "simclr_grading"
TIMEOUT_ERRORS = ("CellTimeoutError", "KeyboardInterrupt")


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

    def __init__(self, **kw):
        super().__init__(**kw)
        if self.sandbox:
            from .sandbox import SandboxKernelManager, bwrap_path

            if bwrap_path() is None:
                raise RuntimeError("sandboxed grading needs bubblewrap (`sudo apt-get install bubblewrap`, or "
                                   "`make system`); --SandboxedExecute.sandbox=False grades WITHOUT a sandbox")
            self.kernel_manager_class = SandboxKernelManager

    def preprocess_cell(self, cell, resources, index):
        self._running = (index, cell)
        return super().preprocess_cell(cell, resources, index)

    def preprocess(self, nb, resources, km=None):
        self._running = None
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
        return nb, resources


def _reported(cell, gid):
    for out in cell.get("outputs", []):
        data = out.get("data", {}) if out.get("output_type") in ("display_data", "execute_result") else {}
        payload = data.get(MIME)
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                payload = None
        if isinstance(payload, dict) and payload.get("check") == gid and isinstance(payload.get("values"), dict):
            return payload["values"]
    return None


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

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        params = problem(info.get("assignment", ""), info.get("student", ""))
        answers = {_gid(c): c.source for c in nb.cells if utils.is_solution(c) and c.cell_type == "code"}
        forbidden = shortcuts.violations(answers)
        status = nb.metadata.get(STATUS_KEY, {})
        died, timed_out = status.get("kernel_died_in"), status.get("timed_out", [])
        if forbidden:
            _status(nb)["forbidden"] = sorted(forbidden)
        for cell in nb.cells:
            gid = _gid(cell)
            if cell.cell_type != "code" or not utils.is_grade(cell):
                continue
            v = Verdict()
            values = _reported(cell, gid)
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
            cell.outputs = _render(v, float(cell.metadata["nbgrader"]["points"]))
        return nb, resources
