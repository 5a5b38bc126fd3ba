"""What was graded, by content: ``make grade`` grades again only a submission whose files, or whose problem set's
source, changed since it was last graded whole (``--force``: every one).

The record of a problem set is ``grading/graded/<assignment>.json``: student -> the SHA-256 of the submitted
folder (every regular file's path and bytes, in path order) and of the problem set's source folder, as they were
when that submission was last graded. A folder's modification times say nothing here (a copy, an unzip or a
``touch`` changes them, not the answers); the record is written by the grading driver alone, atomically, after
each submission, so an interrupted run keeps what it finished. A record that cannot be read counts as empty:
everything is graded again, nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

from .guards import write_atomic

HEX = re.compile(r"^[0-9a-f]{64}$")


def folder_hash(folder: Path) -> str:
    """SHA-256 of the regular files under ``folder`` (relative paths and contents, in sorted path order); a link
    or special file is named, not followed (intake refuses those before a submission is graded)."""
    h = hashlib.sha256()
    entries = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        entries += [Path(dirpath, f) for f in filenames]
    for path in sorted(entries, key=lambda p: p.relative_to(folder).as_posix()):
        rel = path.relative_to(folder).as_posix()
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            h.update(f"{rel}\0special {mode:o}\0".encode())
            continue
        h.update(f"{rel}\0{os.path.getsize(path)}\0".encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _path(grading: Path, assignment: str) -> Path:
    return grading / "graded" / f"{assignment}.json"


def read(grading: Path, assignment: str) -> dict[str, dict[str, str]]:
    """student -> {"submission": sha, "source": sha}; malformed entries are left out."""
    try:
        data = json.loads(_path(grading, assignment).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {s: {k: e[k] for k in ("submission", "source")} for s, e in data.items()
            if isinstance(s, str) and isinstance(e, dict)
            and all(isinstance(e.get(k), str) and HEX.match(e[k]) for k in ("submission", "source"))}


def write(grading: Path, assignment: str, record: dict[str, dict[str, str]]) -> None:
    """Replace the record of ``assignment`` whole (``grader.guards.write_atomic``)."""
    write_atomic(_path(grading, assignment), json.dumps(dict(sorted(record.items())), indent=1))
