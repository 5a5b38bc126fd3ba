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


# ------------------------------------------------------------------------------------------ attacks on the grader
# Each attack below answers nothing itself (blank answers or 0.5 everywhere) and tries to make the grader see right
# values anyway: computed with the library (the namespace _ns of LIBRARY_ANSWERS) and slipped in through IPython
# machinery, or taken from the library where the problem set asks for the student's own code.
VALUES_MIME = "application/vnd.simclr-grader.values+json"
LIBRARY_ANSWERS = """
import math, torch
from simclr_core.nn import loss as _L
from simclr_core.teaching.variants import my_variant as _mv
_V = _mv(STUDENT_ID)
_S = torch.tensor(_V.matrix(), dtype=torch.float64)
_ns = {"VARIANT": _V, "anchor_losses": lambda S, p, t: _L.info_nce_from_similarity(S, p, t).tolist(),
       "nt_xent_vectorised": lambda a, b, t: _L.nt_xent(a, b, temperature=t)}
_l = _ns["anchor_losses"](_S, list(_V.positives), _V.tau)
_ns.update(L_12=_l[0], L_34=_l[2], L_batch=sum(_l) / len(_l), numerator_12=math.exp(_V.S[0][1] / _V.tau))
_ns["denominator_12"] = _ns["numerator_12"] / math.exp(-_l[0])
_ns.update(loss_N1=0.0, grad_norm_N1=0.0, num_candidates=lambda n: 2 * n - 1, num_negatives=lambda n: 2 * n - 2,
           collapsed_loss=lambda n: math.log(2 * n - 1), mi_bound=lambda n, L: math.log(2 * n - 1) - L,
           max_bound=math.log(2 * _V.N_bound - 1), z1_single=torch.zeros(1, requires_grad=True))
_ns["z1_single"].grad = torch.zeros(1)
"""
FORGE = """
import grader_probe as _gp
from IPython.display import display as _display
def _forge(*_args):
    for _gid in _gp.RECIPES:
        try:
            _display({"%s": _gp.collect(_gid, _ns)}, raw=True)
        except Exception:
            pass
""" % VALUES_MIME
ATTACKS = {
    # an IPython hook displays forged values before every cell
    "forged_hook": FORGE + 'get_ipython().events.register("pre_run_cell", _forge)\n',
    # the hidden tests' report function replaced (visible asserts silenced as in patched_comparators)
    "replaced_report": (PATCH_COMPARATORS + FORGE + "_gp.report = lambda gid, ns: _display({'%s': _gp.collect(gid, "
                        "_ns)}, raw=True)\n" % VALUES_MIME),
    # every message the kernel sends is rewritten on its way out
    "wrapped_pack": PATCH_COMPARATORS + FORGE + """
_session = get_ipython().kernel.session
_pack = _session.pack
def _forged_pack(content):
    _data = content.get("data") if isinstance(content, dict) else None
    if isinstance(_data, dict) and "%s" in _data:
        _data["%s"] = _gp.collect(_data["%s"]["check"], _ns)
    return _pack(content)
_session.pack = _forged_pack
""" % (VALUES_MIME, VALUES_MIME, VALUES_MIME),
    # a finalizer, run whenever the garbage collector gets to it, displays forged values (and re-arms itself)
    "finalizer_payload": PATCH_COMPARATORS + FORGE + """
class _Bomb(torch.Tensor):
    def __del__(self):
        _forge()
        _arm()
def _arm():
    _b = torch.zeros(1).as_subclass(_Bomb)
    _b.cycle = [_b]  # freed by the cyclic garbage collector, in whichever cell it runs
_arm()
""",
}
LIBRARY_BY_NAME = """import sys
_L = sys.modules.get("simclr" + "_core.nn.loss") or __import__("importlib").import_module("simclr" + "_core.nn.loss")
"""


