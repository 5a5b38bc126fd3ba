"""Guards of the grading pipeline against what a submission carries (configured in ``nbgrader_config.py``).

* ``StripGradingMetadata`` (first sanitize preprocessor of autograding): the grading status a notebook carries
  under ``STATUS_KEY`` is removed, so only the trusted side writes it (``grader.status`` reads it back).
* ``RefuseUnsafeFiles`` (first preprocessor of autograding and of feedback): nbgrader copies the files next to a
  notebook with ``shutil.copy``, which follows links; a folder holding a link or a special file is refused, and
  any copy already made of such a file is removed, so no link is ever followed into ``grading/``.
* ``OutputBudget`` and ``limit_hits``: ``SandboxedExecute`` (``grader.preprocessors``) keeps only so many bytes of
  output per notebook and names the cells that ran into a limit of the sandbox (``grader.limits``).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from nbformat.notebooknode import from_dict
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor

from .limits import DEFAULT, size_text

STATUS_KEY = "simclr_grading"
# errno of an error the sandbox's limits cause: no memory (12), no space on its tmpfs (28), file too large (27), no
# more processes (11); Python writes them "[Errno N] ...", PyTorch's allocator "... Error code N (...)"
LIMIT_ERRNOS = {"12": "memory", "28": "disk", "27": "disk", "11": "processes"}
TORCH_ERRNO = "Error code "
OS_ERRORS = ("OSError", "BlockingIOError", "PermissionError")


class StripGradingMetadata(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        nb.metadata.pop(STATUS_KEY, None)
        for cell in nb.cells:
            cell.metadata.pop(STATUS_KEY, None)
        return nb, resources


def unsafe_entries(folder: Path) -> list[str]:
    """Paths (relative to ``folder``) of everything in it that is neither a regular file nor a folder; links are
    never followed."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in [*dirnames, *filenames]:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                bad.append(os.path.relpath(os.path.join(dirpath, name), folder))
    return sorted(bad)


class RefuseUnsafeFiles(NbGraderPreprocessor):
    """Refuse a notebook whose submitted or autograded folder holds a link or a special file, and remove what
    nbgrader already copied of it into the autograded or feedback folder."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        student, assignment = info.get("student"), info.get("assignment")
        if not student or not assignment:
            return nb, resources
        coursedir = CourseDirectory(config=self.config)
        folder = {d: Path(coursedir.format_path(getattr(coursedir, f"{d}_directory"), student, assignment))
                  for d in ("submitted", "autograded", "feedback")}
        bad = {(src, rel) for src in ("submitted", "autograded") if folder[src].is_dir()
               for rel in unsafe_entries(folder[src])}
        if not bad:
            return nb, resources
        for src, rel in bad:
            for dest in ("autograded", "feedback"):
                copied = folder[dest] / rel
                if dest != src and copied.exists() and stat.S_ISREG(os.lstat(copied).st_mode):
                    copied.unlink()
        names = ", ".join(sorted({rel for _, rel in bad}))
        raise ValueError(f"refused: {names} in {student}'s {assignment} is a link or a special file, not a regular "
                         "file (needs review)")


def _size(content) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, dict):
        return sum(_size(v) for v in content.values())
    if isinstance(content, list):
        return sum(_size(v) for v in content)
    return 8


class OutputBudget:
    """Bytes of output a notebook may still store; past it outputs are dropped and one note says so."""

    def __init__(self, limit: int = DEFAULT.output_bytes):
        self.limit, self.used, self.dropped = limit, 0, 0

    def admit(self, msg: dict, outs: list) -> bool:
        n = _size(msg.get("content", {}))
        if self.used + n <= self.limit:
            self.used += n
            return True
        if not self.dropped:
            outs.append(from_dict({"output_type": "stream", "name": "stderr",
                                   "text": f"\n[output beyond {size_text(self.limit)} dropped]\n"}))
        self.dropped += n
        return False


def limit_hits(nb, gid) -> dict[str, list[str]]:
    """limit name ("memory", "disk", "processes") -> the cells whose errors say the sandbox's limit stopped them."""
    hits: dict[str, list[str]] = {}
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            ename, evalue = str(out.get("ename", "")), str(out.get("evalue", ""))
            kind = "memory" if ename in ("MemoryError", "OutOfMemoryError") else None
            if kind is None and ename in OS_ERRORS and evalue.startswith("[Errno "):
                kind = LIMIT_ERRNOS.get(evalue[7:].split("]")[0])
            if kind is None and ename == "RuntimeError" and TORCH_ERRNO in evalue:
                kind = LIMIT_ERRNOS.get(evalue.split(TORCH_ERRNO)[-1].split(" ")[0].rstrip("."))
            if kind:
                hits.setdefault(kind, []).append(gid(cell) or f"#{k + 1}")
                break
    return hits


def write_atomic(path: Path, content: str) -> Path:
    """Replace ``path`` whole: a temporary file in the same folder, then a rename (a reader never sees half a
    file, an interrupted write leaves the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, 0o644)  # readable like the course's other files, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
