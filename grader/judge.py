"""The trusted verdict of every graded code cell (nbgrader preprocessor ``grader.judge.TrustedChecks``).

After nbgrader's own kernel run (kept so the instructor sees the notebook's outputs), each check's values are
obtained again by ``grader.harness``: the answer cells run in a fresh plain Python process per check, inside the
sandbox, without the library functions the problem set asks the student to write. The checks of ``grader``
judge those values against the numbers of the student the notebook is graded as (``grader.problems``). Nothing
the kernel displayed or the submission's metadata holds enters a verdict; each graded cell's outputs are replaced
by its verdict.
"""

from __future__ import annotations

import glob
import os

from nbformat.notebooknode import from_dict
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float

from simclr_core.teaching.variants import same_student

from . import CHECKS, shortcuts
from .harness import RUNNERS, CheckRun, answer_cells
from .problems import VARIANT_ASSIGNMENTS, other_variants, problem
from .verdict import Verdict

from .preprocessors import STATUS_KEY


def _status(nb) -> dict:
    return nb.metadata.setdefault(STATUS_KEY, {})


def _gid(cell) -> str | None:
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    return gid if isinstance(gid, str) else None


def _typed_id(runs) -> str | None:
    """The student id the submission's numbers came from (STUDENT_ID), as most checks found it."""
    ids = [r.variant for r in runs if r.variant]
    return max(sorted(set(ids)), key=ids.count) if ids else None


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


def _explain(v: Verdict, run: CheckRun, skipped: dict, rule: str | None) -> Verdict:
    """Add why values were missing or wrong: the cells that raised or were stopped, and a library rule."""
    if v.fraction >= 1.0:
        return v
    raised = [(c, why.rstrip(": ")) for c, why in run.cell_errors.items() if not why.startswith("NotImplementedError")]
    for cell, why in raised[:2]:  # a blank answer already says "not written yet" / "is not defined"
        v.note(f"cell {cell} raised {why}")
    for cell, why in skipped.items():
        v.note(f"cell {cell} {why}, so it was skipped")
    if rule:
        v.note(rule)
    return v


def _answer_cells(nb) -> dict[str, str]:
    """grade id of each graded cell -> that of the answer cell it follows (the nearest solution code cell above)."""
    out, last = {}, None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if utils.is_grade(cell) and _gid(cell) and last:
            out[_gid(cell)] = last
        elif utils.is_solution(cell) and _gid(cell):
            last = _gid(cell)
    return out


def _limited(meta: dict, cells: set) -> bool:
    """Whether the kernel's run stopped one of ``cells`` at the time limit or a limit of the sandbox."""
    limits, timed_out = meta.get("limits"), meta.get("timed_out")
    hits = [c for kind in limits.values() if isinstance(kind, list) for c in kind] if isinstance(limits, dict) else []
    hits += timed_out if isinstance(timed_out, list) else []
    return any(isinstance(c, str) and c in cells for c in hits)


def _same_code(a, b) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.split() == b.split()


def _mark(v: Verdict, run: CheckRun | None, answer: str | None, untouched: bool, skipped: dict,
          meta: dict) -> Verdict:
    """Set what the class report counts: a blank answer (its cell as released, or raising the released
    NotImplementedError), a stopped one, values no check could judge."""
    v.review = v.review or run is None or run.values is None
    if v.fraction < 1.0 and answer:
        v.blank = untouched or (run is not None and run.cell_errors.get(answer, "").startswith("NotImplementedError"))
        v.stopped = answer in skipped or _limited(meta, {answer})
    return v


def _settings(config, assignment: str, student: str) -> tuple:
    timeout = float(config.get("TrustedChecks", {}).get("cell_timeout", 0) or 0) or \
        float(config.get("Execute", {}).get("timeout", 30) or 30)
    return assignment, student, timeout, bool(config.get("SandboxedExecute", {}).get("sandbox", True))


