"""The simclr command: clear errors without tracebacks, and pretrain -> probe end to end."""

import json
import os
import subprocess
import sys

import pytest
import torch

from simclr_core.cli import main
from simclr_core.data.synthetic import write_fake_cifar10
from simclr_core.train.checkpoint import load_checkpoint
from tests.trainer_helpers import interrupt_at_call


def run_cli(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "simclr_core", *args], capture_output=True, text=True, env=env, timeout=300)


def test_missing_cifar_offline_is_a_clear_error_with_options(tmp_path):
    p = run_cli("pretrain", "--dataset", "cifar10", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "CIFAR-10 is not in" in p.stderr and str(tmp_path / "nowhere") in p.stderr
    assert "--dataset fashion-mnist --data-root /usr/share/datasets/fashion-mnist" in p.stderr
    assert "--download" in p.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("args,needle", [
    (["--epochs", "0"], "--epochs must be a positive integer, got '0'"),
    (["--batch-size", "many"], "--batch-size must be a positive integer, got 'many'"),
    (["--temperature", "-0.5"], "--temperature must be a finite number > 0, got '-0.5'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--preset", "tpu"], "invalid choice: 'tpu'"),
    (["--widths", "8,x"], "--widths must be comma-separated positive integers"),
])
def test_invalid_arguments_name_the_value(tmp_path, capsys, args, needle):
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--out", str(tmp_path / "r"), *args])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_probe_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["probe", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrain_then_probe_end_to_end(tmp_path, capsys):
    root = write_fake_cifar10(tmp_path / "data", n_train=200, n_test=60, seed=1)
    out = tmp_path / "runs" / "tiny"
    common = ["pretrain", "--dataset", "cifar10", "--data-root", str(root), "--out", str(out), "--widths", "8,16",
              "--batch-size", "50", "--no-progress", "--seed", "3"]
    assert main([*common, "--epochs", "2"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert json.loads((out / "config.json").read_text())["recipe"]["widths"] == [8, 16]

    # the same folder again without --resume: refused, the run is kept
    assert main([*common, "--epochs", "2"]) == 2
    assert "already exists" in capsys.readouterr().err

    assert main(["probe", str(out), "--data-root", str(root), "--no-progress", "--k", "20"]) == 0
    table = capsys.readouterr().out
    result = json.loads((out / "probe.json").read_text())
    names = [r["name"] for r in result["results"]]
    assert names == ["SimCLR", "random init", "raw pixels"]
    assert result["epochs_trained"] == 2 and result["n_train"] == 200 and result["n_test"] == 60
    assert result["steps_trained"] == 2 * (200 // 50) and "2 epochs (8 steps)" in table
    dims = {r["name"]: r["dim"] for r in result["results"]}
    assert dims == {"SimCLR": 16, "random init": 16, "raw pixels": 3072}
    for r in result["results"]:
        assert 0.3 < r["knn"] <= 1 and 0.3 < r["linear"] <= 1  # 10 balanced classes: chance is 0.1
        assert f"{100 * r['linear']:.2f}%" in table


@pytest.mark.slow
def test_gpu_preset_end_to_end_on_the_cpu(tmp_path, capsys, monkeypatch):
    """The gpu preset's own pieces (ResNet-18 with the CIFAR stem, LARS, the paper's CIFAR augmentation) train,
    survive a Ctrl-C, resume to the weights of an uninterrupted run, and probe; only the run's size is cut down."""
    root = write_fake_cifar10(tmp_path / "data", n_train=64, n_test=40, seed=2)

    def args(name):
        return ["pretrain", "--dataset", "cifar10", "--preset", "gpu", "--data-root", str(root),
                "--out", str(tmp_path / name), "--batch-size", "32", "--epochs", "2", "--no-progress", "--device", "cpu"]

    assert main(args("whole")) == 0
    cfg = json.loads((tmp_path / "whole" / "config.json").read_text())["recipe"]
    assert (cfg["encoder"], cfg["optimizer"], cfg["temperature"], cfg["warmup_epochs"]) == ("resnet18_cifar", "lars", 0.5, 2)
    assert (cfg["augment"]["strength"], cfg["augment"]["blur"]) == (0.5, False)

    with monkeypatch.context() as m:
        interrupt_at_call(m, 3)  # the first step of epoch 1 (2 steps an epoch)
        assert main(args("cut")) == 130
    assert "continue with --resume" in capsys.readouterr().err
    assert main([*args("cut"), "--resume"]) == 0
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert main(["probe", str(tmp_path / "cut"), "--data-root", str(root), "--no-progress", "--k", "10"]) == 0
    capsys.readouterr()
    result = json.loads((tmp_path / "cut" / "probe.json").read_text())
    assert {r["name"]: r["dim"] for r in result["results"]} == {"SimCLR": 512, "random init": 512, "raw pixels": 3072}
    assert result["epochs_trained"] == 2
