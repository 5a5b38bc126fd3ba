"""Fault injection: a small pretraining killed (SIGKILL) at random moments, inside and outside checkpoint writes,
then resumed, again and again. After every kill the checkpoint loads (or there is none yet); in the end the weights
equal an uninterrupted run's bit for bit on the CPU and metrics.jsonl holds each epoch exactly once. SIGTERM behaves
like Ctrl-C: a message saying what was kept, and a resumable run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simclr_core.train.checkpoint import load_checkpoint
from tests.trainer_helpers import weights

REPO = Path(__file__).resolve().parents[1]

# The command, with every fsync slowed down so that a kill often lands inside save_checkpoint (between writing the
# temporary file and renaming it): a test-only wrapper, the library is unchanged.
WRAPPER = """
import os, sys, time
slow = float(os.environ.get("SLOW_FSYNC", "0"))
real = os.fsync
def fsync(fd):
    time.sleep(slow)
    return real(fd)
os.fsync = fsync
from simclr_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cmd(root, out, *extra):
    return [sys.executable, "-c", WRAPPER, "pretrain", "--dataset", "cifar10", "--data-root", str(root),
            "--out", str(out), "--widths", "8,16", "--epochs", "6", "--batch-size", "50", "--seed", "5",
            "--no-progress", "--device", "cpu", "--num-threads", "1", *extra]


def _env(slow=0.0):
    return dict(os.environ, SLOW_FSYNC=str(slow), OMP_NUM_THREADS="1")


