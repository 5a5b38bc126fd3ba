"""Obtain a submission's values outside its notebook kernel: its answer cells, run again in a plain Python process.

For each graded check the trusted side sends the notebook's answer cells to ``grader_probe.runner`` (a process in
a bubblewrap sandbox of ``grader.sandbox``, kept for several submissions by ``Runners``), which forks a fresh
child per check, runs the cells and evaluates the check's recipe. Only the JSON values come back, size-capped and
validated here; what the nbgrader kernel displayed is never read. The cells run are the student's own code cells
(answers and any cell she added) and the locked setup cells as the gradebook holds them; test cells never run
there.

While the cells run, ``simclr_core`` is a grading copy (``grading_library``): the student's numbers
(``teaching.variants``), the worked example's numbers (``teaching.sheet``) and, only where a problem set's own
questions call it, the NT-Xent loss. The functions a problem set asks the student to write are not importable.
"""

from __future__ import annotations

import ast
import atexit
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .limits import DEFAULT

REPO = Path(__file__).resolve().parent.parent
MOUNT = "/opt/simclr-grading"  # where the sandbox sees grader_probe and the grading copy of simclr_core
MAX_FRAME = 4 << 20
RECIPE = "(evaluation)"  # grader_probe.runner's name for the step after the cells
# problem set -> simclr_core modules its questions use besides the numbers (ps3 asks to call nt_xent and backward);
# the modules they import from simclr_core come with them
LIBRARY = {"ps3_batch_size": ("nn/loss.py",)}
NUMBERS = ("__init__.py", "teaching/__init__.py", "teaching/variants.py")
# a runner serves at most RECYCLE submissions and takes none after MAX_AGE seconds: it imports torch once for them
# (about 2 s of CPU per submission saved), and the sandbox's process allowance, counted when it started, stays near
# what the machine runs now
RECYCLE = 25
MAX_AGE = 1200.0


@dataclass
class CheckRun:
    """What the runner gave for one check: its values (None when it gave none) and what went wrong on the way."""
    values: dict | None = None
    variant: str | None = None
    cell_errors: dict[str, str] = field(default_factory=dict)  # cell name -> the error it raised
    problem: str | None = None  # why there are no values


def _sheet_module() -> str:
    """teaching/sheet.py of the grading copy: the worked example's numbers as literals, without nn.loss."""
    from simclr_core.teaching import sheet

    rows = ", ".join("[" + ", ".join("nan" if x != x else repr(float(x)) for x in row) + "]"
                     for row in sheet.SEED_S.tolist())
    return ('"""The worked example\'s numbers (grading copy of simclr_core.teaching.sheet)."""\n\nimport math\n\n'
            "import torch\n\nnan = math.nan\n"
            f"SEED_TAU = {float(sheet.SEED_TAU)!r}\n"
            f"SEED_S = torch.tensor([{rows}], dtype=torch.float64)  # (6, 6)\n"
            f"SEED_POSITIVES = torch.tensor({sheet.SEED_POSITIVES.tolist()!r})\n")


