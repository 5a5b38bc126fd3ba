"""What the autograding preprocessors record in an autograded notebook's metadata under ``STATUS_KEY``, read back.

The preprocessors (``grader.preprocessors``) record the cell in which the kernel died, cells stopped at the time limit,
locked cells that were edited or deleted (and restored), forbidden calls, limits of the sandbox reached and the checks'
verdicts. A submission's own ``STATUS_KEY`` is stripped before grading (``grader.guards``), and every value is
type-checked here when read (``clean_meta``), so nothing a student writes becomes a status. ``notes`` words the record
for people; ``grader.status`` turns it into each submission's status.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from .guards import STATUS_KEY
from .limits import DEFAULT, size_text
from .verdict import read_records

__all__ = ["LIMIT_TEXT", "clean_meta", "notes", "read_meta"]

LIMIT_TEXT = {"memory": f"used more than {size_text(DEFAULT.memory_bytes)} of memory",
              "disk": f"wrote more than {size_text(DEFAULT.disk_bytes)} to disk",
              "processes": f"started more than {DEFAULT.processes} processes"}


def _cells(names) -> str:
    names = list(names)
    return ("cell " if len(names) == 1 else "cells ") + ", ".join(str(n) for n in names)


def _names(value, limit: int = 50) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [v[:100] for v in value[:limit]]
    return None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def clean_meta(meta) -> dict:
    """The ``STATUS_KEY`` values of the autograding preprocessors, each of the type they write; any other value is
    left out (a malformed record never becomes a status nor raises)."""
    if not isinstance(meta, dict):
        return {}
    out = {}
    if isinstance(meta.get("kernel_died_in"), str) and meta["kernel_died_in"]:
        out["kernel_died_in"] = meta["kernel_died_in"][:100]
    if isinstance(meta.get("student_id_typed"), str):
        out["student_id_typed"] = meta["student_id_typed"][:100]
    for key in ("timed_out", "edited_tests", "missing_tests", "forbidden"):
        if _names(meta.get(key)):
            out[key] = _names(meta[key])
    others = meta.get("answers_for_other_students")
    if isinstance(others, dict):
        kept = {k[:100]: _names(v) for k, v in list(others.items())[:50] if isinstance(k, str) and _names(v)}
        if kept:
            out["answers_for_other_students"] = kept
    late = meta.get("notebook_time_limit")
    if isinstance(late, dict) and _count(late.get("seconds")) is not None and _names(late.get("not_run")):
        out["notebook_time_limit"] = {"seconds": late["seconds"], "not_run": _names(late["not_run"])}
    dropped = meta.get("output_dropped")
    if isinstance(dropped, dict) and _count(dropped.get("kept")) is not None and _count(dropped.get("dropped")):
        out["output_dropped"] = {"kept": dropped["kept"], "dropped": dropped["dropped"]}
    hits = meta.get("limits")
    if isinstance(hits, dict):
        kept = {k: _names(v) for k, v in hits.items() if k in LIMIT_TEXT and _names(v)}
        if kept:
            out["limits"] = kept
    verdicts = read_records(meta.get("verdicts"))
    if verdicts:
        out["verdicts"] = verdicts
    return out


def notes(meta: dict) -> list[str]:
    """Readable notes from one autograded notebook's ``STATUS_KEY`` metadata (the kernel's death excepted)."""
    meta = clean_meta(meta)
    out = []
    for kind, cells in meta.get("limits", {}).items():
        out.append(f"stopped: {LIMIT_TEXT[kind]} in {_cells(cells)}")
    if meta.get("notebook_time_limit"):
        late = meta["notebook_time_limit"]
        out.append(f"stopped: the notebook ran past {late['seconds']} s; {_cells(late['not_run'])} not run")
    if meta.get("output_dropped"):
        out.append(f"output beyond {size_text(meta['output_dropped']['kept'])} dropped")
    if meta.get("timed_out"):
        out.append(f"{_cells(meta['timed_out'])} stopped at the time limit")
    if meta.get("edited_tests"):
        out.append(f"locked {_cells(meta['edited_tests'])} edited; the original restored")
    if meta.get("missing_tests"):
        out.append(f"test {_cells(meta['missing_tests'])} deleted; the original restored")
    if meta.get("forbidden"):
        out.append(f"forbidden call in {_cells(meta['forbidden'])}")
    for gid, whose in meta.get("answers_for_other_students", {}).items():
        out.append(f"{gid} holds the answer for the numbers of {', '.join(whose)}")
    if meta.get("student_id_typed"):
        out.append(f"STUDENT_ID typed: {meta['student_id_typed']!r}")
    return out


def read_meta(path: Path) -> dict | None:
    """The cleaned ``STATUS_KEY`` record of the autograded notebook at ``path``; None when it is missing or unreadable
    (a failed autograde)."""
    if not path.exists():
        return None
    try:
        return clean_meta(nbformat.read(path, as_version=4).metadata.get(STATUS_KEY, {}))
    except Exception:  # noqa: BLE001 (an unreadable autograded notebook is a failed autograde)
        return None
