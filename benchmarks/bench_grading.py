"""Grading throughput: a synthetic class graded with ``make grade`` at JOBS=1 and JOBS=2, side by side in one run.

    python benchmarks/bench_grading.py [--students 12] [--jobs 1 2] [--seed 0] [--out FILE]
    python benchmarks/bench_grading.py --students 3 --assignments ps1_similarity_matrix     # quick

The class (``tests/synthetic_class.py``) has every student hand in every requested problem set, with the mix of
right answers, named mistakes, blanks, copies, crashes and time-outs of ``MIX``. The course is copied once per
JOBS value from one prepared copy (the problem sets already learned by its gradebook, so every run grades the same
submissions from the same start), and each copy is graded by ``python -m grader.grade --jobs N`` as
``make grade`` runs it. Reported per JOBS: wall-clock seconds, submissions per minute, the speedup over the
first JOBS value, the median seconds of one submission (from the progress lines), and the time 300 students x 4
problem sets would take at that rate and at the expected shares of ``MIX`` (a small class draws its few time-outs
by chance; ``projection``). The machine (CPU, cores, load average before and after) is recorded; a
busy machine lowers every rate, so compare the rates of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

from tests import grade_kinds as G  # noqa: E402
from tests.synthetic_class import ASSIGNMENTS, MIX, write_class  # noqa: E402

LINE = re.compile(r"^\[\s*\d+/\d+\] (\S+)\s+(\S+)\s+.*?\s([\d.]+) s  (.*)$")
COURSE_SIZE = 300 * 4


def prepare(base: Path, students: int, seed: int, assignments: list[str]) -> tuple[Path, dict]:
    """A course copy with the synthetic class submitted and the problem sets learned by its gradebook."""
    root = G.make_course(base / "prepared")
    plan = write_class(root, students, seed, assignments)
    subprocess.run([sys.executable, "-m", "grader.grade", *assignments, "--student", "nobody-yet"], cwd=root,
                   env=G.env(), capture_output=True, text=True, timeout=1800, check=True)
    return root, plan


def projection(found, plan: dict, wall: float) -> float:
    """Minutes for 300 students x 4 problem sets with the expected shares of ``MIX`` (not this run's draw): each
    kind's mean seconds in this run (a kind not drawn: the mean of all), times its expected count, divided by
    the parallelism this run achieved (the sum of the submissions' seconds over the wall-clock time)."""
    secs = {(m.group(2), m.group(1)): float(m.group(3)) for m in found}
    by_kind: dict[str, list[float]] = {}
    for key, t in secs.items():
        by_kind.setdefault(plan[key], []).append(t)
    overall = statistics.mean(secs.values())
    parallel = sum(secs.values()) / wall
    total = sum(300 * share * statistics.mean(by_kind.get(kind, [overall]))
                for a in ASSIGNMENTS for kind, share in MIX[a].items())
    return total / parallel / 60


def grade(prepared: Path, copy: Path, jobs: int, assignments: list[str], plan: dict) -> dict:
    shutil.copytree(prepared, copy, symlinks=True)
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grader.grade", *assignments, "--jobs", str(jobs)], cwd=copy,
                          env=G.env(), capture_output=True, text=True, timeout=6 * 3600)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"grading with --jobs {jobs} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    found = [m for m in map(LINE.match, proc.stdout.splitlines()) if m]
    seconds = [float(m.group(3)) for m in found]
    by_set = {a: [float(m.group(3)) for m in found if m.group(2) == a and m.group(4) == "graded"] for a in assignments}
    n = len(seconds)
    return {"jobs": jobs, "submissions": n, "wall_s": round(wall, 1), "per_minute": round(60 * n / wall, 2),
            "median_submission_s": round(statistics.median(seconds), 2) if seconds else None,
            "median_graded_s_per_set": {a: round(statistics.median(v), 2) for a, v in by_set.items() if v},
            "course_300x4_min": round(COURSE_SIZE / (n / wall) / 60, 1),
            "course_300x4_min_expected_mix": round(projection(found, plan, wall), 1),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
            "summary": [l for l in proc.stdout.splitlines() if l.startswith(("graded ", "slowest: "))]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=12)
    ap.add_argument("--assignments", nargs="+", default=ASSIGNMENTS, choices=ASSIGNMENTS)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_grading.json")
    args = ap.parse_args(argv)
    if args.students < 1 or any(j < 1 for j in args.jobs):
        ap.error(f"--students and --jobs must be at least 1, not {args.students} and {args.jobs}")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        prepared, plan = prepare(Path(tmp), args.students, args.seed, args.assignments)
        runs = [grade(prepared, Path(tmp) / f"jobs{j}", j, args.assignments, plan) for j in args.jobs]
    for r in runs:
        r["speedup"] = round(r["per_minute"] / runs[0]["per_minute"], 2)
    kinds: dict[str, int] = {}
    for kind in plan.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    result = {"machine": {**machine(), "cores": len(os.sched_getaffinity(0))}, "students": args.students,
              "assignments": args.assignments, "seed": args.seed, "kinds": dict(sorted(kinds.items())), "runs": runs}
    print(f"{result['machine']['cpu']}, {result['machine']['cores']} cores; {len(plan)} submissions")
    print(f"{'JOBS':>4}  {'wall s':>7}  {'per min':>7}  {'speedup':>7}  {'median s':>8}  {'300x4 min':>9}  "
          f"{'(expected mix)':>14}  load")
    for r in runs:
        print(f"{r['jobs']:>4}  {r['wall_s']:>7}  {r['per_minute']:>7}  {r['speedup']:>7}  "
              f"{r['median_submission_s']:>8}  {r['course_300x4_min']:>9}  {r['course_300x4_min_expected_mix']:>14}  "
              f"{r['load_before']}-{r['load_after']}")
    for r in runs:
        print(f"JOBS={r['jobs']}: median seconds of a submission graded in full (status graded), per problem set: "
              + ", ".join(f"{a} {v}" for a, v in r["median_graded_s_per_set"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
