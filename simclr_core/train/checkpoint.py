"""Atomic checkpoints and strict resume.

A checkpoint is written to a temporary file in the same folder, flushed and fsync'ed, then moved over
the previous one with ``os.replace`` (atomic on POSIX), and the folder is fsync'ed: a crash at any
moment leaves either the old complete checkpoint or the new complete one, never half a file (and the next run
removes the temporary file such a crash leaves, ``runfolder.remove_stale_temp_files``). The file ends with a SHA-256 of its contents, checked on load.

Loading never silently restarts: an unreadable file, a file that is not a checkpoint of this format,
or one written by a run with a different configuration raises ``CheckpointError`` naming the file
and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import numpy as np
import torch

from .runfolder import write_bytes_atomic

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "check_fingerprint", "rng_state", "set_rng_state",
           "FORMAT"]

FORMAT = "simclr-workbook/checkpoint-v2"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used to resume (unreadable, wrong format, or a different run)."""


_TRAILER = b"SIMCLR-SHA256:"  # the file ends with this tag and the SHA-256 of everything before it


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` (plus the format tag and a SHA-256 checksum) to ``path`` atomically; a symbolic link at
    ``path`` is refused (``runfolder.write_bytes_atomic``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    payload = buf.getvalue()
    return write_bytes_atomic(path, payload + _TRAILER + hashlib.sha256(payload).digest())


def load_checkpoint(path, expect_fingerprint: dict | None = None, map_location="cpu") -> dict:
    """Read a checkpoint (its checksum verified); if ``expect_fingerprint`` is given, the stored run must match."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    n = len(_TRAILER) + 32
    if len(data) < n or data[-n:-32] != _TRAILER:
        raise CheckpointError(f"checkpoint {path} is not a complete SimCLR workbook checkpoint ({len(data)} bytes, no "
                              f"checksum at its end): it is truncated, empty or from elsewhere. Delete it to start over, "
                              f"or choose another output folder.")
    payload = data[:-n]
    if hashlib.sha256(payload).digest() != data[-32:]:
        raise CheckpointError(f"checkpoint {path} is corrupted: its SHA-256 checksum does not match its contents. "
                              f"Delete it to start over, or choose another output folder.")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:
        first = (str(err).splitlines() or [""])[0][:200]
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}: {first}). Delete it to start "
                              f"over, or choose another output folder.") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path} is not a SimCLR workbook checkpoint (format {got!r}, expected {FORMAT!r})")
    for key in ("model", "optimizer", "epoch", "config", "history", "rng"):
        if key not in state:
            raise CheckpointError(f"checkpoint {path} lacks the entry {key!r}; it was not written by this trainer")
    bad = [k for k, v in state["model"].items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights (NaN or inf) in {bad[:3]}: the run diverged "
                              f"before it was saved; start a new run (lower the learning rate)")
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
