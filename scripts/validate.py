"""Check problem sets before submitting: run each notebook and print one line per graded test cell.

    python scripts/validate.py exercises/ps1_similarity_matrix/ps1_similarity_matrix.ipynb [...]

For every test cell (nbgrader ``grade: true``, with points) it prints PASS or FAIL, the points, and for a failure
the last line of the error (e.g. "NotImplementedError" for a blank answer); then the total. Free-response answers
are graded by hand and listed as such. Hidden tests are not in the student notebook: they run at grading time, so
the total here is an upper bound of the visible part. Exit status 1 when any test fails, 0 otherwise.
"""

from __future__ import annotations

import os
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
            print(f"  {gid:<24} PASS  {pts:g}/{pts:g}")
        else:
            ok = False
            print(f"  {gid:<24} FAIL  0/{pts:g}  {err}")
    extra = [f"{hidden:g} in hidden tests at grading"] * bool(hidden) + [f"{manual:g} graded by hand"] * bool(manual)
    print(f"  total: {got:g}/{total - hidden - manual:g} points of visible tests"
          + (f" (of {total:g}: {', '.join(extra)})" if extra else ""))
    return got, total, ok


def main(argv: list[str]) -> int:
    probe_root = Path(__file__).resolve().parent.parent
    if (probe_root / "grader_probe").is_dir():  # an instructor checking solutions/: their hidden cells need it
        os.environ["PYTHONPATH"] = os.pathsep.join([str(probe_root), os.environ.get("PYTHONPATH", "")])
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
