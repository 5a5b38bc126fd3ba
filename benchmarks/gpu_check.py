"""GPU check: the ``gpu`` preset end to end on one CUDA device, in one short run.

The ``gpu`` preset (resnet18_cifar, batch 512, LARS, tau 0.5, the paper's CIFAR augmentation;
simclr_core.train.config) is the recipe for a GPU. This script runs it on one and reports:

1. the environment (nvidia-smi, torch, what the trainer picks: device, bf16 autocast, channels_last);
2. throughput of the gpu preset on CIFAR-10-sized data (50 000 + 10 000 generated 32x32 images in the real
   archive's format, so nothing is downloaded), so the time of the full 500-epoch recipe is estimated from a
   measured epoch, plus the probe's time;
3. a run interrupted with Ctrl-C (SIGINT) after its first checkpoint, then resumed with ``--resume``, against the
   same run uninterrupted: the checkpoint round trip on CUDA (on the CPU the two are equal bit for bit,
   tests/test_cli.py; on a GPU cuDNN's kernels need not be deterministic, so the largest weight difference is
   reported, not asserted);
4. real data: the gpu preset on Fashion-MNIST for a few minutes, then ``simclr probe`` (SimCLR vs random init vs
   raw pixels), when the Fashion-MNIST files are found;
5. last, the unit tests of the loss, models, trainer, augmentation, probes and CLI with CUDA present
   (``device='auto'`` then means cuda).

Each part runs in its own process under a time limit, so one failure or overrun costs only that part; the
summary says which parts passed. Run folders (ResNet-18 checkpoints of 45 MB) stay in a temporary folder that is
removed at the end; ``--out`` receives only small files: summary.json, log.txt and the metrics and probe results.

Fashion-MNIST (the four idx files, train-images-idx3-ubyte.gz and so on) is looked for in .gpu_data/fashion-mnist
at the repository root (ignored by git: copy the files there on a machine that lacks them) and in
/usr/share/datasets/fashion-mnist; without it that part is skipped. From the repository root:

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out /tmp/gpu_check

Everything ends within ``--minutes`` (default 8.5; each part's own time limit is cut to what is left);
``--fmnist-minutes`` and ``--cifar-epochs`` trade time for accuracy, ``--skip`` leaves parts out for a rerun.
It needs the package's dependencies and pytest. On a machine without a GPU, ``--smoke`` runs the same parts on
tiny data on the CPU (tests/test_gpu_check.py does this, so the test suite checks the script).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from simclr_core.data.synthetic import write_fake_cifar10  # noqa: E402  (the CIFAR-10 archive's format, generated images)

FMNIST_PLACES = (ROOT / ".gpu_data" / "fashion-mnist", Path("/usr/share/datasets/fashion-mnist"))
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # the parts import simclr_core from this checkout
UNIT_TESTS = ("tests/test_loss.py", "tests/test_models.py", "tests/test_trainer.py", "tests/test_fast_augment.py",
              "tests/test_evaluate.py", "tests/test_cli.py")


def _simclr(*args: str) -> list[str]:
    return [sys.executable, "-m", "simclr_core", *args]


class Check:
    """Runs the parts as subprocesses, logs their output to one file and collects a summary."""

    def __init__(self, out: Path, work: Path, minutes: float):
        self.out, self.work = out, work
        self.end = time.perf_counter() + 60 * minutes  # every part's time limit is cut to what is left of this
        self.log = open(out / "log.txt", "a")
        self.summary: dict = {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "parts": {}}

    def left(self, timeout_s: float) -> float:
        return min(timeout_s, self.end - time.perf_counter())

    def run(self, part: str, cmd: list[str], timeout_s: float, ctrl_c_after: Path | None = None) -> bool:
        """Run ``cmd`` within the time left; with ``ctrl_c_after``, press Ctrl-C (SIGINT) once that file exists, as
        a user would (exit status 130, or 0 if the run finished first, then counts as passed)."""
        timeout_s = self.left(timeout_s)
        record = {"cmd": " ".join(cmd[1:]) + ("  (Ctrl-C)" if ctrl_c_after else "")}
        if timeout_s < 5:
            self.summary["parts"].setdefault(part, []).append({**record, "rc": "no time left"})
            print(f"[gpu_check] {part}: skipped, the --minutes budget is spent", flush=True)
            return False
        self.log.write(f"\n==== {part}: {record['cmd']}\n")
        self.log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=ENV)
        if ctrl_c_after is not None:
            while proc.poll() is None and not ctrl_c_after.exists() and time.perf_counter() - t0 < timeout_s:
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=max(1.0, timeout_s - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "timeout"
        if ctrl_c_after is not None:
            record["exit_status"] = rc
            rc = 0 if rc == 130 else rc  # 130: interrupted, the last checkpoint kept
        record.update(rc=rc, seconds=round(time.perf_counter() - t0, 1))
        self.summary["parts"].setdefault(part, []).append(record)
        print(f"[gpu_check] {part}: rc {rc} in {record['seconds']} s", flush=True)
        return rc == 0

    def note(self, part: str, **values) -> None:
        self.summary.setdefault("results", {}).setdefault(part, {}).update(values)
        print(f"[gpu_check] {part}: {values}", flush=True)

    def write(self) -> None:
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str))


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _probe_rows(run_dir: Path) -> dict:
    path = run_dir / "probe.json"
    if not path.exists():
        return {}
    return {r["name"]: {"knn": r["knn"], "linear": r["linear"]} for r in json.loads(path.read_text())["results"]}


def environment(check: Check) -> None:
    import torch
    import torchvision

    from simclr_core.precision import precision_for

    if shutil.which("nvidia-smi"):
        check.run("environment", ["nvidia-smi"], 30)
    policy = precision_for("auto")  # what a run with device 'auto' trains, monitors and probes with
    check.note("environment", torch=torch.__version__, torchvision=torchvision.__version__,
               cuda=torch.cuda.is_available(), gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               device=str(policy.device), amp=str(policy.dtype), channels_last=policy.channels_last,
               precision=policy.describe())


def unit_tests(check: Check, timeout_s: float) -> None:
    check.run("unit tests", [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *UNIT_TESTS],
              timeout_s)


def cifar_throughput(check: Check, n_train: int, n_test: int, epochs: int, extra: list[str], probe: list[str],
                     timeout_s: float) -> None:
    root = write_fake_cifar10(check.work / "cifar", n_train=n_train, n_test=n_test, seed=0)
    run_dir = check.work / "cifar_gpu"
    ok = check.run("cifar10 gpu preset", _simclr("pretrain", "--dataset", "cifar10", "--data-root", str(root),
                                                 "--preset", "gpu", "--epochs", str(epochs), "--warmup-epochs", "1",
                                                 "--out", str(run_dir), "--no-progress", *extra), timeout_s)
    rows = _metrics(run_dir)
    if rows:
        last = rows[-1]  # epoch 1 includes cuDNN autotuning and the first compilations: report the last
        check.note("cifar10 gpu preset", epochs=len(rows), images_per_s_last_epoch=round(last["images_per_s"], 1),
                   images_per_s_first_epoch=round(rows[0]["images_per_s"], 1),
                   seconds_per_epoch=round(last["train_seconds"], 2),
                   estimated_minutes_for_500_epochs=round(500 * 50_000 / last["images_per_s"] / 60, 1),
                   final_loss=round(last["loss"], 4))
    if ok:
        shutil.copy(run_dir / "metrics.jsonl", check.out / "cifar10_metrics.jsonl")
        if check.run("cifar10 probe", _simclr("probe", str(run_dir), "--data-root", str(root), "--no-progress", *probe),
                     timeout_s):
            shutil.copy(run_dir / "probe.json", check.out / "cifar10_probe.json")  # its time: summary["parts"]
            check.note("cifar10 probe", note="generated images: only the time means something", **_probe_rows(run_dir))


def resume(check: Check, root: Path, epochs: int, extra: list[str], timeout_s: float) -> None:
    import torch

    common = ["pretrain", "--dataset", "cifar10", "--data-root", str(root), "--preset", "gpu", "--epochs", str(epochs),
              "--warmup-epochs", "1", "--no-progress", "--seed", "1", *extra]
    full, cut = check.work / "resume_full", check.work / "resume_cut"
    ok = check.run("resume", _simclr(*common, "--out", str(full)), timeout_s)
    ok = check.run("resume", _simclr(*common, "--out", str(cut)), timeout_s, ctrl_c_after=cut / "checkpoint.pt") and ok
    after_cut = len(_metrics(cut))
    ok = check.run("resume", _simclr(*common, "--out", str(cut), "--resume"), timeout_s) and ok
    if not ok:
        return
    a = torch.load(full / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    b = torch.load(cut / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    check.note("resume", epochs=epochs, epochs_before_interrupt=after_cut, epochs_after_resume=len(_metrics(cut)),
               max_abs_weight_difference=diff, bitwise_equal=diff == 0.0)


def fashion_mnist(check: Check, minutes: float, extra: list[str], probe: list[str], timeout_s: float) -> None:
    data = next((p for p in FMNIST_PLACES if (p / "train-images-idx3-ubyte.gz").exists()), None)
    if data is None:
        check.note("fashion-mnist gpu preset", skipped=f"no Fashion-MNIST in {[str(p) for p in FMNIST_PLACES]}")
        return
    run_dir = check.work / "fmnist_gpu"
    ok = check.run("fashion-mnist gpu preset", _simclr("pretrain", "--dataset", "fashion-mnist", "--data-root", str(data),
                                                       "--preset", "gpu", "--minutes", str(minutes), "--out", str(run_dir),
                                                       "--no-progress", *extra), timeout_s)
    rows = _metrics(run_dir)
    if rows:
        check.note("fashion-mnist gpu preset", epochs=len(rows), images_per_s_last_epoch=round(rows[-1]["images_per_s"]),
                   final_loss=round(rows[-1]["loss"], 4))
    if ok:
        shutil.copy(run_dir / "metrics.jsonl", check.out / "fmnist_metrics.jsonl")
        if check.run("fashion-mnist probe", _simclr("probe", str(run_dir), "--data-root", str(data), "--no-progress",
                                                  *probe), timeout_s):
            shutil.copy(run_dir / "probe.json", check.out / "fmnist_probe.json")
            check.note("fashion-mnist probe", **_probe_rows(run_dir))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for summary.json, log.txt and the metrics and probe results")
    p.add_argument("--smoke", action="store_true", help="tiny data on whatever device there is: checks the script itself")
    p.add_argument("--cifar-epochs", type=int, default=3, help="epochs of the throughput run (default 3)")
    p.add_argument("--fmnist-minutes", type=float, default=2.0, help="Fashion-MNIST pretraining budget (default 2)")
    p.add_argument("--minutes", type=float, default=8.5,
                   help="time for everything, in minutes (default 8.5); each part's time limit is cut to what is left")
    p.add_argument("--skip", default="", help="comma-separated parts to leave out: tests,cifar,resume,fmnist")
    args = p.parse_args(argv)
    for name, v in (("--cifar-epochs", args.cifar_epochs), ("--fmnist-minutes", args.fmnist_minutes),
                    ("--minutes", args.minutes)):
        if not v > 0:
            raise SystemExit(f"{name} must be > 0, got {v}")
    skip = {s for s in args.skip.split(",") if s}
    if skip - {"tests", "cifar", "resume", "fmnist"}:
        raise SystemExit(f"--skip takes tests,cifar,resume,fmnist; got {args.skip!r}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    check = Check(out, work, args.minutes)
    check.summary["smoke"] = args.smoke
    if args.smoke:  # the same parts on tiny data; small_cnn keeps the CPU run to about a minute
        n_train, n_test, extra = 640, 200, ["--subset", "256", "--batch-size", "64", "--encoder", "small_cnn"]
        probe = ["--train-subset", "300", "--test-subset", "100"]
        epochs, minutes, limit = 2, 0.1, 300
    else:
        n_train, n_test, extra, probe = 50_000, 10_000, [], []
        epochs, minutes, limit = args.cifar_epochs, args.fmnist_minutes, 240
    try:
        environment(check)
        if "cifar" not in skip:
            cifar_throughput(check, n_train, n_test, epochs, extra, probe, limit)
        if "resume" not in skip:
            small = write_fake_cifar10(work / "cifar_small", n_train=2560 if not args.smoke else 320, n_test=100, seed=1)
            resume(check, small, 3 if not args.smoke else 2, ["--subset", "256", "--batch-size", "64", "--encoder",
                                                               "small_cnn"] if args.smoke else [], limit)
        if "fmnist" not in skip:
            fashion_mnist(check, minutes, extra, probe, limit + 60 * minutes)
        if "tests" not in skip and not args.smoke:  # last: they pass on the CPU in CI; the smoke run is one of them
            unit_tests(check, 150)
    finally:
        parts = check.summary["parts"]
        check.summary["all_passed"] = all(r["rc"] == 0 for runs in parts.values() for r in runs)
        check.write()
        check.log.close()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(check.summary.get("results", {}), indent=1, default=str))
    return 0 if check.summary["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
