"""Grading workers side by side: ``make grade JOBS=n`` runs up to n ``grader.worker`` processes, each grading one
submission at a time in the sandbox, and hands every finished job back to the one calling thread.

Only nbgrader's own autograding runs in the workers (each writes its submission's rows of the gradebook, waiting
for the others' writes: ``grader.worker.with_busy_timeout``); everything else that writes the course's records
(reviews, the record of what was graded, the progress lines) runs in the caller, one job after another, in the
order the jobs finish. A worker that gives no answer within the job's time limit, or dies, is killed with
everything it started, its job is reported as failed with the reason, and a fresh worker takes the next job.
A job that failed because the gradebook was busy beyond the busy timeout is graded again, up to ``RETRIES`` times.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

RETRIES = 2
START_SECONDS = 120  # a worker's start: Python, nbgrader and the course's configuration
BUSY = "database is locked"


def nbgrader_env() -> dict:
    """This environment with this Python's scripts first on PATH (nbgrader runs ``alembic`` from there)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@dataclass(frozen=True)
class Job:
    assignment: str
    student: str


@dataclass(frozen=True)
class Done:
    """A finished job: nbgrader's verdict on its run, the end of its log, and its wall-clock seconds."""
    job: Job
    ok: bool
    log: str
    seconds: float
    started: float  # time.time() when its grading began


class Worker:
    """One ``python -m grader.worker`` process and its pipes; ``ask`` sends a job and waits for the answer."""

    def __init__(self, root: Path, log_path: Path):
        with open(log_path, "ab") as log:  # the worker's stderr: nbgrader's log, kept for the instructor
            self.proc = subprocess.Popen([sys.executable, "-m", "grader.worker", "--root", str(root)], cwd=root,
                                         env=nbgrader_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         start_new_session=True)
        self.log_path = log_path
        self.buffer = b""
        try:
            self._answer(START_SECONDS)
        except (RuntimeError, ValueError) as e:
            self.stop(kill=True)
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{e}; its log {log_path} ends: {tail[0][:300] if tail else '(empty)'}") from None

    def _answer(self, seconds: float) -> dict:
        """The next answer line, or RuntimeError after ``seconds`` or when the worker is gone."""
        deadline = time.monotonic() + seconds
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no answer after {seconds:.0f} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"the grading process ended (exit status {self.proc.wait()})")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ValueError(f"the grading process answered {line[:80]!r}")
        return answer

    def ask(self, job: Job, seconds: float) -> dict:
        self.proc.stdin.write((json.dumps({"assignment": job.assignment, "student": job.student}) + "\n").encode())
        self.proc.stdin.flush()
        return self._answer(seconds)

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None and not kill:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill = True
        if kill and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the worker, its kernels and their sandboxes
            except ProcessLookupError:
                pass
            self.proc.wait()


def _grade(worker: Worker, job: Job, seconds: float) -> tuple[Worker | None, dict]:
    """One job, asked again while the gradebook was busy; the worker to use next (None: it was killed)."""
    for attempt in range(RETRIES + 1):
        try:
            answer = worker.ask(job, seconds)
        except (RuntimeError, OSError, ValueError) as e:
            worker.stop(kill=True)
            return None, {"ok": False, "log": f"[ERROR] grading stopped: {e}"}
        if answer.get("ok") or BUSY not in str(answer.get("log", "")) or attempt == RETRIES:
            break
    return worker, answer


def run(root: Path, jobs: list[Job], n: int, seconds: float, log_dir: Path) -> Iterator[Done]:
    """Grade ``jobs`` on ``min(n, len(jobs))`` workers; yields each job as it finishes (in the calling thread).
    Closing the iterator early (an interrupt, an error of the caller) kills the workers and what they started."""
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    done: queue.Queue = queue.Queue()
    log_dir.mkdir(parents=True, exist_ok=True)
    stopping, live = threading.Event(), {}

    def serve(k: int) -> None:
        worker = None
        try:
            while not stopping.is_set():
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    worker = live[k] = worker or Worker(root, log_dir / f"worker-{k}.log")
                    t0, wall = time.monotonic(), time.time()  # a worker's start is not the job's time
                    worker, answer = _grade(worker, job, seconds)
                except (RuntimeError, OSError, ValueError) as e:  # the worker did not start
                    t0, wall = time.monotonic(), time.time()
                    worker, answer = None, {"ok": False, "log": f"[ERROR] the grading process did not start: {e}"}
                done.put(Done(job, bool(answer.get("ok")), str(answer.get("log", "")), time.monotonic() - t0, wall))
        finally:
            if worker is not None:
                worker.stop(kill=stopping.is_set())
            done.put(None)

    threads = [threading.Thread(target=serve, args=(k,), daemon=True) for k in range(max(1, min(n, len(jobs))))]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            item = done.get()
            if item is None:
                running -= 1
            else:
                yield item
    finally:
        if running:
            stopping.set()
            for w in list(live.values()):
                w.stop(kill=True)
