"""Submissions of many kinds, built from the released notebook and the solutions, for the grading tests.

``build(root, assignment, kind)`` returns the notebook a student of that kind would submit, graded as the student
id ``kind`` (tests/grade_kinds.py submits it to ``grading/submitted/<kind>/``), so its STUDENT_ID is ``kind`` too.
The kinds follow what students (and cheaters) do: the right answers, nothing, each common mistake, values copied
from the worked example, a neighbour's numeric answers copied (the numbers of the student ``NEIGHBOUR``), a
neighbour's whole notebook with her id, a forbidden library call, patched comparison functions, an edited or
deleted test cell, an endless loop, a kernel crash, and attempts to read the instructor's files, write elsewhere
or use the network.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from grader.problems import VARIANT_ASSIGNMENTS, model_answers

NEIGHBOUR = "correct"  # the student whose answers the copying kinds copy (also submitted, as the kind "correct")
ID_CELL = "student_id"

PATCH_COMPARATORS = """import builtins, math, numpy, torch
math.isclose = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
numpy.isclose = numpy.allclose = lambda *a, **k: True
builtins.all = lambda *a, **k: True
"""
# every later cell, tests included, runs as an empty cell
BLANK_LATER_CELLS = "get_ipython().input_transformers_cleanup.append(lambda lines: [])\n"

READ_SOLUTIONS = """import glob, os, nbformat as _nbf
_found = [p for up in range(1, 8) for p in glob.glob("/".join([".."] * up) + "/solutions/*/*.ipynb")]
_found += glob.glob("/work*/**/solutions/ps1_similarity_matrix/*.ipynb", recursive=True)[:1]
print("solutions found:", _found[:2])
for _p in _found[:1]:
    for _c in _nbf.read(_p, 4).cells:
        if _c.cell_type == "code" and "BEGIN SOLUTION" in _c.source:
            exec(_c.source, globals())
"""
READ_GRADEBOOK = """import glob
_db = [p for up in range(1, 8) for p in glob.glob("/".join([".."] * up) + "/gradebook.db")]
print("gradebook found:", _db, [len(open(p, "rb").read()) for p in _db])
"""
WRITE_ELSEWHERE = """import glob, os
_targets = [d for up in range(1, 5) for d in glob.glob("/".join([".."] * up) + "/*/ps1_similarity_matrix")
            if os.path.realpath(d) != os.getcwd()]  # other students' folders and the course's own
_written = []
for _d in _targets + ["/tmp", os.path.expanduser("~")]:
    try:
        open(os.path.join(_d, "planted.txt"), "w").write("x")
        _written.append(_d)
    except OSError as e:
        pass
print("wrote into:", [d for d in _written if d != "/tmp"])
"""
NETWORK = """import socket
for _host in [("pypi.org", 443), ("127.0.0.1", 22), ("8.8.8.8", 53)]:
    try:
        socket.create_connection(_host, timeout=2).close()
        print("network reachable:", _host)
    except OSError as e:
        print("network blocked:", _host, type(e).__name__)