class TrustedChecks(NbGraderPreprocessor):
    """Score every graded code cell from values obtained outside the submission's kernel (see the module)."""

    cell_timeout = Float(0.0, help="Seconds one answer cell may run while its values are obtained; 0 takes "
                                   "Execute.timeout (the kernel's per-cell limit).").tag(config=True)  # see _settings

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

    def _params(self, nb, resources, typed) -> dict:
        info = resources.get("nbgrader", {})
        assignment, student = info.get("assignment", ""), info.get("student", "")
        try:
            params = problem(assignment, student)
        except ValueError as e:  # an id no variant can be made of: every numeric check says "needs review"
            self.log.error("no numbers for student %r: %s", student, e)
            return {"student": student, "others": []}
        if assignment in VARIANT_ASSIGNMENTS:
            params["others"] = other_variants(assignment, student, typed, self._roster(resources))
            try:
                if typed is not None and not same_student(typed, student):
                    _status(nb)["student_id_typed"] = typed.strip()  # the numbers of another id than the graded one
            except ValueError:
                _status(nb)["student_id_typed"] = typed[:100]
        return params

    def _cells(self, nb, resources) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """The cells to run (``answer_cells``) and the released source of each answer cell, by grade id."""
        info, released = resources["nbgrader"], {}
        with Gradebook(info["db_url"]) as gb:
            def kind(gid):
                try:
                    src = gb.find_source_cell(gid, info["notebook"], info["assignment"])
                except Exception:  # noqa: BLE001 (a cell the gradebook does not know: the student's own)
                    return None
                for what, find in (("grade", gb.find_grade_cell), ("solution", gb.find_solution_cell)):
                    try:
                        find(gid, info["notebook"], info["assignment"])
                        if what == "solution":
                            released[gid] = str(src.source)
                        return what, src.source
                    except Exception:  # noqa: BLE001
                        pass
                return ("locked", src.source) if src.locked else None
            return answer_cells(nb, kind), released

    def _runs(self, nb, resources, gids) -> tuple[dict, dict, dict]:
        info = resources["nbgrader"]
        (cells, released), runs = self._cells(nb, resources), {}
        # a cell the kernel run stopped at its own time limit (grader.preprocessors.SandboxedExecute) would only
        # spend the same limit again here: it is skipped from the start (what it would have set is missing either
        # way). Not when the notebook ran out of its time: the cell stopped then may have had less than its limit.
        status = _status(nb)
        stopped = status.get("timed_out") if "notebook_time_limit" not in status else None
        skipped = {c: "was stopped at the time limit" for c in stopped if isinstance(c, str)} \
            if isinstance(stopped, list) else {}
        try:
            with RUNNERS.submission(*_settings(self.config, info["assignment"], info["student"])) as runner:
                for gid in gids:
                    runs[gid] = runner.check(gid, cells, skipped)
        except (OSError, RuntimeError) as e:  # no process for this submission: its checks wait for review
            self.log.error("the grading runner did not start for %s: %s", info["student"], e)
            return {gid: CheckRun(problem="the grading process did not start (needs review)") for gid in gids}, {}, \
                released
        return runs, skipped, released

    def preprocess(self, nb, resources):
        graded = [c for c in nb.cells if c.cell_type == "code" and utils.is_grade(c) and _gid(c)]
        runs, skipped, released = self._runs(nb, resources, [_gid(c) for c in graded if _gid(c) in CHECKS])
        params = self._params(nb, resources, _typed_id(runs.values()))
        answers = {_gid(c): str(c.source) for c in nb.cells if c.cell_type == "code" and utils.is_solution(c)}
        rules = shortcuts.violations(answers)
        if rules:
            _status(nb)["forbidden"] = sorted(rules)
        if skipped:
            _status(nb)["grading_skipped_cells"] = dict(skipped)
        copied, records, answer_of = {}, {}, _answer_cells(nb)
        for cell in graded:
            gid, v = _gid(cell), Verdict()
            run = runs.get(gid)
            if run is None:
                v.add(False, f"no trusted check exists for {gid}; grade it by hand")
            elif run.values is None:
                v.add(False, run.problem or "no values (needs review)")
            else:
                try:
                    v = CHECKS[gid](run.values, params)
                except Exception as e:  # noqa: BLE001 (a checker bug must not cost the student the submission)
                    self.log.exception("checker %s failed", gid)
                    v = Verdict(review=True)
                    v.add(False, f"the checker could not judge these values ({type(e).__name__}); needs review")
            if run is not None:
                v = _explain(v, run, skipped, rules.get(gid))
            answer = answer_of.get(gid)
            untouched = answer in released and _same_code(answers.get(answer), released[answer])
            records[gid] = _mark(v, run, answer, untouched, skipped, _status(nb)).record()
            if v.copied_from:
                copied[gid] = sorted(v.copied_from)
            cell.outputs = _render(v, float(cell.metadata["nbgrader"]["points"]))
        if copied:  # for the instructor only: whose numbers these answers are for (the feedback names no one)
            _status(nb)["answers_for_other_students"] = copied
        if records:  # for the class report (grader.report): per graded cell, what the verdict found
            _status(nb)["verdicts"] = records
        return nb, resources