def _with_imports(files, src: Path) -> set[str]:
    """``files`` (paths relative to ``src``, the simclr_core folder) and every simclr_core module they import,
    recursively, with the packages' ``__init__.py`` on the way."""
    todo, done = list(files), set()
    while todo:
        rel = todo.pop()
        if rel in done or not (src / rel).is_file():
            continue
        done.add(rel)
        parts = Path(rel).parts[:-1]
        todo += ["/".join(parts[:k] + ("__init__.py",)) for k in range(len(parts) + 1)]
        for node in ast.walk(ast.parse((src / rel).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = parts[:len(parts) - node.level + 1]
                mod = base + tuple((node.module or "").split(".")) if node.module else base
                todo += ["/".join(mod) + ".py", "/".join(mod + ("__init__.py",))]
                todo += ["/".join(mod + (a.name + ".py",)) for a in node.names]
    return done


def grading_library(assignment: str, dst: Path) -> Path:
    """Write the sandbox's folder ``dst``: grader_probe and the grading copy of simclr_core for ``assignment``."""
    src = REPO / "simclr_core"
    for rel in sorted(_with_imports(NUMBERS + LIBRARY.get(assignment, ()), src)):
        (dst / "simclr_core" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst / "simclr_core" / rel)
    (dst / "simclr_core" / "teaching" / "sheet.py").write_text(_sheet_module(), encoding="utf-8")
    shutil.copytree(REPO / "grader_probe", dst / "grader_probe", ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def answer_cells(nb, locked_source) -> list[tuple[str, str]]:
    """(name, source) of the code cells to run, in notebook order. ``locked_source(gid)`` gives the gradebook's
    (kind, source) of a cell, kind "grade" | "solution" | "locked", or None for a cell the gradebook lacks."""
    out = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        known = locked_source(gid) if isinstance(gid, str) else None
        name = gid if known else f"#{k + 1}"
        if known is None or known[0] == "solution":
            out.append((name, str(cell.source)))  # her answer, or a cell she added
        elif known[0] == "locked":
            out.append((name, known[1]))  # the setup as released, whatever the submission holds
    return out


def _frame(obj) -> bytes:
    data = json.dumps(obj).encode()
    return struct.pack(">I", len(data)) + data


class Runner:
    """One runner process (``grader_probe.runner``) in its own sandbox, for one problem set: ``begin(student)``
    starts a submission (the sandbox made clean, the id set), then ``check(gid, cells, skipped)`` per graded cell.
    ``Runner(assignment, student, ...)`` begins that student's submission at once; ``with`` closes it."""

    def __init__(self, assignment: str, student: str | None, cell_timeout: float, sandbox: bool = True):
        self.cell_timeout = float(cell_timeout)
        self.submissions, self.usable, self._deadline = 0, True, _now()
        self._tmp = Path(tempfile.mkdtemp(prefix="simclr-grading-run-"))
        opt = grading_library(assignment, self._tmp / "opt")
        work = self._tmp / "work"
        work.mkdir()
        if sandbox:
            from . import sandbox as sb

            argv = sb.run_argv([], work, {}, seconds=int(MAX_AGE + DEFAULT.run_seconds + 60))
            argv += ["--ro-bind", str(opt), MOUNT, sys.executable, "-I", f"{MOUNT}/grader_probe/runner.py",
                     "--sandboxed"]  # the grading copy mounted over the sandbox's own /opt/simclr-grading
        else:  # debugging only: no sandbox, the grading copy from its temporary folder, one runner per submission
            argv = [sys.executable, "-I", str(opt / "grader_probe" / "runner.py")]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      cwd=work, env={k: v for k, v in os.environ.items()
                                                     if k in ("PATH", "LANG", "OMP_NUM_THREADS")})
        self._started, self._buf = _now(), b""
        hello = self._read(120.0)
        if not isinstance(hello, dict) or hello.get("ready") is not True:
            self.close()
            raise RuntimeError(f"the grading runner did not start: {hello!r}")
        self.sandboxed = hello.get("sandboxed") is True
        if student is not None and not self.begin(student):
            self.close()
            raise RuntimeError("the grading runner's fresh sandbox is not clean")

    def begin(self, student: str) -> bool:
        """Start grading ``student``'s submission: False (and the runner unusable) when the runner could not show
        its sandbox clean of the last submission, or has stopped answering."""
        if not self.usable or (self.submissions and not self.sandboxed):
            self.usable = False
            return False
        if self._send({"begin": str(student)}) and self._read(30.0) == {"ready": True}:
            self.submissions += 1
            self._deadline = _now() + DEFAULT.run_seconds  # a submission's checks, all together
            return True
        self.usable = False
        return False

    def reusable(self) -> bool:
        """Whether the next submission may use this runner: still answering, in its own sandbox, and neither
        ``RECYCLE`` submissions nor ``MAX_AGE`` seconds old."""
        return self.usable and self.sandboxed and self.submissions < RECYCLE and _now() - self._started < MAX_AGE

    def _read(self, timeout: float):
        """One frame from the runner, or None if it ended, sent garbage or took longer than ``timeout``."""
        fd = self._proc.stdout.fileno()
        deadline = _now() + timeout
        while True:
            if len(self._buf) >= 4:
                n = struct.unpack(">I", self._buf[:4])[0]
                if n > MAX_FRAME:
                    return None
                if len(self._buf) >= 4 + n:
                    body, self._buf = self._buf[4:4 + n], self._buf[4 + n:]
                    try:
                        return json.loads(body)
                    except (ValueError, RecursionError):
                        return None
            left = deadline - _now()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk

    def _send(self, obj) -> bool:
        try:
            self._proc.stdin.write(_frame(obj))
            self._proc.stdin.flush()
            return True
        except OSError:
            return False

    def _ask(self, check: str, cells) -> dict | None:
        """The runner's reply to one check; None, and the runner unusable, if it gave none in time (a runner that
        did not answer may still be working: its next frame would be this check's)."""
        left = min(self.cell_timeout * (len(cells) + 2) + 30, self._deadline - _now())
        reply = None
        if self.usable and left > 0 and self._send({"check": check, "cells": cells, "timeout": self.cell_timeout}):
            reply = self._read(left)
        if reply is None:
            self.usable = False
        return reply

    def check(self, check: str, cells: list[tuple[str, str]], skipped: dict[str, str]) -> CheckRun:
        """Run ``cells`` but those of ``skipped`` (name -> why) and evaluate ``check``. A cell that stops its
        child (time limit, exit, crash) is added to ``skipped`` and the check is run again without it."""
        names = {n for n, _ in cells}
        for _ in range(len(cells) + 1):
            reply = self._ask(check, [[n, s] for n, s in cells if n not in skipped])
            if not isinstance(reply, dict):
                return CheckRun(problem="the grading process gave no readable values (needs review)")
            if "stopped" not in reply:
                return _parse(reply, names)
            cell = reply.get("stopped")
            if cell == RECIPE:
                return CheckRun(problem=f"evaluating the answers took longer than {self.cell_timeout:g} s "
                                        f"(an endless loop or a very slow function?)")
            if cell not in names or cell in skipped:
                return CheckRun(problem="the answers stopped before they could be evaluated (needs review)")
            why = {"timeout": "was stopped at the time limit"}.get(reply.get("why"), "ended its process")
            skipped[cell] = why
        return CheckRun(problem="the answers could not be evaluated (needs review)")

    def close(self) -> None:
        try:
            self._proc.kill()
            self._proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Runners:
    """The runner this grading process keeps between submissions (``grader.judge.TrustedChecks``): the next
    submission of the same problem set begins on it instead of a new sandbox and a new torch import. Kept only
    while ``Runner.reusable``; at most one is kept (a grading process grades one problem set at a time)."""

    def __init__(self):
        self._kept: tuple[tuple, Runner] | None = None

    @contextmanager
    def submission(self, assignment: str, student: str, cell_timeout: float, sandbox: bool = True):
        """A runner that has begun ``student``'s submission (raises OSError / RuntimeError if none starts)."""
        key, runner = (assignment, float(cell_timeout), bool(sandbox)), None
        if self._kept is not None:
            kept_key, kept = self._kept
            self._kept = None
            if kept_key == key and kept.reusable() and kept.begin(student):
                runner = kept
            else:
                kept.close()
        if runner is None:
            runner = Runner(assignment, student, cell_timeout, sandbox)
        try:
            yield runner
        finally:
            if runner.reusable():
                self._kept = (key, runner)
            else:
                runner.close()

    def close(self) -> None:
        if self._kept is not None:
            self._kept[1].close()
            self._kept = None


RUNNERS = Runners()  # this process's; closed at exit (the sandbox also ends with its parent, --die-with-parent)
atexit.register(RUNNERS.close)


def _now() -> float:
    import time

    return time.monotonic()


def _parse(reply: dict, names: set[str]) -> CheckRun:
    """Validate a child's reply: only the expected keys and types pass; anything else means no values."""
    values, variant, errors = reply.get("values"), reply.get("variant"), reply.get("errors")
    if set(reply) != {"values", "variant", "errors"} or not isinstance(values, dict) \
            or not all(isinstance(k, str) and isinstance(v, dict) for k, v in values.items()) \
            or not (variant is None or isinstance(variant, str)) or not isinstance(errors, dict):
        return CheckRun(problem="the grading process gave malformed values (needs review)")
    cell_errors = {k: str(v)[:300] for k, v in errors.items() if k in names}
    return CheckRun(values=values, variant=variant[:100] if variant else None, cell_errors=cell_errors)
