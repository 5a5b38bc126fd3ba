"""Hostile submissions of problem set 1, aimed at the grading machinery rather than at the score of one answer.

``submit(root, kind)`` writes the submission ``kind`` into ``grading/submitted/<kind>/ps1_similarity_matrix/`` of
the course at ``root``; each starts from the right answers (tests/submissions.py, kind "correct") graded as the
student id ``kind``, so whatever it costs beyond 11/11 is the attack's. ``KINDS`` says what each one tries.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import nbformat

from . import submissions

A1 = "ps1_similarity_matrix"
# a code cell added at the end: it has no points, so the score shows whether the machinery held
TAIL = {
    # the kernel's folder is the autograded folder: put the gradebook where nbgrader writes the executed notebook
    "kernel_symlinks_gradebook": f"""import os
os.remove("{A1}.ipynb")
os.symlink("../../../gradebook.db", "{A1}.ipynb")
""",
    # ... or another student's autograded notebook
    "kernel_symlinks_neighbour": f"""import os
os.remove("{A1}.ipynb")
os.symlink("../../correct/{A1}/{A1}.ipynb", "{A1}.ipynb")
""",
    "memory_hog": "_hog = bytearray(3 << 30)\n_hog[::4096] = b'x' * len(_hog[::4096])\n",
    "disk_hog": "with open('filler.bin', 'wb') as _f:\n    for _ in range(300):\n        _f.write(b'x' * (1 << 20))\n",
    "huge_print": "print('x' * (50 << 20))\n",
    "privileges": """import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
_st = {l.split(':')[0]: l.split(':')[1].strip() for l in open('/proc/self/status')}
print("PRIVILEGES uid", os.getuid(), "CapEff", _st["CapEff"], "Seccomp", _st["Seccomp"],
      "unshare", _libc.unshare(0x10000000), "ptrace", _libc.ptrace(0, 0, 0, 0))
""",
}
# the first cell (the student id) registers a hook that runs before every cell
HEAD = {"slow_hook": "import time\nget_ipython().events.register('pre_run_cell', lambda *a: time.sleep(8))\n",
        "patched_json_dumps": "import json\njson.dumps = lambda *a, **k: '{'\n"}
FORGED = {"kernel_died_in": "q1_1_answer", "answers_for_other_students": {"q1_1_terms": ["correct"]},
          "timed_out": 5, "edited_tests": "q1_2", "limits": {"memory": 3}}
KINDS = {
    **{k: "runs code in the kernel" for k in [*TAIL, *HEAD]},
    "forged_status": "carries a grading status in its metadata",
    "notes_symlink": "a file notes.txt linking to the solutions",
    "big_file": "a 30 MB data file next to the notebook",
    "fifo": "a FIFO next to the notebook",
    "invalid_json": "a notebook that is not JSON",
    "non_utf8": "a notebook with bytes that are not UTF-8",
    "test_marked_solution": "a test cell marked as an answer",
    "unknown_grade_id": "an answer cell with a grade id the problem set does not have",
    "duplicated_grade_id": "an answer cell twice",
    "answer_marked_grade": "an answer cell marked as a graded test worth 100 points",
}


def _correct(root: Path, kind: str):
    nb = submissions.build(root, A1, "correct")
    submissions._set_id(submissions._cells(nb), kind)
    return nb


def _cell(nb, gid: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def _notebook(root: Path, kind: str):
    nb = _correct(root, kind)
    if kind in TAIL:
        nb.cells.append(nbformat.v4.new_code_cell(TAIL[kind]))
    elif kind in HEAD:
        _cell(nb, "student_id").source += "\n" + HEAD[kind]
    elif kind == "forged_status":
        nb.metadata["simclr_grading"] = copy.deepcopy(FORGED)
    elif kind == "test_marked_solution":
        _cell(nb, "q1_1_terms").metadata["nbgrader"]["solution"] = True
    elif kind == "unknown_grade_id":
        _cell(nb, "q1_2_answer").metadata["nbgrader"]["grade_id"] = "q9_answer"
    elif kind == "duplicated_grade_id":
        twin = copy.deepcopy(_cell(nb, "q1_2_answer"))
        twin.id = "twin-of-q1-2-answer"  # a cell id of its own: only the grade id is duplicated
        nb.cells.append(twin)
    elif kind == "answer_marked_grade":
        _cell(nb, "q1_2_answer").metadata["nbgrader"].update(grade=True, points=100)
    return nb


def submit(root: Path, kind: str, folder: Path | None = None) -> Path:
    """Write the submission ``kind``, built from the course at ``root``, into ``folder`` (default: the course's
    ``grading/submitted/<kind>/ps1_similarity_matrix``); returns the folder."""
    folder = folder or root / "grading" / "submitted" / kind / A1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{A1}.ipynb"
    if kind == "invalid_json":
        path.write_text('{"cells": [', encoding="utf-8")
        return folder
    if kind == "non_utf8":
        raw = nbformat.writes(_notebook(root, kind)).encode("utf-8")
        path.write_bytes(raw.replace(b"STUDENT_ID", b"\xffSTUDENT_ID", 1))
        return folder
    nbformat.write(_notebook(root, kind), path)
    if kind == "notes_symlink":
        os.symlink(f"../../../../solutions/{A1}/{A1}.ipynb", folder / "notes.txt")
    elif kind == "big_file":
        (folder / "data.bin").write_bytes(b"\0" * (30 << 20))
    elif kind == "fifo":
        os.mkfifo(folder / "pipe")
    return folder
