"""Grade submissions of many kinds through the real nbgrader commands; also prints the table of results.

    python -m tests.grade_kinds [ASSIGNMENT ...]     # a temporary course, one autograde call per assignment
    python -m tests.grade_kinds --attacks            # the attacks on the grader (ATTACK_KINDS) instead

Used by tests/test_grading.py; run by hand it prints kind x assignment -> score / max and the first message.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from . import submissions

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASSIGNMENTS = ["ps1_similarity_matrix", "ps2_temperature", "ps3_batch_size", "ps4_applications"]
COMMON = ["correct", "blank", "patched_comparators", "blanked_later_cells", "numpy_and_tensor_types"]
KINDS = {
    "ps1_similarity_matrix": COMMON + list(submissions.PS1_MISTAKES) + [
        "worked_example_values", "copied_numbers", "copied_notebook", "forbidden_library", "edited_test",
        "deleted_test", "infinite_loop", "kernel_crash", "read_solutions", "read_gradebook", "write_elsewhere",
        "network"],
    "ps2_temperature": COMMON + ["copied_numbers", "copied_notebook"],
    "ps3_batch_size": COMMON + ["copied_numbers", "copied_notebook"],
    "ps4_applications": COMMON[:4],
}
# attacks on the grader itself (tests/test_grading_attacks.py): each problem set with its own right answers
# ("correct", whose numbers stranger_numbers and copied_numbers are compared with)
ATTACK_KINDS = {
    "ps1_similarity_matrix": ["correct", "forged_hook", "replaced_report", "wrapped_pack", "finalizer_payload",
                              "library_sys_modules", "library_alias", "library_unmarked_cell", "anchor_no_tau",
                              "copied_numbers", "stranger_numbers", "magic_line"],
    "ps2_temperature": ["correct", "library_ps2"],
    "ps3_batch_size": ["correct", "forged_hook", "fake_grad"],
    "ps4_applications": ["queue_wrong"],
}
# what tests/test_grading.py reads: the kinds of ps1 with their scores, and the right, patched and copied answers of
# the other problem sets
TESTED_KINDS = {
    "ps1_similarity_matrix": COMMON + list(submissions.PS1_MISTAKES) + [
        "copied_numbers", "copied_notebook", "forbidden_library", "edited_test", "deleted_test", "infinite_loop",
        "kernel_crash", "escape_attempts"],
    "ps2_temperature": ["correct", "patched_comparators", "copied_numbers"],
    "ps3_batch_size": ["correct", "patched_comparators", "copied_numbers"],
    "ps4_applications": ["correct", "patched_comparators"],
}


def env() -> dict:
    e = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbgrader calls alembic
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def nbgrader(*args, cwd: Path, timeout=900):
    return subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def make_course(dst: Path) -> Path:
    """A copy of the course (config, grader, solutions) with exercises/ generated and the gradebook filled."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", dst / "nbgrader_config.py")
    for d in ("solutions", "grader", "grader_probe", "simclr_core"):
        shutil.copytree(ROOT / d, dst / d, ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location("course", ROOT / "scripts" / "course.py")
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    course.generate(root=dst)
    return dst


def submit(root: Path, a: str, kinds) -> None:
    for kind in kinds:
        out = root / "grading" / "submitted" / kind / a / f"{a}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(submissions.build(root, a, kind), out)


def results(root: Path, a: str, kinds) -> dict:
    """kind -> (score, max score, {grade_id: first line of the cell's verdict}) from the gradebook/notebooks."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}") as gb:
        for kind in kinds:
            sub = gb.find_submission(a, kind)
            path = root / "grading" / "autograded" / kind / a / f"{a}.ipynb"
            msgs = {}
            if path.exists():
                for c in nbformat.read(path, 4).cells:
                    g = c.metadata.get("nbgrader", {})
                    if g.get("grade") and c.cell_type == "code":
                        text = "".join(o.get("text", "") or "\n".join(o.get("traceback", []))
                                       for o in c.outputs if o.output_type in ("stream", "error"))
                        msgs[g["grade_id"]] = text.strip()
            out[kind] = (sub.score, sub.max_score, msgs)
    return out


def _grade_course(dst: Path, table: dict[str, list[str]]) -> tuple[Path, dict, dict]:
    root = make_course(dst)
    procs, res = {}, {}
    for a, kinds in table.items():
        submit(root, a, kinds)
        procs[a] = nbgrader("autograde", a, "--create", "--Execute.timeout=10", cwd=root)
        res[a] = results(root, a, kinds)
    return root, procs, res


def grade_shared_course(dst: Path) -> dict[str, tuple[Path, dict, dict]]:
    """TESTED_KINDS and ATTACK_KINDS graded in two courses side by side, each its own gradebook, so that one's waits
    on kernels fill the other's: "kinds" holds ps1's TESTED_KINDS, "attacks" ps1's ATTACK_KINDS and both tables of
    ps2-ps4 (a kind in both is one submission). Each is (root, assignment -> the `nbgrader autograde` process,
    assignment -> results()), one autograde per problem set. tests/conftest.py grades them once per session for
    tests/test_grading.py and tests/test_grading_attacks.py."""
    from concurrent.futures import ThreadPoolExecutor

    first = ASSIGNMENTS[0]
    tables = {"kinds": {first: TESTED_KINDS[first]},
              "attacks": {a: ATTACK_KINDS[a] if a == first else sorted(set(TESTED_KINDS[a]) | set(ATTACK_KINDS[a]))
                          for a in ASSIGNMENTS}}
    with ThreadPoolExecutor(2) as pool:
        graded = pool.map(lambda name: _grade_course(dst / name, tables[name]), tables)
        return dict(zip(tables, graded))


def first_failure(msgs: dict) -> str:
    for gid, m in msgs.items():
        for line in m.splitlines():
            if line.startswith("FAIL"):
                return f"{gid}: {line[6:]}"
    return "all checks pass" if msgs else "(no autograded notebook)"


def main(argv) -> int:
    table = ATTACK_KINDS if "--attacks" in argv else KINDS
    names = [a for a in argv if a != "--attacks"] or ASSIGNMENTS
    with tempfile.TemporaryDirectory() as tmp:
        root = make_course(Path(tmp) / "course")
        for a in names:
            submit(root, a, table[a])
            proc = nbgrader("autograde", a, "--create", cwd=root)
            for kind, (score, mx, msgs) in results(root, a, table[a]).items():
                print(f"{a:<22} {kind:<24} {score:>5.2f}/{mx:<4g} {first_failure(msgs)[:150]}")
            if proc.returncode:
                print(f"  (nbgrader autograde exited {proc.returncode})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
