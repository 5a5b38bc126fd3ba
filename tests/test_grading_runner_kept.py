"""The trusted checks' runner kept between submissions (``grader.harness.Runners``): what one student's answers
leave in its sandbox (files, a detached process, the id graded, a System V segment, a killed runner) never reaches
the next student's checks, and a runner is reused only inside its own sandbox."""

from __future__ import annotations

import os
import shutil

import pytest

from grader import harness
from grader.verdict import value

from . import grade_kinds as G

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")]
A1 = G.ASSIGNMENTS[0]
CHECK = "q1_1_loss"  # its recipe sends back L_12, which the cells below use to carry what they saw

LITTER = ("import os, subprocess\n"
          "open('here.txt', 'w').write('x')\n"
          "os.makedirs('/tmp/a/b')\nopen('/tmp/a/b/c', 'w').write('y')\nos.chmod('/tmp/a', 0)\n"
          "open('/dev/shm/z', 'w').write('z')\n"
          "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
          "L_12 = 1.0")
# processes and files the cell sees: 1000 x processes (other than the sandbox's init, the runner and itself) + files
SEEN = ("import os\n"
        "me, runner = os.getpid(), os.getppid()\n"
        "procs = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, me, runner)]\n"
        "files = os.listdir('.') + [f for f in os.listdir('/tmp') if not f.startswith('simclr-grading-run-')]"
        " + os.listdir('/dev/shm')\n"
        "L_12 = float(1000 * len(procs) + len(files))")
STUDENT = "import os\nL_12 = float(os.environ.get('SIMCLR_STUDENT_ID') == 'bob')"


def _seen(runner, source: str) -> float:
    run = runner.check(CHECK, [("a", source)], {})
    assert run.values is not None, run
    return value(run.values, "L_12")


def test_nothing_of_one_submission_reaches_the_next():
    with harness.Runner(A1, "alice", cell_timeout=5) as r:
        assert r.sandboxed and r.reusable()
        assert _seen(r, LITTER) == 1.0
        assert _seen(r, SEEN) == 3.0, "her files stay for her own next check; her process does not"
        assert r.begin("bob")
        assert _seen(r, SEEN) == 0.0
        assert _seen(r, STUDENT) == 1.0
        assert r.submissions == 2 and r.reusable()


def test_a_sandbox_not_shown_clean_is_thrown_away():
    """A System V segment outlives its maker and cannot be told apart from the sandbox's own: the runner is not
    reused, and the next submission gets a fresh sandbox that has no segment."""
    runners = harness.Runners()
    segment = "import ctypes\nL_12 = float(ctypes.CDLL(None).shmget(0, 4096, 0o1000 | 0o600) >= 0)"
    count = "L_12 = float(len(open('/proc/sysvipc/shm').read().splitlines()) - 1)"
    try:
        with runners.submission(A1, "alice", 5.0) as first:
            assert _seen(first, segment) == 1.0
            assert _seen(first, count) == 1.0
        with runners.submission(A1, "bob", 5.0) as second:
            assert second is not first and first._proc.poll() is not None
            assert _seen(second, count) == 0.0
            assert _seen(second, STUDENT) == 1.0
    finally:
        runners.close()


def test_a_runner_its_answers_killed_is_replaced():
    runners = harness.Runners()
    try:
        with runners.submission(A1, "alice", 5.0) as first:
            run = first.check(CHECK, [("a", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")], {})
            assert run.values is None and "needs review" in run.problem
            assert not first.reusable()
        with runners.submission(A1, "bob", 5.0) as second:
            assert second is not first
            assert _seen(second, STUDENT) == 1.0
            kept = second
        with runners.submission(A1, "carol", 5.0) as third:
            assert third is kept, "a healthy runner is kept for the next submission"
            assert _seen(third, STUDENT) == 0.0
    finally:
        runners.close()


def test_a_runner_is_retired_after_its_submissions(monkeypatch):
    monkeypatch.setattr(harness, "RECYCLE", 2)
    runners = harness.Runners()
    try:
        seen = []
        for student in ("a", "b", "c"):
            with runners.submission(A1, student, 5.0) as r:
                seen.append(r)
        assert seen[0] is seen[1] and seen[2] is not seen[0]
    finally:
        runners.close()


def test_a_runner_outside_a_sandbox_serves_one_submission():
    """Without the sandbox, "every other process" and "the writable folders" would be the user's: the runner
    neither kills nor empties anything there, so it cannot be made clean and serves one submission."""
    with harness.Runner(A1, "alice", cell_timeout=5, sandbox=False) as r:
        assert not r.sandboxed and not r.reusable()
        assert not r.begin("bob")


def test_only_the_sandboxes_first_process_counts_as_in_its_own_sandbox():
    from grader_probe.runner import in_own_sandbox

    assert not in_own_sandbox(["--sandboxed"]), f"pid {os.getpid()} is not a sandbox's first process"
    assert not in_own_sandbox([])


def test_a_submissions_checks_share_one_time_limit(monkeypatch):
    """``Limits.run_seconds`` bounds all of a submission's checks together, as when the runner's sandbox was
    killed after it: the checks left when it is spent wait for review, and the runner is not reused."""
    from grader.limits import Limits

    monkeypatch.setattr(harness, "DEFAULT", Limits(run_seconds=3))
    with harness.Runner(A1, "alice", cell_timeout=5) as r:
        runs = [r.check(CHECK, [("a", "import time\ntime.sleep(1.2)\nL_12 = 1.0")], {}) for _ in range(4)]
        assert [run.values is not None for run in runs] == [True, True, False, False], runs
        assert "needs review" in runs[2].problem and not r.reusable()
