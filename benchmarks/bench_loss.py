"""Forward+backward time and peak memory of nt_xent vs lightly's NTXentLoss on CPU.

    python benchmarks/bench_loss.py [--sizes 256 1024 4096] [--repeats 7] [--threads T] [--out FILE]
    python benchmarks/bench_loss.py --sizes 256 --repeats 3 --out /tmp/bench_loss.json      # quick

Sizes are N (pairs), so 2N = 512, 2048, 8192 rows; d = 128. Both losses are called as a user calls them (ours
with its argument checks). Timings are interleaved (ours, lightly, ours, ...) in one process; the median and the
best of the repeats are reported ("speedup" is the ratio of medians, "speedup_best" of the best times, which a
busy shared machine disturbs least), with the machine they ran on (``_common.machine``). Peak memory is
measured in a fresh child process per (implementation, size): the rise of the peak RSS (VmHWM, reset just
before) during one forward+backward above the RSS just before it (Linux only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, import_lightly, machine  # noqa: E402

from simclr_core.nn.loss import nt_xent  # noqa: E402


def make_loss(impl: str, tau: float):
    if impl == "simclr_core":
        return lambda z1, z2: nt_xent(z1, z2, temperature=tau)
    import_lightly()
    from lightly.loss import NTXentLoss

    return NTXentLoss(temperature=tau)


def step(loss_fn, z1, z2) -> float:
    z1 = z1.detach().requires_grad_()
    z2 = z2.detach().requires_grad_()
    t0 = time.perf_counter()
    loss_fn(z1, z2).backward()
    return time.perf_counter() - t0


def child(impl: str, N: int, d: int, tau: float) -> None:
    """Run in a fresh process: print the peak-RSS rise (MiB) of one forward+backward."""
    torch.manual_seed(0)
    z1, z2 = torch.randn(N, d), torch.randn(N, d)
    loss_fn = make_loss(impl, tau)
    step(loss_fn, z1[:8], z2[:8])  # import/dispatch warm-up on a tiny batch
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    step(loss_fn, z1, z2)
    print(json.dumps({"peak_rise_mib": (_status_kib("VmHWM") - before) / 1024}))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (peak memory needs Linux)")


def peak_memory(impl: str, N: int, d: int, tau: float) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", impl, str(N), str(d), str(tau)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rise_mib"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096], help="N (pairs); 2N rows")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--tau", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--out", default=str(RESULTS / "bench_loss.json"), help="result file (default: %(default)s)")
    ap.add_argument("--child", nargs=4, metavar=("IMPL", "N", "D", "TAU"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, N, d, tau = args.child
        child(impl, int(N), int(d), float(tau))
        return

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    impls = ["simclr_core"] + (["lightly"] if import_lightly() is not None else [])
    if len(impls) == 1:
        print("lightly not importable (scripts/install_lightly.sh installs it): timing simclr_core alone")
    where = machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where['cpu']}, d = {args.dim}, tau = {args.tau}")
    rows = []
    for N in args.sizes:
        torch.manual_seed(N)
        z1, z2 = torch.randn(N, args.dim), torch.randn(N, args.dim)
        fns = {impl: make_loss(impl, args.tau) for impl in impls}
        # agreement check: both compute the same loss
        vals = {impl: float(fns[impl](z1, z2)) for impl in impls}
        times: dict[str, list[float]] = {impl: [] for impl in impls}
        repeats = args.repeats if N <= 1024 else max(3, args.repeats // 2)
        for impl in impls:
            step(fns[impl], z1, z2)  # warm-up
        for _ in range(repeats):
            for impl in impls:  # interleaved: same machine state for both
                times[impl].append(step(fns[impl], z1, z2))
        row = {"N": N, "2N": 2 * N, "d": args.dim, "loss": vals}
        for impl in impls:
            row[f"{impl}_ms"] = 1000 * statistics.median(times[impl])
            row[f"{impl}_best_ms"] = 1000 * min(times[impl])
            row[f"{impl}_peak_mib"] = peak_memory(impl, N, args.dim, args.tau)
        if "lightly" in impls:
            row["speedup"] = row["lightly_ms"] / row["simclr_core_ms"]
            row["speedup_best"] = row["lightly_best_ms"] / row["simclr_core_best_ms"]
        rows.append(row)
        msg = f"N={N:5d} (2N={2 * N:5d}): simclr_core {row['simclr_core_ms']:8.1f} ms, peak +{row['simclr_core_peak_mib']:.0f} MiB"
        if "lightly" in impls:
            msg += (
                f" | lightly {row['lightly_ms']:8.1f} ms, peak +{row['lightly_peak_mib']:.0f} MiB"
                f" | speedup x{row['speedup']:.2f} (best x{row['speedup_best']:.2f}) | loss {vals['simclr_core']:.6f} vs {vals['lightly']:.6f}"
            )
        print(msg, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "machine": where, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