"""


def _strip_markers(src: str) -> str:
    return "\n".join(line for line in src.split("\n") if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)


def _cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def solved(root: Path, a: str):
    """The released notebook with every code answer filled in from the solutions."""
    nb = nbformat.read(root / "exercises" / a / f"{a}.ipynb", 4)
    source = _cells(nbformat.read(root / "solutions" / a / f"{a}.ipynb", 4))
    for c in nb.cells:
        g = c.metadata.get("nbgrader", {})
        if g.get("solution") and c.cell_type == "code":
            c.source = _strip_markers(source[g["grade_id"]].source)
    return nb


def _set_id(cells, student: str) -> None:
    if ID_CELL in cells:
        cells[ID_CELL].source = f"STUDENT_ID = {student!r}"


def hard_code(cell, values: dict) -> list[str]:
    """Replace the right-hand side of each top-level ``name = ...`` line of ``cell`` whose name is in ``values``
    with that number; returns the names replaced."""
    done, lines = [], []
    for line in cell.source.split("\n"):
        m = re.match(r"([A-Za-z_]\w*) = ", line)
        if m and m.group(1) in values:
            line = f"{m.group(1)} = {values[m.group(1)]!r}"
            done.append(m.group(1))
        lines.append(line)
    cell.source = "\n".join(lines)
    return done


def _replace(cell, old: str, new: str):
    assert old in cell.source, (old, cell.source)
    cell.source = cell.source.replace(old, new)


PS1_MISTAKES = {
    # kind: (answer cell, old text, new text)
    "self_in_denominator": ("q1_1_answer", "for k in range(6) if k != 0)",
                            "for k in range(6) if k != 0) + math.exp(1.0 / tau)"),
    "no_tau": ("q1_1_answer", "math.exp(S[0, 1].item() / tau)", "math.exp(S[0, 1].item())"),
    "negatives_only": ("q1_1_answer", "for k in range(6) if k != 0)", "for k in range(6) if k not in (0, 1))"),
    "log10": ("q1_1_answer", "L_12 = -math.log(", "L_12 = -math.log10("),
    "one_way_mean": ("q1_3_answer", "L_batch = sum(anchor_losses(S, positives, tau)) / 6",
                     "L_batch = sum(anchor_losses(S, positives, tau)[0::2]) / 3"),
}


def build(root: Path, a: str, kind: str):
    nb = solved(root, a)
    cells = _cells(nb)
    _set_id(cells, kind)  # the student types her own id
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
               and c.metadata["nbgrader"]["grade_id"] != ID_CELL]
    if kind == "correct":
        pass
    elif kind == "copied_numbers":  # her own id, the neighbour's numeric answers typed in (code answers kept)
        theirs = model_answers(a, NEIGHBOUR) if a in VARIANT_ASSIGNMENTS else {}
        done = [n for c in answers for n in hard_code(c, theirs)]
        assert done or a not in VARIANT_ASSIGNMENTS, f"no numeric answer of {a} to copy"
    elif kind == "copied_notebook":  # the neighbour's notebook as it is, her id included
        _set_id(cells, NEIGHBOUR)
    elif kind == "blank":
        nb = nbformat.read(root / "exercises" / a / f"{a}.ipynb", 4)
    elif kind in PS1_MISTAKES:
        gid, old, new = PS1_MISTAKES[kind]
        _replace(cells[gid], old, new)
    elif kind == "worked_example_values":  # the worked notebook's numbers (sheet matrix, tau = 0.1)
        answers[0].source = "from simclr_core.teaching.sheet import SEED_S as S, SEED_TAU as tau\n" + answers[0].source
    elif kind == "numpy_and_tensor_types":  # right values as numpy / 0-d tensor instead of Python floats
        for c in answers:
            c.source += ("\nimport numpy as _np\nfor _n in [k for k, v in list(globals().items()) if type(v) is float"
                         " and not k.startswith('_')]:\n    globals()[_n] = _np.float64(globals()[_n]) if len(_n) % 2 "
                         "else torch.tensor(globals()[_n])\n")
    elif kind == "forbidden_library":
        cells["q1_4_answer"].source = ("def nt_xent_vectorised(z1, z2, tau):\n"
                                       "    from simclr_core.nn.loss import nt_xent\n"
                                       "    return nt_xent(z1, z2, temperature=tau)\n")
    elif kind == "patched_comparators":  # wrong answers everywhere, comparison functions replaced first
        for c in answers:
            assigned = [t.id for node in ast.parse(c.source).body if isinstance(node, ast.Assign)
                        for t in node.targets if isinstance(t, ast.Name)]
            c.source = PATCH_COMPARATORS + "\n".join(
                line if not line.lstrip().startswith("return") else line.split("return")[0] + "return 0.5"
                for line in c.source.split("\n")) + "".join(f"\n{n} = 0.5" for n in assigned)
    elif kind == "blanked_later_cells":  # wrong answers, then every later cell (tests too) is emptied
        answers[0].source = BLANK_LATER_CELLS
    elif kind == "edited_test":
        gid = [g for g, c in cells.items() if c.metadata["nbgrader"].get("grade") and c.cell_type == "code"][0]
        cells[gid].source = "pass  # a test I did not like"
        answers[0].source = answers[0].source.replace("/ tau", "")  # and a wrong answer it would have caught
    elif kind == "deleted_test":
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
        nb.cells.remove(graded[0])
        answers[0].source = answers[0].source.replace("/ tau", "")
    elif kind == "infinite_loop":
        answers[1].source = "while True:\n    pass"
    elif kind == "kernel_crash":
        answers[1].source = "import os\nos._exit(1)"
    elif kind == "read_solutions":
        answers[0].source = READ_SOLUTIONS
    elif kind == "read_gradebook":
        answers[0].source = READ_GRADEBOOK + answers[0].source
    elif kind == "write_elsewhere":
        answers[0].source = WRITE_ELSEWHERE + answers[0].source
    elif kind == "network":
        answers[0].source = NETWORK + answers[0].source
    elif kind == "escape_attempts":  # all four attempts in one submission (keeps the tests short)
        answers[0].source = READ_GRADEBOOK + WRITE_ELSEWHERE + NETWORK + READ_SOLUTIONS
    else:
        raise ValueError(f"unknown submission kind {kind!r}")
    return nb
