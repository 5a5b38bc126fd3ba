"""The answer runner of the autograder: a plain Python process (no IPython, no Jupyter) inside the grading sandbox.

Started by ``grader.harness`` as ``python -I runner.py`` and kept for several submissions of one problem set. It
imports torch and numpy once and never runs a submission's code itself: for each graded check it forks a fresh
child, which runs the notebook's answer cells (the student's own cells and the locked setup cells, never a test
cell) in an empty namespace, then evaluates the check's recipe (``grader_probe.RECIPES``) and sends the values
back. Nothing a check's cells do (hooks, patched modules, finalizers, threads, a crash, an endless loop, a process
it started) outlives the check: after each, every other process of the sandbox is killed (``kill(-1)``). Before
each submission the sandbox is made as it started (``clean``): its writable folders emptied, no process but this
one and the sandbox's init, no System V IPC object; where that cannot be shown, the runner says so and the
trusted side starts a fresh sandbox.

Protocol on stdin/stdout, one frame per message (4-byte big-endian length, then UTF-8 JSON):
  request  {"begin": student id}                                  a new submission, graded as this student
  reply    {"ready": true} | {"dirty": why}                       clean, or why it is not (then it is discarded)
  request  {"check": gid, "cells": [[name, source], ...], "timeout": seconds per cell}
  reply    {"values": {...}, "variant": id | null, "errors": {cell: why}}          the child's report
           {"stopped": cell, "why": "timeout" | "exit"}                             the child did not finish
The trusted side decides nothing from the child but the values, and validates them (``grader.harness``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import struct
import sys
import time
from pathlib import Path

RECIPE = "(evaluation)"  # the name of the last step, the recipe itself, in progress frames
MAX_REPLY = 4 << 20  # bytes a child may send; more is cut off and reported as unreadable
HERE = os.path.dirname(os.path.abspath(__file__))


def write_frame(fd: int, obj) -> None:
    data = json.dumps(obj, allow_nan=False).encode()
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _no_ptrace() -> None:
    """Make this process non-dumpable (inherited by forks): a child cannot ptrace it or open its /proc/<pid>/fd."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:  # noqa: BLE001 (a platform without prctl: the sandbox still isolates the process)
        pass


# ------------------------------------------------------------------------------------------ the child
def _magic_line(source: str, err: SyntaxError) -> str | None:
    lines = source.split("\n")
    if err.lineno and 0 < err.lineno <= len(lines):
        text = lines[err.lineno - 1].lstrip()
        if text[:1] in ("%", "!") or text.endswith("?"):
            return (f"line {err.lineno} is an IPython command ({text[:40]!r}); grading runs plain Python, where "
                    f"magics, shell commands (!...) and help (?) do not exist")
    return None


def _run_cells(cells, progress: int) -> tuple[dict, dict]:
    import builtins

    ns = {"__name__": "__main__", "__builtins__": builtins, "display": lambda *a, **k: None}
    errors = {}
    for name, source in cells:
        write_frame(progress, {"cell": name})
        try:
            code = compile(source, f"<cell {name}>", "exec")
        except SyntaxError as e:
            errors[name] = _magic_line(source, e) or f"SyntaxError: {e.msg} (line {e.lineno})"
            continue
        try:
            exec(code, ns)  # noqa: S102 (the student's cell, in the sandboxed child: what this process is for)
        except BaseException as e:  # noqa: BLE001 (SystemExit, KeyboardInterrupt included: the next cell runs)
            errors[name] = f"{type(e).__name__}: {str(e)[:200]}"
    return ns, errors


def child(request: dict, out: int) -> None:
    """Run the cells and the recipe, then send the reply on ``out``; everything else is /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, out)
    os.closerange(out + 1, 1 << 16)
    os.setpgid(0, 0)
    ns, errors = _run_cells(request["cells"], out)
    write_frame(out, {"cell": RECIPE})  # from here on the time is the check's, not the last cell's
    import grader_probe

    try:
        values = grader_probe.RECIPES[request["check"]](ns)
    except BaseException as e:  # noqa: BLE001
        values = {"_recipe": {"error": f"the answers could not be evaluated ({type(e).__name__})"}}
    write_frame(out, {"values": values, "variant": grader_probe.variant_id(ns), "errors": errors})


# ------------------------------------------------------------------------------------------ the zygote
def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass


def in_own_sandbox(argv) -> bool:
    """Whether this process may treat everything it can signal as the sandbox's: started with ``--sandboxed``
    and the first process of its own pid namespace under the sandbox's init. Outside a sandbox, ``kill(-1)`` would
    end every process of the user and ``clean`` would empty the user's folders."""
    return "--sandboxed" in argv and os.getpid() == 2 and os.getppid() == 1


def kill_others(sandboxed: bool) -> None:
    """Kill every process of the sandbox but this one and its init (whatever a check started, detached or not),
    then reap this process's children. Outside a sandbox only the reaping."""
    if sandboxed:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:  # nothing else to signal
            pass
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