def _epochs(out):
    path = out / "metrics.jsonl"
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_random_kills_then_resume_give_the_uninterrupted_weights(cifar_root, tmp_path):
    whole = tmp_path / "whole"
    t0 = time.monotonic()
    assert subprocess.run(_cmd(cifar_root, whole), env=_env(), capture_output=True, timeout=300).returncode == 0
    whole_s = time.monotonic() - t0  # start-up included: the kills below land inside a run on a slow machine too
    ref = load_checkpoint(whole / "checkpoint.pt")

    rng = random.Random(0)
    cut, kills, inside = tmp_path / "cut", 0, 0
    for attempt in range(12):
        resume = (cut / "checkpoint.pt").exists()
        slow = rng.choice([0.0, 0.4])  # half the runs spend most of a checkpoint write inside fsync
        proc = subprocess.Popen(_cmd(cifar_root, cut, *(["--resume"] if resume else [])), env=_env(slow),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.35, 0.95) * whole_s)  # past the interpreter's and torch's start-up
        if proc.poll() is not None:  # finished before the kill
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()[-2000:]
            break
        tmp_files = list(cut.glob(".simclr-tmp.checkpoint.pt.*"))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        inside += bool(tmp_files)
        e = _epochs(cut)
        assert e == list(range(len(e))), f"metrics.jsonl after a kill: {e}"  # no epoch twice, none skipped
        if (cut / "checkpoint.pt").exists():
            state = load_checkpoint(cut / "checkpoint.pt")  # never half a file
            # the kill may fall between the checkpoint and its metrics line; the next run re-writes the file
            assert len(e) in (state["epoch"], state["epoch"] + 1)
    else:
        proc = subprocess.run(_cmd(cifar_root, cut, "--resume"), env=_env(), capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    print(f"{kills} kills, {inside} of them during a checkpoint write")
    assert kills >= 2, "the run finished before it could be interrupted: lengthen it"
    assert _epochs(cut) == list(range(6)), _epochs(cut)
    assert not list(cut.glob(".simclr-tmp.checkpoint.pt.*")), "stale temporary files are removed on the next run"
    got = load_checkpoint(cut / "checkpoint.pt")
    for k, v in ref["model"].items():
        assert (got["model"][k] == v).all(), f"{k} differs after {kills} kills ({inside} during a checkpoint write)"


@pytest.mark.slow
def test_sigterm_is_like_ctrl_c(cifar_root, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(cifar_root, out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() - t0 < 280:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    if proc.returncode == 0:
        pytest.skip("the run ended before SIGTERM arrived")
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; the checkpoint of epoch" in err and "continue with --resume" in err and "Traceback" not in err
    done = subprocess.run(_cmd(cifar_root, out, "--resume"), env=_env(), capture_output=True, timeout=300)
    assert done.returncode == 0 and _epochs(out) == list(range(6))


def test_interrupt_before_the_first_checkpoint_says_nothing_was_kept(tmp_path, capsys, cifar_root, monkeypatch):
    from simclr_core.cli import main
    from tests.trainer_helpers import interrupt_at_call

    interrupt_at_call(monkeypatch, 1)
    args = ["pretrain", "--dataset", "cifar10", "--data-root", str(cifar_root), "--out", str(tmp_path / "r"),
            "--widths", "8,16", "--epochs", "2", "--batch-size", "50", "--no-progress"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "holds no checkpoint yet" in err and "--resume" not in err.split("holds no checkpoint yet")[0]


def test_metrics_never_hold_an_epoch_twice(cifar_root, tmp_path, monkeypatch):
    """A time-limited run, then --resume; and deleting checkpoint.pt (the error's advice) then a fresh run."""
    from simclr_core.train.runs import pretrain
    from tests.trainer_helpers import interrupt_at_call, tiny

    out = tmp_path / "r"
    with monkeypatch.context() as m:
        interrupt_at_call(m, 6)  # in epoch 1 (4 steps an epoch)
        with pytest.raises(KeyboardInterrupt):
            pretrain(*tiny(cifar_root, out, epochs=3))
    assert _epochs(out) == [0]
    pretrain(*tiny(cifar_root, out, epochs=3, resume=True))
    assert _epochs(out) == [0, 1, 2]
    (out / "checkpoint.pt").unlink()
    pretrain(*tiny(cifar_root, out, epochs=2))
    assert _epochs(out) == [0, 1]
    r = pretrain(*tiny(cifar_root, tmp_path / "t", epochs=3, time_limit_s=1e-3))
    assert r.stopped_early and all(not h.get("partial") for h in _read(tmp_path / "t"))


def _read(out):
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_corrupted_and_malformed_checkpoints_are_named(tmp_path, cifar_root):
    import torch

    from simclr_core.train.checkpoint import CheckpointError, save_checkpoint
    from simclr_core.train.runs import pretrain
    from tests.trainer_helpers import tiny

    out = tmp_path / "r"
    pretrain(*tiny(cifar_root, out, epochs=1))
    ck = out / "checkpoint.pt"
    good = ck.read_bytes()
    cases = {
        "empty": b"",
        "flipped": good[: len(good) // 2] + bytes(b ^ 0xFF for b in good[len(good) // 2: len(good) // 2 + 64])
        + good[len(good) // 2 + 64:],
        "truncated": good[: len(good) - 100],
    }
    for name, data in cases.items():
        ck.write_bytes(data)
        with pytest.raises(CheckpointError, match=str(ck)):
            load_checkpoint(ck)
    state = torch.load(__import__("io").BytesIO(good[: -(len(b"SIMCLR-SHA256:") + 32)]), weights_only=True)
    for key in ("rng", "history"):
        bad = {k: v for k, v in state.items() if k not in ("format", key)}
        save_checkpoint(ck, bad)
        with pytest.raises(CheckpointError, match=f"lacks the entry '{key}'"):
            load_checkpoint(ck)
    nan = dict(state)
    nan["model"] = {k: (v.float().fill_(float("nan")) if v.is_floating_point() else v) for k, v in state["model"].items()}
    save_checkpoint(ck, {k: v for k, v in nan.items() if k != "format"})
    with pytest.raises(CheckpointError, match="non-finite weights"):
        load_checkpoint(ck)
    _ = weights  # the helper module is shared with the resume tests
