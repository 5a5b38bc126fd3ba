"""The answer runner of the autograder: a plain Python process (no IPython, no Jupyter) inside the grading sandbox.

Started once per submission by ``grader.harness`` as ``python -I runner.py``. It imports torch and numpy once and
then serves one request per graded check: it forks a fresh child, which runs the notebook's answer cells (the
student's own cells and the locked setup cells, never a test cell) in an empty namespace, then evaluates the
check's recipe (``grader_probe.RECIPES``) and sends the values back. Nothing a check's cells do (hooks, patched
modules, finalizers, threads, a crash, an endless loop) outlives its child, so it cannot reach another check.

Protocol on stdin/stdout, one frame per message (4-byte big-endian length, then UTF-8 JSON):
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
import struct
import sys
import time

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


def serve(request: dict) -> dict:
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
    return reply


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
    write_frame(proto_out, {"ready": True})
    while True:
        head = read_exact(proto_in, 4)
        if head is None:
            return 0
        body = read_exact(proto_in, struct.unpack(">I", head)[0])
        if body is None:
            return 0
        reply = serve(json.loads(body))
        try:
            write_frame(proto_out, reply)
        except Exception:  # noqa: BLE001 (NaN or an unserialisable value from the child)
            write_frame(proto_out, {"stopped": None, "why": "unreadable reply"})


if __name__ == "__main__":
    sys.exit(main())