def _remove(path: str, dev: int, keep: set[str]) -> None:
    """Remove ``path`` and what is under it on the filesystem ``dev``; the folders of ``keep`` (on the way to
    another writable folder mounted inside this one) are emptied but stay, other mounts are left alone."""
    st = os.lstat(path)
    if st.st_dev != dev:
        return
    if stat.S_ISDIR(st.st_mode):
        os.chmod(path, 0o700)  # a folder its maker made unreadable
        for name in os.listdir(path):
            _remove(os.path.join(path, name), dev, keep)
        if path not in keep:
            os.rmdir(path)
    else:
        os.unlink(path)


def clean(folders) -> str | None:
    """Make the sandbox as it started, or say why it is not: ``folders`` (the writable ones) emptied, no other
    process, no System V IPC object (they outlive their makers)."""
    kill_others(True)
    keep = {str(parent) for f in folders for parent in Path(f).parents}
    try:
        for top in folders:
            dev = os.lstat(top).st_dev
            for name in os.listdir(top):
                _remove(os.path.join(top, name), dev, keep)
    except (OSError, RecursionError) as e:
        return f"a writable folder could not be emptied ({type(e).__name__})"
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                left = f.read().splitlines()[1:]
        except OSError:
            continue
        if left:
            return f"System V IPC objects ({kind}) are left"
    for _ in range(100):  # a killed process is gone once the kernel has run its exit and init has reaped it
        others = _others()
        if not others:
            return None
        kill_others(True)
        time.sleep(0.02)
    return f"{len(others)} other processes are left"


def _others() -> list[str]:
    """The sandbox's processes but this one and its init, zombies (which run nothing) left out."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) not in (1, os.getpid()):
            try:
                with open(f"/proc/{p}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):  # ended meanwhile
                continue
            if state not in ("Z", "X"):
                out.append(p)
    return out


def serve(request: dict, sandboxed: bool) -> dict:
    """Fork a child for one check, follow its progress, stop it at the per-cell time limit."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            child(request, w)
        finally:
            os._exit(0)
    os.close(w)
    limit = float(request.get("timeout", 30))
    cell, reply, buf = None, None, b""
    deadline = time.monotonic() + limit
    hard = deadline + limit * len(request.get("cells", ()))  # progress frames cannot keep a child alive for ever
    while reply is None:
        left = min(deadline, hard) - time.monotonic()
        if left <= 0 or not select.select([r], [], [], left)[0]:
            _kill(pid)
            reply = {"stopped": cell, "why": "timeout"}
            break
        chunk = os.read(r, 65536)
        if not chunk:
            reply = {"stopped": cell, "why": "exit"}
            break
        buf += chunk
        while len(buf) >= 4 and reply is None:
            n = struct.unpack(">I", buf[:4])[0]
            if n > MAX_REPLY:
                reply = {"stopped": cell, "why": "too much output"}
            elif len(buf) >= 4 + n:
                try:
                    msg = json.loads(buf[4:4 + n])
                except Exception:  # noqa: BLE001 (garbage, or nesting too deep to parse)
                    msg = None
                buf = buf[4 + n:]
                if isinstance(msg, dict) and set(msg) == {"cell"}:
                    cell, deadline = msg["cell"], time.monotonic() + limit
                else:
                    reply = msg if isinstance(msg, dict) else {"stopped": cell, "why": "unreadable reply"}
            else:
                break
    _kill(pid)
    os.close(r)
    os.waitpid(pid, 0)
    kill_others(sandboxed)
    return reply


def begin(student, sandboxed: bool, folders) -> dict:
    """A new submission: the sandbox made clean and the id graded set for the children (``SIMCLR_STUDENT_ID``,
    which a notebook whose STUDENT_ID is left empty takes its numbers from). Outside a sandbox nothing can be
    made clean: the trusted side starts a runner per submission there."""
    if not isinstance(student, str):
        return {"dirty": "no student id"}
    why = clean(folders) if sandboxed else None
    if why:
        return {"dirty": why}
    if student:
        os.environ["SIMCLR_STUDENT_ID"] = student
    else:
        os.environ.pop("SIMCLR_STUDENT_ID", None)
    return {"ready": True}


def main() -> int:
    sys.path.insert(0, os.path.dirname(HERE))  # /opt/simclr-grading: grader_probe and the grading copy of simclr_core
    import numpy  # noqa: F401 (imported once here, shared by every forked child)
    import torch  # noqa: F401

    import grader_probe  # noqa: F401

    _no_ptrace()
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    sandboxed = in_own_sandbox(sys.argv[1:])
    folders = [f for f in (os.getcwd(), "/tmp", "/dev/shm") if os.path.isdir(f) and not os.path.islink(f)]
    write_frame(proto_out, {"ready": True, "sandboxed": sandboxed})
    while True:
        head = read_exact(proto_in, 4)
        if head is None:
            return 0
        body = read_exact(proto_in, struct.unpack(">I", head)[0])
        if body is None:
            return 0
        request = json.loads(body)
        reply = begin(request["begin"], sandboxed, folders) if "begin" in request else serve(request, sandboxed)
        try:
            write_frame(proto_out, reply)
        except Exception:  # noqa: BLE001 (NaN or an unserialisable value from the child)
            write_frame(proto_out, {"stopped": None, "why": "unreadable reply"})


if __name__ == "__main__":
    sys.exit(main())
