"""Run folders as files from others: read JSON defensively, write without following links, one writer at a time.

A run folder may have come from someone else (a shared run, an unpacked archive), and ``--out`` may point at a
folder of the user's own. So:

- ``read_json``: a size cap, and any malformed file (bad syntax, 200,000 nested lists, not an object) is one
  ``RunFolderError`` naming the file, never a traceback;
- ``write_text_atomic``: a new temporary file (``O_EXCL``, never an existing name) in the same folder, fsync'ed and
  renamed over the target; a target that is a symbolic link or not a regular file is refused, naming it, so nothing
  is ever written through a link planted in a received run;
- ``RunLock``: an ``flock`` on ``.simclr-run.lock`` held while a process writes the run; a second process gets an
  error naming the holder's pid, host, start time and command. The lock file also marks the folder as a run of this
  library: ``claim_folder`` refuses a non-empty folder without it (the user's files) unless ``force``, and even then
  refuses to overwrite any file a run writes;
- ``remove_stale_temp_files``: deletes only regular files whose names this module gives its temporary files, and
  only in a folder that is a run.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import socket
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["RunFolderError", "read_json", "read_json_object", "write_bytes_atomic", "write_text_atomic", "temp_file",
           "fsync_folder", "refuse_links", "RunLock", "claim_folder", "open_run_folder", "is_run_folder", "remove_stale_temp_files", "LOCK",
           "RUN_FILES", "CONFIG", "METRICS", "CHECKPOINT", "PROBE", "MAX_JSON_BYTES"]

LOCK = ".simclr-run.lock"
CONFIG, METRICS, CHECKPOINT, PROBE = "config.json", "metrics.jsonl", "checkpoint.pt", "probe.json"
RUN_FILES = (CONFIG, METRICS, CHECKPOINT, PROBE)  # what a run writes besides LOCK
MAX_JSON_BYTES = 64 * 1024 * 1024  # a run's metrics.jsonl of 100,000 epochs is ~30 MB; configs are a few kB
_TEMP_PREFIX = ".simclr-tmp."
_TEMP_RE = re.compile(r"\.simclr-tmp\.[A-Za-z0-9_.-]+\.[A-Za-z0-9_]{8}")  # _TEMP_PREFIX + target name + mkstemp's 8


class RunFolderError(ValueError):
    """A run folder (or model folder) cannot be read or written safely; the message names the file."""


def read_json(path, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES):
    """The JSON value in ``path``; ``RunFolderError`` naming the file for anything unreadable or malformed."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise RunFolderError(f"{path} is {size / 2**20:.1f} MiB, more than a {what} can be "
                                 f"({max_bytes / 2**20:.0f} MiB): not read")
        text = path.read_text(encoding="utf-8")
        return json.loads(text)
    except RecursionError:
        raise RunFolderError(f"{path} is not a valid {what}: its JSON is nested too deeply") from None
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path} is not a valid {what}: {err}") from None
    except UnicodeDecodeError as err:
        raise RunFolderError(f"{path} is not a valid {what}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_json_object(path, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> dict:
    """``read_json`` that must give a JSON object (a dict)."""
    value = read_json(path, what, max_bytes)
    if not isinstance(value, dict):
        raise RunFolderError(f"{path} is not a valid {what}: it holds a JSON {type(value).__name__}, not an object")
    return value


def _refuse_link(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise RunFolderError(f"{path} is a symbolic link (to {os.readlink(path)}): refusing to write through it; "
                             f"remove the link (a run folder holds only regular files)")
    if not stat.S_ISREG(st.st_mode):
        raise RunFolderError(f"{path} is not a regular file: refusing to replace it")


def refuse_links(folder, names=RUN_FILES + (LOCK,)) -> None:
    """``RunFolderError`` if any of ``names`` in ``folder`` is a symbolic link or not a regular file."""
    for name in names:
        _refuse_link(Path(folder) / name)


def temp_file(target: Path) -> tuple[int, str]:
    """(fd, path) of a new temporary file next to ``target`` (created with O_EXCL: never an existing file)."""
    return tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{target.name}.", suffix="", dir=target.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (best effort: some filesystems refuse fsync on folders)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename; a link or special file there is refused."""
    path = Path(path)
    _refuse_link(path)
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _refuse_link(path)  # a link planted while we wrote is refused too (the rename itself never follows one)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)
    return path


def write_text_atomic(path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def remove_stale_temp_files(folder) -> list[Path]:
    """Delete the temporary files a killed process left in the run folder ``folder`` (only this module's names,
    only regular files, only in a folder that is a run)."""
    folder = Path(folder)
    if not is_run_folder(folder):
        return []
    removed = []
    for p in folder.iterdir():
        if _TEMP_RE.fullmatch(p.name) and stat.S_ISREG(os.lstat(p).st_mode):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def _legacy_run(folder: Path) -> bool:
    """A run folder written before runs carried the lock file: a config.json with a recipe and run options."""
    cfg = folder / "config.json"
    if not cfg.is_file() or cfg.is_symlink():
        return False
    try:
        value = read_json(cfg, "run config", 1024 * 1024)
    except RunFolderError:
        return False
    return isinstance(value, dict) and {"recipe", "options"} <= set(value)


def is_run_folder(folder) -> bool:
    """True when ``folder`` is a run of this library (it holds the run lock file, or an older run's config.json)."""
    folder = Path(folder)
    lock = folder / LOCK
    return (lock.is_file() and not lock.is_symlink()) or _legacy_run(folder)


def claim_folder(folder, force: bool = False, own=RUN_FILES, is_ours=None) -> Path:
    """Create ``folder`` or check that it may be written: an empty folder or one this library wrote (``is_ours``,
    by default ``is_run_folder``). A non-empty folder of other files is refused unless ``force``; even then none of
    the files to be written (``own``) may be there already, since writing would replace them."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"out {str(folder)!r} is a file, not a folder: choose a folder for the run")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"out {str(folder)!r} is not a writable folder ({err.strerror or err})") from None
    if (is_ours or is_run_folder)(folder):
        return folder
    others = sorted(p.name for p in folder.iterdir() if not _TEMP_RE.fullmatch(p.name))
    if others and not force:
        raise RunFolderError(f"out {str(folder)!r} is a folder of other files ({', '.join(others[:5])}"
                             f"{', ...' if len(others) > 5 else ''}), not one this library wrote: choose a new or empty "
                             f"folder, or pass --force (force=True) to add the run's files next to them")
    clash = [name for name in own if os.path.lexists(folder / name)]
    if clash:
        raise RunFolderError(f"out {str(folder)!r} already holds {', '.join(clash)}, which are not this library's: "
                             f"a run would overwrite them, even with --force; choose another folder")
    return folder


class RunLock:
    """An exclusive lock on a run folder (``flock`` on ``.simclr-run.lock``), held until ``release``.

    The lock file records who holds it (pid, host, start time, command) for the error the next process gets.
    The kernel releases the lock when the holder dies, so a killed run never leaves its folder locked."""

    def __init__(self, folder, purpose: str = "training"):
        self.path = Path(folder) / LOCK
        _refuse_link(self.path)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            self.fd = os.open(self.path, flags, 0o644)
        except OSError as err:
            raise RunFolderError(f"cannot open the run lock {self.path} ({err.strerror or err}): is the folder "
                                 f"writable?") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._holder()
            os.close(self.fd)
            raise RunFolderError(f"{self.path.parent} is in use by another process ({holder}): two processes must not "
                                 f"write one run; wait for it to finish, or choose another --out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)[:300]}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (json.dumps(info) + "\n").encode(), 0)

    def _holder(self) -> str:
        try:
            info = json.loads(os.pread(self.fd, 4096, 0).decode() or "{}")
            return (f"pid {info['pid']} on {info['host']}, {info.get('purpose', '')} since {info['started']}: "
                    f"{info.get('command', '')}")
        except (ValueError, KeyError, TypeError, OSError):
            return "its pid is not recorded yet"

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def open_run_folder(out, resume: bool, force: bool, checkpoint: str = CHECKPOINT) -> tuple[Path, RunLock]:
    """The run folder ``out`` claimed (``claim_folder``) and locked (``RunLock``) for a run; its checkpoint must agree
    with ``resume`` (one to continue, or none to start). The caller releases the lock when the run ends."""
    run_dir = Path(out).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"out {str(run_dir)!r} is a file, not a folder: choose a folder for the run")
    if resume and not (run_dir / checkpoint).exists():
        raise RunFolderError(f"resume=True (CLI: --resume) but {run_dir} holds no {checkpoint}: to start a fresh run "
                             f"there, drop --resume")
    claim_folder(run_dir, force)
    try:
        lock = RunLock(run_dir, "resuming" if resume else "training")
    except RunFolderError:
        if not os.access(run_dir, os.W_OK):
            raise RunFolderError(f"out {str(run_dir)!r} is not a writable folder") from None
        raise
    try:
        refuse_links(run_dir)
        if (run_dir / checkpoint).exists() and not resume:
            raise RunFolderError(f"{run_dir / checkpoint} already exists: pass resume=True (CLI: --resume) to "
                                 f"continue that run, or choose another output folder")
        remove_stale_temp_files(run_dir)
    except BaseException:
        lock.release()
        raise
    return run_dir, lock
