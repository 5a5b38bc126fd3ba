"""Atomic checkpoints and strict resume.

A checkpoint is written to a temporary file in the same folder, flushed and fsync'ed, then moved over
the previous one with ``os.replace`` (atomic on POSIX), and the folder is fsync'ed: a crash at any
moment leaves either the old complete checkpoint or the new complete one, never half a file.

Loading never silently restarts: an unreadable file, a file that is not a checkpoint of this format,
or one written by a run with a different configuration raises ``CheckpointError`` naming the file
and what is wrong.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "check_fingerprint", "rng_state", "set_rng_state", "FORMAT"]

FORMAT = "simclr-workbook/checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used to resume (unreadable, wrong format, or a different run)."""


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def load_checkpoint(path, expect_fingerprint: dict | None = None, map_location="cpu") -> dict:
    """Read a checkpoint; if ``expect_fingerprint`` is given, the stored run config must match it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200]}); it may be "
            f"truncated or not a checkpoint. Delete it to start over, or choose another output folder."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path} is not a SimCLR workbook checkpoint (format {got!r}, expected {FORMAT!r})")
    for key in ("model", "optimizer", "epoch", "config"):
        if key not in state:
            raise CheckpointError(f"checkpoint {path} lacks the entry {key!r}; it was not written by this trainer")
    if expect_fingerprint is not None:
        check_fingerprint(path, state, expect_fingerprint)
    return state


def check_fingerprint(path, state: dict, expect_fingerprint: dict) -> None:
    """Raise CheckpointError, naming every differing field, unless ``state`` (read from ``path``) was written by a
    run with the configuration ``expect_fingerprint``."""
    stored = dict(state["config"])
    diffs = [
        f"{k}: {stored.get(k)!r} in the checkpoint vs {v!r} now"
        for k, v in expect_fingerprint.items() if _norm(stored.get(k)) != _norm(v)
    ]
    diffs += [f"{k}: {stored[k]!r} in the checkpoint, absent now" for k in stored if k not in expect_fingerprint]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with a different configuration, so it cannot be resumed:\n  "
            + "\n  ".join(diffs) + "\nUse the same settings, or another output folder for a new run."
        )


def _norm(v):
    """Compare configs as JSON would see them (tuples and lists alike)."""
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def rng_state() -> dict:
    """The global RNG states (python, numpy, torch CPU, and CUDA when present) in a weights_only-safe form."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuplify(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(v):
    return tuple(_tuplify(x) for x in v) if isinstance(v, (list, tuple)) else v
