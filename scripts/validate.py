"""Check problem sets before submitting: run each notebook and print one line per graded test cell.

    python scripts/validate.py exercises/ps1_similarity_matrix/ps1_similarity_matrix.ipynb [...]

For every test cell (nbgrader ``grade: true``, with points) it prints whether its visible test passes or fails,
with the last line of the error (e.g. "NotImplementedError" for a blank answer); free-response answers are graded
by hand and listed as such. A visible test checks types and consistency, not the values: every point is decided
when the notebook is graded, by checks that are not in the notebook. So the summary says how many points have a
visible test and never that the notebook "passes all the tests". Exit status 1 when a visible test fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


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
    got = total = hidden = manual = 0.0
    ok = True
    print(f"== {path}")
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        pts = float(meta.get("points", 0))
        total += pts
        gid = meta.get("grade_id", "?")
        if cell.cell_type != "code":
            manual += pts
            print(f"  {gid:<24} graded by hand ({pts:g} pts)")
            continue
        code = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not code:  # the student version of a cell that holds only hidden tests
            hidden += pts
            print(f"  {gid:<24} hidden: runs when graded ({pts:g} pts)")
            continue
        err = _error_line(cell)
        if err is None:
            got += pts
            print(f"  {gid:<24} visible test passes ({pts:g} pts, decided at grading)")
        else:
            ok = False
            print(f"  {gid:<24} FAIL  visible test ({pts:g} pts)  {err}")
    print(f"  visible tests pass for {got:g} of the {total - hidden - manual:g} points that have one; they check "
          f"types and consistency, not your values.")
    print(f"  All {total - manual:g} autograded points are decided at grading, by checks not in this notebook"
          + (f" ({hidden:g} of them have no visible test)" if hidden else "")
          + (f"; {manual:g} points are graded by hand." if manual else "."))
    return got, total, ok


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
