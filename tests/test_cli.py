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


# ---------------------------------------------------------------- nothing of the user's is lost; bad inputs

TINY = ["--dataset", "cifar10", "--widths", "8,16", "--batch-size", "50", "--no-progress", "--device", "cpu"]


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: a second thread only waits on a busy machine
    yield
    torch.set_num_threads(before)


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("my notes")
    (path / ".draft.pt.copy.tmp").write_text("matches the old temporary-file glob")
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_out_on_a_folder_of_the_users_files_is_refused(cifar_root, tmp_path, capsys, one_thread):
    out = tmp_path / "mine"
    before = _user_folder(out)
    assert main(["pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "is a folder of other files (.draft.pt.copy.tmp, notes.txt), not one this library wrote" in err
    assert "--force" in err and {p.name: p.read_bytes() for p in out.iterdir()} == before
    # --force: the run goes next to them, and every file of the user's is still there, unchanged
    assert main(["pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(out), "--epochs", "1", "--force"]) == 0
    assert all((out / n).read_bytes() == b for n, b in before.items())
    assert (out / "checkpoint.pt").is_file()
    # resuming it later needs no --force: the folder is a run now
    assert main(["pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(out), "--epochs", "1", "--resume"]) == 0
    assert all((out / n).read_bytes() == b for n, b in before.items())


def test_force_never_replaces_a_users_file_with_a_run_files_name(cifar_root, tmp_path, capsys):
    out = tmp_path / "mine"
    _user_folder(out)
    (out / "config.json").write_text('{"my": "settings"}')
    assert main(["pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(out), "--epochs", "1", "--force"]) == 2
    assert "already holds config.json, which are not this library's" in capsys.readouterr().err
    assert (out / "config.json").read_text() == '{"my": "settings"}' and not (out / "checkpoint.pt").exists()


def _hold_lock(folder):
    """Another process holding the run folder's lock, as a running `simclr pretrain` does."""
    code = ("import sys, time; from simclr_core.train.runfolder import RunLock; RunLock(sys.argv[1]); "
            "print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_run_or_resume_of_a_locked_run_is_refused_naming_the_holder(cifar_root, tmp_path, capsys, resume,
                                                                              monkeypatch, one_thread):
    out = tmp_path / "run"
    args = ["pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(out), "--epochs", "2"]
    if resume:
        with monkeypatch.context() as m:
            interrupt_at_call(m, 5)  # the first step of epoch 1 (4 steps an epoch): epoch 0 is checkpointed
            assert main(args) == 130
        metrics = (out / "metrics.jsonl").read_bytes()
    else:
        out.mkdir()
    holder = _hold_lock(out)
    try:
        assert main(args + (["--resume"] if resume else [])) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert f"is in use by another process (pid {holder.pid} on " in err and "two processes must not write one run" in err
    if resume:
        assert (out / "metrics.jsonl").read_bytes() == metrics
        assert main(args + ["--resume"]) == 0  # the holder is gone: the kernel released its lock
        assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    else:
        assert not (out / "checkpoint.pt").exists() and not (out / "metrics.jsonl").exists()


@pytest.mark.slow
def test_two_runs_started_into_one_folder(cifar_root, tmp_path):
    """Two real `simclr pretrain` processes at once: one trains, the other stops at once with a clear error."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "simclr_core", "pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(out),
           "--epochs", "3", "--num-threads", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    assert any("is in use by another process" in err for _, err in results)
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


@pytest.mark.parametrize("args,env,needle", [
    (["--data-root", ""], {}, "--data-root must be a folder path, got ''"),
    (["--seed", str(2**64)], {}, f"--seed must be an integer in 0..{2**32 - 1}, got '{2**64}'"),
    (["--widths", "100000,100000"], {}, "widths must be at most 16 blocks of at most 8192 channels"),
    (["--num-threads", "100000"], {}, "num_threads must be an integer in 1..4096, got 100000"),
    ([], {"SIMCLR_DATA": ""}, "SIMCLR_DATA is set but empty"),
    (["--probe"], {"RANK": "1"}, "RANK"),  # alone: a single process is rank 0
    ([], {"WORLD_SIZE": "abc"}, "WORLD_SIZE"),
])
def test_bad_command_line_inputs_are_named_before_any_work(tmp_path, capsys, monkeypatch, args, env, needle):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "r"
    argv = ["pretrain", *TINY, "--out", str(out), "--epochs", "1", *args]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()  # nothing was written


def test_probe_and_export_paths_must_not_be_empty(capsys):
    for argv in (["probe", ""], ["export", "", "--out", "m"], ["export", "r", "--out", ""]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and "must be a folder path, got ''" in capsys.readouterr().err


def test_a_short_budget_says_its_true_fraction_of_an_epoch_and_warns(cifar_root, tmp_path, capsys, monkeypatch,
                                                                   one_thread):
    from simclr_core.train import budget

    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: 10.0)  # 10 s a step: 0.5 min buys 3 of 4 steps
    monkeypatch.setattr(budget, "time_monitor", lambda monitor: 0.0)
    out = tmp_path / "short"
    assert main(["pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(out), "--minutes", "0.5",
                 "--probe"]) == 0
    captured = capsys.readouterr()
    assert "so 3 steps (0.75 epochs" in captured.err and "warning" not in captured.err  # 0.75 >= 0.5: no warning
    assert "0.75 epochs (3 steps)" in captured.out  # the probe table: not "1 epochs"
    assert main(["probe", str(out), "--data-root", str(cifar_root), "--k", "5", "--device", "cpu"]) == 0
    err = capsys.readouterr().err  # not a terminal here: the progress is one line per stage
    assert "probe 1/4 (at 0 s): features, kNN and linear probe of SimCLR" in err and "probe 4/4" in err
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: 20.0)  # 0.5 min buys 1 step: a quarter epoch
    assert main(["pretrain", *TINY, "--data-root", str(cifar_root), "--out", str(tmp_path / "shorter"),
                 "--minutes", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "0.25 epochs is too short to learn anything: below 0.5 epochs" in err
