"""nbgrader preprocessors of the course's autograding pipeline (configured in ``nbgrader_config.py``).

* ``QuietOverwriteCells`` restores test cells like nbgrader's ``OverwriteCells``, but warns only for a locked cell a
  student really changed (nbgrader compares with the source cell, hidden tests included, so it warns for every
  untouched cell that has hidden tests, and for a cell whose line endings or trailing spaces an editor changed) and
  records edited and deleted test cells for the summary.
* ``SandboxedExecute`` runs the notebook in a bubblewrap sandbox (``grader.sandbox``) and, when the kernel dies,
  records the cell and keeps the notebook instead of dropping the submission.

What they find goes into the notebook's metadata under ``STATUS_KEY``; ``grader.status`` turns it into the
summary of ``make grade`` and the status column of ``nbgrader export`` (``grader.export``).
"""

from __future__ import annotations

import os
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader.preprocessors import ClearHiddenTests, Execute, OverwriteCells
from nbgrader import utils
from traitlets import Bool, Integer, default

from .guards import OutputBudget, limit_hits
from .limits import DEFAULT
from .sandbox import CheckedKernelManager, MalformedKernelMessage, SandboxKernelManager, bwrap_path

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

    @default("shutdown_kernel")
    def _immediately(self):
        # the kernel is thrown away with its sandbox once its last reply is in: a graceful shutdown only spends
        # about a second of CPU per submission tearing down torch and IPython
        return "immediate"

    def __init__(self, **kw):
        super().__init__(**kw)
        self._student = None
        self.kernel_manager_class = CheckedKernelManager
        if self.sandbox:
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
        except (DeadKernelError, CellTimeoutError, MalformedKernelMessage) as e:
            # the kernel died, stopped answering or sent messages that are not Jupyter messages (e.g. a submission
            # that broke IPython or replaced json.dumps in it)
            if self._running is None:
                raise  # it never started: a set-up problem, not the submission's
            index, cell = self._running
            where = _gid(cell) or f"#{index + 1}"
            what = "died" if isinstance(e, DeadKernelError) else "stopped responding" \
                if isinstance(e, CellTimeoutError) else "sent a malformed message"
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
