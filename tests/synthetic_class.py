"""A synthetic class for grading at scale: N students, each handing in every problem set, with the mix of answers a
real class hands in (right answers, each named mistake, blanks, a neighbour's numbers or notebook, crashes,
time-outs), built by ``tests.submissions.build``.

    write_class(course_root, n_students=300, seed=0) -> {(assignment, student): kind}

Used by benchmarks/bench_grading.py (throughput) and tests/test_grading_class.py (parallel = serial, the class
report's counts). The kinds' shares (``MIX``) are rough guesses at a first-year class: most right, a fifth with a
named mistake where the problem set has named mistakes, a few blanks and copies, one or two in a hundred that crash
or loop until the time limit.
"""

from __future__ import annotations

import random
from pathlib import Path

import nbformat

from . import submissions

ASSIGNMENTS = ["ps1_similarity_matrix", "ps2_temperature", "ps3_batch_size", "ps4_applications"]
# kind -> share of the class, per problem set (the named-mistake builders exist for ps1)
COMMON = {"correct": 0.70, "blank": 0.08, "copied_numbers": 0.06, "copied_notebook": 0.03,
          "patched_comparators": 0.03, "numpy_and_tensor_types": 0.06, "kernel_crash": 0.02, "infinite_loop": 0.02}
PS1 = {**COMMON, "correct": 0.50, **{k: 0.04 for k in submissions.PS1_MISTAKES}}
MIX = {"ps1_similarity_matrix": PS1, "ps2_temperature": COMMON, "ps3_batch_size": COMMON,
       "ps4_applications": {k: v for k, v in COMMON.items() if k not in ("copied_numbers", "copied_notebook")}}
COPYING = ("copied_numbers", "copied_notebook")


def student_ids(n: int) -> list[str]:
    return [f"s{i:03d}" for i in range(1, n + 1)]


def kinds(n: int, seed: int = 0, assignments=ASSIGNMENTS) -> dict[tuple[str, str], str]:
    """(assignment, student) -> kind, drawn with the shares of ``MIX``; the first student's answers are right (she
    is the neighbour the copying kinds copy)."""
    rng, out = random.Random(seed), {}
    ids = student_ids(n)
    for a in assignments:
        names, weights = zip(*MIX[a].items())
        for i, s in enumerate(ids):
            out[(a, s)] = "correct" if i == 0 else rng.choices(names, weights)[0]
    return out


def write_class(root: Path, n_students: int, seed: int = 0, assignments=ASSIGNMENTS,
                given: dict[tuple[str, str], str] | None = None) -> dict[tuple[str, str], str]:
    """Write every submission under ``root``/grading/submitted/ (``given``: these kinds instead of a draw)."""
    plan = given if given is not None else kinds(n_students, seed, assignments)
    neighbour = min(s for _, s in plan)
    for (a, s), kind in sorted(plan.items()):
        out = root / "grading" / "submitted" / s / a / f"{a}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(submissions.build(root, a, kind, student=s, neighbour=neighbour), out)
    return plan
