"""Intake: which submitted folders may be autograded, and the "needs review" record of those that may not.

Before nbgrader sees a submission, ``check_submission`` reads it as untrusted data: its folder must hold only
regular files and folders (no link, device, FIFO or socket), few and small enough (``IntakeLimits``), the
notebook of the problem set must be UTF-8 JSON that nbformat validates, and every cell's nbgrader metadata must
agree with the gradebook's copy of the released cell (known grade ids, each once, the same grade / solution /
locked / task flags and cell type). Whatever fails is the reason of "needs review: <reason>" for that student,
kept under ``grading/review/<assignment>/<student>.json`` (written by the grading driver ``grader.grade``; read by
``grader.status`` and ``grader.export``), and nbgrader never sees the submission.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .guards import write_atomic
from .limits import MiB, size_text

NEEDS_REVIEW = "needs review: {}"
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
FLAGS = ("grade", "solution", "locked", "task")


@dataclass(frozen=True)
class IntakeLimits:
    file_bytes: int = 20 * MiB
    total_bytes: int = 50 * MiB
    files: int = 200


@dataclass(frozen=True)
class ReleasedCell:
    cell_type: str
    flags: tuple[bool, bool, bool, bool]  # FLAGS


def released_cells(gb, assignment: str, notebook: str) -> dict[str, ReleasedCell]:
    """grade id -> the released cell, from the gradebook (filled by ``nbgrader generate_assignment``)."""
    nb = gb.find_notebook(notebook, assignment)
    grade = {c.name: c.cell_type for c in nb.grade_cells}
    solution = {c.name for c in nb.solution_cells}
    task = {c.name for c in nb.task_cells}
    out = {}
    for c in nb.source_cells:
        flags = (c.name in grade, c.name in solution, bool(c.locked), c.name in task)
        out[c.name] = ReleasedCell(c.cell_type, flags)
    return out


def _files(folder: Path, limits: IntakeLimits) -> str | None:
    """Why the folder's files cannot be graded, or None; links are never followed."""
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        return f"{folder.name} is a link or a file, not a folder"
    total, count = 0, 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = path.relative_to(folder)
            if stat.S_ISDIR(st.st_mode):
                continue
            if stat.S_ISLNK(st.st_mode):
                return f"{rel} is a symbolic link"
            if not stat.S_ISREG(st.st_mode):
                return f"{rel} is not a regular file (a device, FIFO or socket)"
            if st.st_size > limits.file_bytes:
                return f"{rel} is {size_text(st.st_size)}, above the limit of {size_text(limits.file_bytes)} a file"
            total, count = total + st.st_size, count + 1
        if count > limits.files:
            return f"more than {limits.files} files"
        if total > limits.total_bytes:
            return f"the files take more than {size_text(limits.total_bytes)}"
    return None


def read_notebook(path: Path):
    """The notebook at ``path``, or the reason it is not one (UTF-8 JSON that nbformat 4 validates)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return None, f"{path.name} cannot be read ({e.strerror})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"{path.name} is not UTF-8 text (byte {e.start})"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        return None, f"{path.name} is not valid JSON ({str(e)[:120]})"
    if not isinstance(data, dict) or data.get("nbformat") != 4:
        return None, f"{path.name} is not a version-4 Jupyter notebook"
    try:
        nb = nbformat.from_dict(data)
        nbformat.validate(nb)
    except Exception as e:  # noqa: BLE001 (nbformat raises several kinds for a malformed notebook)
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        return None, f"{path.name} is not a valid notebook ({first})"
    return nb, None


def _cells(nb, released: dict[str, ReleasedCell]) -> str | None:
    """Why the cells' nbgrader metadata disagrees with the released notebook, or None."""
    seen = set()
    for k, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        where = f"cell {k + 1}"
        if not isinstance(meta, dict):
            return f"{where}: its nbgrader metadata is not an object"
        flags = tuple(meta.get(f, False) for f in FLAGS)
        if not all(isinstance(f, bool) for f in flags):
            return f"{where}: its nbgrader flags are not true/false"
        if not any(flags):
            continue
        gid = meta.get("grade_id")
        if not isinstance(gid, str) or gid not in released:
            return f"{where}: grade id {str(gid)[:60]!r} is not a cell of the released notebook"
        if gid in seen:
            return f"{where}: grade id {gid!r} appears twice"
        seen.add(gid)
        want = released[gid]
        if cell.cell_type != want.cell_type or flags != want.flags:
            marked = "/".join(f for f, on in zip(FLAGS, flags) if on) or "nothing"
            should = "/".join(f for f, on in zip(FLAGS, want.flags) if on)
            return f"{where} ({gid}) is marked {marked} ({cell.cell_type}), released as {should} ({want.cell_type})"
        if flags[0] and (isinstance(meta.get("points"), bool) or not isinstance(meta.get("points"), (int, float))):
            return f"{where} ({gid}): its points are not a number"
    return None


def check_submission(folder: Path, notebooks: dict[str, dict[str, ReleasedCell]],
                     limits: IntakeLimits = IntakeLimits()) -> str | None:
    """Why the submitted ``folder`` cannot be autograded, or None; ``notebooks``: notebook name -> its released
    cells. A missing notebook is no reason (nbgrader grades what is there and the rest scores nothing)."""
    if not SAFE_ID.match(folder.parent.name):
        return (f"the student id {folder.parent.name[:60]!r} is not letters, digits and _.@+- "
                "(rename the folder)")
    if not stat.S_ISDIR(os.lstat(folder.parent).st_mode):
        return f"the student's folder {folder.parent.name} is a link, not a folder"
    why = _files(folder, limits)
    if why:
        return why
    present = [n for n in notebooks if (folder / f"{n}.ipynb").is_file()]
    if not present:
        return f"no notebook {' or '.join(n + '.ipynb' for n in notebooks)} in the folder"
    for name in present:
        nb, why = read_notebook(folder / f"{name}.ipynb")
        why = why or _cells(nb, notebooks[name])
        if why:
            return why
    return None


def review_path(grading: Path, assignment: str, student: str) -> Path:
    return grading / "review" / assignment / f"{student}.json"


def write_review(grading: Path, assignment: str, student: str, reason: str) -> None:
    """Record (atomically) that the student's submission needs review, and why."""
    write_atomic(review_path(grading, assignment, student),
                 json.dumps({"assignment": assignment, "student": student, "reason": reason}))


def clear_review(grading: Path, assignment: str, student: str) -> None:
    review_path(grading, assignment, student).unlink(missing_ok=True)


def read_review(grading: Path, assignment: str, student: str) -> str | None:
    """The recorded reason, or None; a record that cannot be read still says the submission needs review."""
    path = review_path(grading, assignment, student)
    if not path.is_file():
        return None
    try:
        reason = json.loads(path.read_text(encoding="utf-8")).get("reason")
    except (OSError, ValueError, AttributeError):
        reason = None
    return reason if isinstance(reason, str) and reason else "its review record is unreadable"


def reviewed_students(grading: Path, assignment: str) -> list[str]:
    folder = grading / "review" / assignment
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
