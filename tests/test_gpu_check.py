"""The GPU check (benchmarks/gpu_check.py) in its smoke mode, on the CPU: every part runs, the summary records
each, and the Ctrl-C + --resume part finds the uninterrupted run's weights bit for bit (on the CPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_part(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out), "--smoke"],
                          capture_output=True, text=True, timeout=600)
    log = (out / "log.txt").read_text() if (out / "log.txt").exists() else ""
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + log[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all_passed"] and summary["smoke"]
    assert set(summary["parts"]) >= {"cifar10 gpu preset", "cifar10 probe", "resume"}
    res = summary["results"]
    assert res["environment"]["device"] == "cpu" and res["environment"]["cuda"] is False
    cifar = res["cifar10 gpu preset"]
    assert cifar["epochs"] == 2 and cifar["images_per_s_last_epoch"] > 0
    # 500 epochs of CIFAR-10's 50 000 images at the last epoch's speed (--subset 256 in the smoke run)
    assert cifar["estimated_minutes_for_500_epochs"] == pytest.approx(
        500 * 50_000 / cifar["images_per_s_last_epoch"] / 60, rel=0.01, abs=0.1)
    for name in ("SimCLR", "random init", "raw pixels"):
        assert any(k.startswith(name) for k in res["cifar10 probe"]), res["cifar10 probe"]
    r = res["resume"]
    assert r["epochs_after_resume"] == r["epochs"] == 2
    assert r["bitwise_equal"] and r["max_abs_weight_difference"] == 0.0
    if Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
        assert res["fashion-mnist gpu preset"]["epochs"] >= 1
        assert (out / "fmnist_probe.json").exists()
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files  # --out holds only small files: summary, log, metrics and probe results
