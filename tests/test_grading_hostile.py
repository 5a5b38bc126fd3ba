"""Submissions that attack the grading machinery, graded through `python -m grader.grade` (what `make grade` runs),
`nbgrader generate_feedback` and `nbgrader export` on a course that starts as a fresh clone: no gradebook, and
a student's own work in exercises/ that must survive.

One course holds every hostile submission (tests/hostile_submissions.py) and the right answers; it is graded once
per module. The unit tests at the end check intake, the status records and the sandbox's command line in seconds.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import intake, status
from grader.guards import StripGradingMetadata, unsafe_entries
from grader.limits import DEFAULT, user_tasks

from . import grade_kinds as G
from . import hostile_submissions as H

A1, A2 = H.A1, "ps2_temperature"
NEEDS_BWRAP = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
GRADED = ["kernel_symlinks_gradebook", "kernel_symlinks_neighbour", "memory_hog", "disk_hog", "huge_print",
          "privileges", "slow_hook", "forged_status", "patched_json_dumps"]
REFUSED = {  # kind -> what the "needs review" reason must say
    "notes_symlink": "notes.txt is a symbolic link",
    "big_file": "data.bin is 30 MiB, above the limit of 20 MiB a file",
    "fifo": "pipe is not a regular file",
    "invalid_json": "is not valid JSON",
    "non_utf8": "is not UTF-8 text",
    "test_marked_solution": "(q1_1_terms) is marked grade/solution/locked (code), released as grade/locked",
    "unknown_grade_id": "grade id 'q9_answer' is not a cell of the released notebook",
    "duplicated_grade_id": "grade id 'q1_2_answer' appears twice",
    "answer_marked_grade": "(q1_2_answer) is marked grade/solution (code), released as solution (code)",
}
NOTEBOOK_SECONDS = 60  # slow_hook sleeps 8 s before each of 13 code cells
PLANTED = "privileges"  # the kind whose autograded folder gets a link before generate_feedback
SENTINEL = "# my own work, not to be overwritten\n"


def fresh_clone(dst: Path) -> Path:
    """The course as cloned: configuration, grader, library and solutions; exercises/ holds a student's work; no
    grading/ yet."""
    dst.mkdir(parents=True)
    shutil.copy(G.ROOT / "nbgrader_config.py", dst / "nbgrader_config.py")
    for d in ("solutions", "grader", "grader_probe", "simclr_core"):
        shutil.copytree(G.ROOT / d, dst / d, ignore=shutil.ignore_patterns("__pycache__"))
    (dst / "exercises" / A1).mkdir(parents=True)
    (dst / "exercises" / A1 / f"{A1}.ipynb").write_text(SENTINEL, encoding="utf-8")
    with open(dst / "nbgrader_config.py", "a", encoding="utf-8") as fh:  # keep slow_hook shorter
        fh.write(f"\nc.SandboxedExecute.notebook_timeout = {NOTEBOOK_SECONDS}\n")
    return dst


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")
    root = fresh_clone(tmp_path_factory.mktemp("hostile") / "course")
    for kind in ["correct", *GRADED, *REFUSED]:  # built from this repository's exercises, not the clone's
        H.submit(G.ROOT, kind, root / "grading" / "submitted" / kind / A1)
    grade = subprocess.run([sys.executable, "-m", "grader.grade", A1, A2], cwd=root, env=G.env(),
                           capture_output=True, text=True, timeout=1800)
    # a link that reached an autograded folder some other way (a plain `nbgrader autograde`, say)
    os.symlink(f"../../../../solutions/{A1}/{A1}.ipynb", _autograded(root, PLANTED).parent / "notes.txt")
    feedback = G.nbgrader("generate_feedback", A1, cwd=root)
    export = G.nbgrader("export", "--to=grades.csv", cwd=root)
    rows = {}
    if (root / "grades.csv").exists():
        with open(root / "grades.csv", newline="", encoding="utf-8") as fh:
            rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(fh)}
    return root, grade, feedback, export, rows


def _summary(grade) -> dict[str, str]:
    """student -> "score / max  status" of the ps1 table the grading printed."""
    block = grade.stdout.split(f"{A1}: ", 2)[-1].split(f"\n\n{A2}")[0].split("\n\nclass report")[0]
    return {line.split()[0]: line for line in block.splitlines()[2:] if line.strip()}


def _autograded(root: Path, kind: str) -> Path:
    return root / "grading" / "autograded" / kind / A1 / f"{A1}.ipynb"


@pytest.mark.slow
def test_the_batch_grades_everyone_and_prints_the_summary(course):
    root, grade, _, _, _ = course
    assert grade.returncode == 0, grade.stderr[-3000:]
    lines = _summary(grade)
    assert set(lines) == {"correct", *GRADED, *REFUSED}, grade.stdout
    assert "11 / 11" in lines["correct"] and lines["correct"].endswith("graded")
    # a problem set no one has handed in is not "missing" for everyone
    assert f"{A2}: {len(lines)} students, not handed out yet" in grade.stdout, grade.stdout


@pytest.mark.slow
def test_a_fresh_clone_grades_without_touching_exercises(course):
    root, _, _, _, _ = course
    assert (root / "exercises" / A1 / f"{A1}.ipynb").read_text(encoding="utf-8") == SENTINEL
    assert sorted(p.name for p in (root / "exercises").iterdir()) == [A1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_malformed_submission_needs_review_with_its_reason(course, kind):
    root, grade, _, _, rows = course
    line = _summary(grade)[kind]
    assert "needs review: " in line and REFUSED[kind] in line, line
    assert rows[(A1, kind)]["status"].startswith("needs review: ") and rows[(A1, kind)]["score"] == ""
    assert not (root / "grading" / "autograded" / kind).exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kernel_symlinks_gradebook", "kernel_symlinks_neighbour"])
def test_the_kernel_cannot_write_through_a_link(course, kind):
    root, grade, _, _, _ = course
    with sqlite3.connect(root / "grading" / "gradebook.db") as db:  # still a database, with every grade in it
        assert db.execute("select count(*) from submitted_assignment").fetchone()[0] == 1 + len(GRADED)
    assert not _autograded(root, kind).is_symlink()
    assert "11 / 11" in _summary(grade)[kind]
    neighbour = nbformat.read(_autograded(root, "correct"), 4)
    assert "STUDENT_ID = 'correct'" in neighbour.cells[1].source


@pytest.mark.slow
def test_no_link_is_followed_into_the_grading_folders(course):
    root, grade, feedback, _, _ = course
    # feedback for everyone graded but the one whose folder holds a link: refused, loudly
    assert feedback.returncode == 1 and f"notes.txt in {PLANTED}'s {A1} is a link" in feedback.stdout + \
        feedback.stderr, feedback.stderr[-3000:]
    graded = {s for s, line in _summary(grade).items() if " - / " not in line}  # those with a score
    fed = {p.name for p in (root / "grading" / "feedback").iterdir() if (p / A1 / f"{A1}.html").is_file()}
    assert fed == graded - {PLANTED}
    assert unsafe_entries(root / "grading" / "autograded") == [f"{PLANTED}/{A1}/notes.txt"]
    assert unsafe_entries(root / "grading" / "feedback") == []
    for path in (root / "grading" / "feedback").rglob("*"):
        assert path.name != "notes.txt", path
        assert not (path.is_file() and b"BEGIN SOLUTION" in path.read_bytes()), path
    for path in (root / "grading" / "autograded").rglob("*"):
        assert path.is_symlink() or not (path.is_file() and b"BEGIN SOLUTION" in path.read_bytes()), path


@pytest.mark.slow
def test_a_forged_status_is_ignored(course):
    root, grade, _, export, rows = course
    line = _summary(grade)["forged_status"]
    assert "11 / 11" in line and line.endswith("graded"), line
    meta = nbformat.read(_autograded(root, "forged_status"), 4).metadata.get("simclr_grading", {})
    assert set(meta) == {"verdicts"}, meta  # only the checks' own record of each cell: nothing forged survives
    assert meta["verdicts"] and all(v["fraction"] == 1.0 and not v["mistakes"] for v in meta["verdicts"].values())
    assert export.returncode == 0, export.stderr[-2000:]
    assert rows[(A1, "forged_status")]["status"] == "graded" and rows[(A1, "forged_status")]["notes"] == ""


@pytest.mark.slow
def test_the_export_is_complete(course):
    _, grade, _, _, rows = course
    students = set(_summary(grade))
    assert {s for a, s in rows if a == A1} == students
    assert {rows[(A2, s)]["status"] for s in students} == {"not assigned"}
    assert {rows[(A2, s)]["score"] for s in students} == {""}


@pytest.mark.slow
@pytest.mark.parametrize("kind, note", [
    ("memory_hog", f"stopped: used more than {DEFAULT.memory_bytes >> 30} GiB of memory in cell #"),
    ("disk_hog", f"stopped: wrote more than {DEFAULT.disk_bytes >> 20} MiB to disk in cell #"),
    ("huge_print", f"output beyond {DEFAULT.output_bytes >> 20} MiB dropped"),
    ("slow_hook", f"stopped: the notebook ran past {NOTEBOOK_SECONDS} s"),
])
def test_a_limit_stops_only_that_submission_with_a_clear_status(course, kind, note):
    root, grade, _, _, _ = course
    line = _summary(grade)[kind]
    assert note in line, line
    if kind != "slow_hook":  # its hook ran before every cell: the cells after the time ran out score nothing
        assert "11 / 11" in line, line
    assert _autograded(root, kind).stat().st_size < DEFAULT.output_bytes + (1 << 20)
    assert not list((root / "grading").rglob("filler.bin"))


@pytest.mark.slow
def test_the_sandbox_has_no_privileges(course):
    root, _, _, _, _ = course
    nb = nbformat.read(_autograded(root, "privileges"), 4)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "PRIVILEGES uid 1000 CapEff 0000000000000000 Seccomp 2 unshare -1 ptrace -1" in text, text


@pytest.mark.slow
def test_a_submission_that_breaks_the_kernel_has_a_status(course):
    line = _summary(course[1])["patched_json_dumps"]
    assert "/ 11" in line and ("graded" in line or "needs review" in line), line


# ---------------------------------------------------------------- seconds-long unit tests


@pytest.fixture(scope="module")
def released():
    """The released cells of ps1, as the gradebook would hold them, from the exercises notebook."""
    nb = nbformat.read(G.ROOT / "exercises" / A1 / f"{A1}.ipynb", 4)
    out = {}
    for c in nb.cells:
        m = c.metadata.get("nbgrader", {})
        if any(m.get(f) for f in intake.FLAGS):
            out[m["grade_id"]] = intake.ReleasedCell(c.cell_type, tuple(bool(m.get(f)) for f in intake.FLAGS))
    return {A1: out}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_intake_refuses_each_malformed_submission(tmp_path, released, kind):
    folder = H.submit(G.ROOT, kind, tmp_path / kind / A1)
    why = intake.check_submission(folder, released)
    assert why is not None and REFUSED[kind] in why, why


def test_intake_accepts_the_right_answers_and_refuses_an_odd_id(tmp_path, released):
    folder = H.submit(G.ROOT, "alice", tmp_path / "alice" / A1)
    assert intake.check_submission(folder, released) is None
    small = intake.IntakeLimits(file_bytes=1 << 10)
    assert f"{A1}.ipynb is " in intake.check_submission(folder, released, small)
    assert "above the limit of 1 KiB a file" in intake.check_submission(folder, released, small)
    odd = H.submit(G.ROOT, "alice", tmp_path / "al ice" / A1)
    assert "is not letters, digits" in intake.check_submission(odd, released)
    linked = tmp_path / "mallory"
    linked.symlink_to(tmp_path / "alice")
    assert "is a link" in intake.check_submission(linked / A1, released)


def test_review_records_are_read_back_and_a_bad_one_still_needs_review(tmp_path):
    intake.write_review(tmp_path, A1, "bob", "notes.txt is a symbolic link")
    assert intake.read_review(tmp_path, A1, "bob") == "notes.txt is a symbolic link"
    intake.review_path(tmp_path, A1, "eve").write_text("[1, 2", encoding="utf-8")
    assert intake.read_review(tmp_path, A1, "eve") == "its review record is unreadable"
    assert intake.reviewed_students(tmp_path, A1) == ["bob", "eve"]
    intake.clear_review(tmp_path, A1, "bob")
    assert intake.read_review(tmp_path, A1, "bob") is None


@pytest.mark.parametrize("forged", [H.FORGED, {"timed_out": 5}, {"kernel_died_in": ["x"]}, [1], "x",
                                    {"limits": {"memory": "q1"}, "notebook_time_limit": {"seconds": "1"}},
                                    {"answers_for_other_students": {"q1": [1]}, "output_dropped": {"kept": -1}}])
def test_malformed_status_values_never_raise(forged):
    cleaned = status.clean_meta(forged)
    assert isinstance(status.notes(forged), list)
    assert "timed_out" not in cleaned and "limits" not in cleaned


def test_a_submissions_own_status_is_stripped():
    nb = nbformat.v4.new_notebook(metadata={"simclr_grading": H.FORGED})
    nb.cells.append(nbformat.v4.new_code_cell("1", metadata={"simclr_grading": {"x": 1}}))
    nb, _ = StripGradingMetadata().preprocess(nb, {})
    assert "simclr_grading" not in nb.metadata and "simclr_grading" not in nb.cells[0].metadata


@NEEDS_BWRAP
def test_the_sandbox_command_applies_every_limit(tmp_path):
    from grader.sandbox import disposable_copy, run_argv

    argv = run_argv(["true"], tmp_path / "work", {"SIMCLR_STUDENT_ID": "x", "SECRET": "y"})
    joined = " ".join(argv)
    for option in ("--cap-drop ALL", "--uid 1000", "--disable-userns", f"--data={DEFAULT.memory_bytes}",
                   f"--size {DEFAULT.disk_bytes} --tmpfs {tmp_path / 'work'}"):
        assert option in joined, option
    # the kernel counts every task of the user against RLIMIT_NPROC: the sandbox's allowance comes on top
    running = int(joined.split("--nproc=")[1].split()[0]) - DEFAULT.processes
    assert running > 0 and abs(running - user_tasks()) <= max(50, user_tasks() // 2), (running, user_tasks())
    assert "SECRET" not in joined
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    os.symlink("/etc/passwd", src / "link")
    os.mkfifo(src / "pipe")
    assert sorted(disposable_copy(src, tmp_path / "copy")) == ["link", "pipe"]
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["a.txt"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_errors_a_limit_causes_are_named():
    from grader.guards import limit_hits

    nb = nbformat.v4.new_notebook()
    errors = [("RuntimeError", "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 6442450944 bytes. Error code 12 (Cannot allocate memory)"),
              ("MemoryError", ""), ("OSError", "[Errno 28] No space left on device"),
              ("BlockingIOError", "[Errno 11] Resource temporarily unavailable"), ("ValueError", "[Errno 28] x"),
              ("RuntimeError", "Error code 28 is not a limit of this cell"), ("OSError", "[Errno 2] No such file")]
    for ename, evalue in errors:
        cell = nbformat.v4.new_code_cell("pass")
        cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])]
        nb.cells.append(cell)
    # the errno decides, in the errors of the operating system and of PyTorch's allocator only
    assert limit_hits(nb, lambda c: None) == {"memory": ["#1", "#2"], "disk": ["#3", "#6"], "processes": ["#4"]}


@pytest.mark.slow
def test_grading_again_leaves_what_was_graded(course):
    """Run after the link planted for generate_feedback: the second run finds it and removes it."""
    root, first, _, _, _ = course
    again = subprocess.run([sys.executable, "-m", "grader.grade", A1], cwd=root, env=G.env(), capture_output=True,
                           text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    before, after = _summary(first), _summary(again)
    graded = [s for s, line in before.items() if " - / " not in line]  # those with a score
    failed = len(before) - len(REFUSED) - len(graded)  # what nbgrader could not grade is tried again
    assert f"{A1}: {len(before)} submitted, {len(REFUSED)} refused at intake, {len(graded)} graded before " \
           f"and unchanged, grading {failed}" in again.stdout, again.stdout
    assert after.pop(PLANTED).endswith("needs review: its autograded folder held notes.txt (not a regular file; "
                                       "removed)")
    assert not (_autograded(root, PLANTED).parent / "notes.txt").exists()
    assert after == {s: line for s, line in before.items() if s != PLANTED}


def test_every_bad_kernel_message_is_one_error():
    """A kernel whose json.dumps was replaced packs every message to the same text: the client reads a message
    that is not JSON, or one whose signature repeats an earlier one's, depending on which channel it reads first.
    Both are one error, so the submission's status does not depend on timing."""
    from grader.sandbox import CheckedKernelManager, MalformedKernelMessage

    session = CheckedKernelManager().session
    kernel = session.clone()  # the kernel's side: same key
    good = kernel.serialize(kernel.msg("status", {"execution_state": "idle"}))[1:]  # after the delimiter
    assert session.deserialize(good)["content"] == {"execution_state": "idle"}
    with pytest.raises(MalformedKernelMessage, match="Duplicate Signature"):
        session.deserialize(good)
    kernel.pack = lambda obj: b"{"
    broken = kernel.serialize(kernel.msg("status", {"execution_state": "idle"}))[1:]
    with pytest.raises(MalformedKernelMessage, match="JSONDecodeError"):
        session.deserialize(broken)
    with pytest.raises(MalformedKernelMessage, match="Duplicate Signature"):
        session.deserialize(broken)
    with pytest.raises(MalformedKernelMessage, match="Invalid Signature"):
        session.deserialize([b"0" * 64, *good[1:]])