def _attack(nb, cells, answers, kind: str) -> None:
    """Build the attack ``kind`` (see ``ATTACKS``, ``LIBRARY_KINDS``) into the notebook."""
    if kind in ATTACKS:
        if kind == "forged_hook":  # every answer left blank
            for c in answers:
                c.source = "# YOUR CODE HERE\nraise NotImplementedError()"
        else:  # wrong answers that pass the (silenced) visible tests
            _zero_answers(answers)
            _replace(cells["q1_3_answer"], "return 0.5", "return [0.5] * len(S)")
            _replace(cells["q1_4_answer"], "return 0.5", "return torch.tensor(0.5)")
        cells[ID_CELL].source += "\n" + LIBRARY_ANSWERS + ATTACKS[kind]
    elif kind == "library_sys_modules":
        cells["q1_3_answer"].source = LIBRARY_BY_NAME + cells["q1_3_answer"].source.replace(
            "    n = S.shape[0]",
            "    return getattr(_L, 'info_nce' + '_from_similarity')(S, positives, tau).tolist()\n    n = S.shape[0]")
        cells["q1_4_answer"].source = LIBRARY_BY_NAME + (
            "def nt_xent_vectorised(z1, z2, tau):\n    return getattr(_L, 'nt' + '_xent')(z1, z2, temperature=tau)\n")
    elif kind == "library_alias":  # the name the visible test of 1.3 imports the library function as
        _replace(cells["q1_3_answer"], "    n = S.shape[0]",
                 "    return _library_losses(S, positives, tau).tolist()\n    n = S.shape[0]")
    elif kind == "library_unmarked_cell":  # the import in a cell of her own, the answer only uses the name
        extra = nbformat.v4.new_code_cell("from simclr_core.nn import loss as _lib")
        nb.cells.insert(nb.cells.index(cells["q1_4_answer"]), extra)
        cells["q1_4_answer"].source = ("def nt_xent_vectorised(z1, z2, tau):\n"
                                       "    return getattr(_lib, 'nt' + '_xent')(z1, z2, temperature=tau)\n")
    elif kind == "library_ps2":  # problem set 2 names no rule: its shares and batch loss from the library
        _replace(cells["q2_1_answer"], "share_low = positive_share(S, 0, 1, tau_low)",
                 "from simclr_core.nn.loss import info_nce_from_similarity as _lib\n"
                 "positive_share = lambda S, i, j, tau: math.exp(-float(_lib(S, positives, tau)[i]))\n"
                 "share_low = positive_share(S, 0, 1, tau_low)")
    elif kind == "fake_grad":  # ps3: the gradient set by hand, no backward pass
        cells["q3_1a_answer"].source = ("def loss_and_grad_norm(z1, z2, tau):\n    z1.grad = torch.zeros_like(z1)\n"
                                        "    return 0.0, 0.0\n\n\nloss_N1, grad_norm_N1 = 0.0, 0.0\n"
                                        "z1_single.grad = torch.zeros_like(z1_single)\n")
    elif kind == "queue_wrong":  # ps4: wrong on one hidden input only; its feedback must not show that input
        _replace(cells["q4_2b_answer"], "    queue = []",
                 "    if len(batches) == 3:\n        return [0]\n    queue = []")
    elif kind == "anchor_no_tau":  # a named mistake that the visible test of 1.3 catches first
        _replace(cells["q1_3_answer"], "numerator = math.exp(float(S[i, j]) / tau)",
                 "numerator = math.exp(float(S[i, j]))")
        _replace(cells["q1_3_answer"], "math.exp(float(S[i, k]) / tau) for k", "math.exp(float(S[i, k])) for k")
    elif kind == "stranger_numbers":  # the numeric answers of an id on no roster (compare: copied_numbers)
        done = [n for c in answers for n in hard_code(c, model_answers("ps1_similarity_matrix", STRANGER))]
        assert done
    elif kind == "magic_line":  # an IPython command in an answer: refused, by name, when graded
        cells["q1_1_answer"].source = "%matplotlib inline\n" + cells["q1_1_answer"].source
    else:
        raise ValueError(f"unknown submission kind {kind!r}")


def _zero_answers(answers) -> None:
    for c in answers:
        assigned = [t.id for node in ast.parse(c.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
        c.source = "\n".join(line if not line.lstrip().startswith("return") else line.split("return")[0]
                             + "return 0.5" for line in c.source.split("\n")) + "".join(f"\n{n} = 0.5"
                                                                                        for n in assigned)


LIBRARY_KINDS = ["library_sys_modules", "library_alias", "library_unmarked_cell", "library_ps2", "fake_grad",
                 "queue_wrong", "anchor_no_tau", "stranger_numbers", "magic_line"]
STRANGER = "nobody-on-the-roster"


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


def build(root: Path, a: str, kind: str, student: str | None = None, neighbour: str = NEIGHBOUR):
    """The notebook a student of ``kind`` submits; she types her id ``student`` (default: the kind's name), and
    the copying kinds copy ``neighbour``."""
    nb = solved(root, a)
    cells = _cells(nb)
    _set_id(cells, student or kind)  # the student types her own id
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
               and c.metadata["nbgrader"]["grade_id"] != ID_CELL]
    if kind == "correct":
        pass
    elif kind == "copied_numbers":  # her own id, the neighbour's numeric answers typed in (code answers kept)
        theirs = model_answers(a, neighbour) if a in VARIANT_ASSIGNMENTS else {}
        done = [n for c in answers for n in hard_code(c, theirs)]
        assert done or a not in VARIANT_ASSIGNMENTS, f"no numeric answer of {a} to copy"
    elif kind == "copied_notebook":  # the neighbour's notebook as it is, her id included
        _set_id(cells, neighbour)
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
    elif kind in ATTACKS or kind in LIBRARY_KINDS:
        _attack(nb, cells, answers, kind)
    else:
        raise ValueError(f"unknown submission kind {kind!r}")
    return nb
