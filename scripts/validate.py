"""Check problem sets before submitting: run each notebook and print one line per graded test cell.

    python scripts/validate.py exercises/ps1_similarity_matrix/ps1_similarity_matrix.ipynb [...]

For every test cell (nbgrader ``grade: true``, with points) it prints whether its visible test passes or fails,
with the last line of the error (e.g. "NotImplementedError" for a blank answer); free-response answers are graded
by hand and listed as such. A visible test checks types and consistency, not the values: every point is decided
when the notebook is graded, by checks that are not in the notebook. So the summary says how many points have a
visible test and never that the notebook "passes all the tests" (the counting is simclr_core.teaching.visible_checks,
which the Validate button's answer uses too). Exit status 1 when a visible test fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # this checkout's library, whichever checkout the environment's install points at
    sys.path.insert(0, str(ROOT))

from simclr_core.teaching.visible_checks import HIDDEN, MANUAL, decided_at_grading, graded_cells, points  # noqa: E402


def _error_line(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            msg = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip().rstrip(":")
            return msg.splitlines()[0][:110] if msg else "error"
    return None


def validate(path: Path) -> tuple[float, float, bool]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    graded = graded_cells(nb)
    tally = points(graded)
    got = 0.0
    ok = True
    print(f"== {path}")
    for g in graded:
        gid = f"{g.grade_id:<24}"
        if g.kind == MANUAL:
            print(f"  {gid} graded by hand ({g.points:g} pts)")
            continue
        if g.kind == HIDDEN:  # the student version of a cell that holds only hidden tests
            print(f"  {gid} hidden: runs when graded ({g.points:g} pts)")
            continue
        err = _error_line(nb.cells[g.index])
        if err is None:
            got += g.points
            print(f"  {gid} visible test passes ({g.points:g} pts, decided at grading)")
        else:
            ok = False
            print(f"  {gid} FAIL  visible test ({g.points:g} pts)  {err}")
    print(f"  visible tests pass for {got:g} of the {tally.visible:g} points that have one; they check "
          f"types and consistency, not your values.")
    print(f"  {decided_at_grading(tally)}")
    return got, tally.visible + tally.hidden + tally.manual, ok


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    ok = True
    for arg in argv:
        p = Path(arg)
        if not p.is_file():
            print(f"validate: no notebook at {p}", file=sys.stderr)
            return 2
        ok &= validate(p)[2]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
