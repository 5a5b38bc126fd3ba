"""What the checks a student can run cover in a problem set, read from its nbgrader metadata.

Shared by ``make validate`` (scripts/validate.py) and the Validate button (``teaching.validate_button``). Every point
of a problem set is decided when the notebook is graded, by checks that are not in the notebook; a test cell the
student sees checks types and consistency, not the values. So both tools say how many points have a visible check
and that all of them are decided at grading, and never that a notebook "passes all the tests".
"""

from __future__ import annotations

from dataclasses import dataclass

VISIBLE, HIDDEN, MANUAL = "visible", "hidden", "manual"


@dataclass(frozen=True)
class GradedCell:
    index: int  # in the notebook's cells
    grade_id: str
    points: float
    kind: str  # VISIBLE: a test the student runs; HIDDEN: a test cell with nothing to run; MANUAL: graded by hand


@dataclass(frozen=True)
class Points:
    visible: float
    hidden: float
    manual: float

    @property
    def autograded(self) -> float:
        return self.visible + self.hidden


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in source.splitlines())


def graded_cells(nb) -> list[GradedCell]:
    """The cells with points (nbgrader ``grade: true``), in order. A code cell without code is the student version
    of a cell whose checks run only at grading."""
    cells = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        if cell.get("cell_type") != "code":
            kind = MANUAL
        else:
            kind = VISIBLE if _has_code(cell.get("source", "")) else HIDDEN
        cells.append(GradedCell(index, str(meta.get("grade_id", "?")), float(meta.get("points", 0) or 0), kind))
    return cells


def points(cells: list[GradedCell]) -> Points:
    return Points(*(sum(c.points for c in cells if c.kind == kind) for kind in (VISIBLE, HIDDEN, MANUAL)))


def decided_at_grading(p: Points) -> str:
    """The sentence both tools end with: who decides the points."""
    return (f"All {p.autograded:g} autograded points are decided at grading, by checks not in this notebook"
            + (f" ({p.hidden:g} of them have no visible test)" if p.hidden else "")
            + (f"; {p.manual:g} points are graded by hand." if p.manual else "."))
