"""Attacks on the grader itself, through the real `nbgrader autograde` in the bubblewrap sandbox.

The attacks' course of the session's graded courses (``graded_course``, tests/conftest.py) holds every attack of
tests/submissions.py (``ATTACK_KINDS``, ``LIBRARY_KINDS``): forged values displayed by an IPython hook, a replaced
report function, a rewritten ``session.pack`` or a finalizer; library functions reached through ``sys.modules``,
the visible test's alias or a cell of the student's own; a gradient set by hand; and what the feedback must not
reveal (hidden inputs, who is on the roster) or must still say (the named mistake behind a failing visible assert,
an IPython command refused by name).
"""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from grader_probe import inputs as I

from . import grade_kinds as G

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")]
A1, A2, A3, A4 = G.ASSIGNMENTS


@pytest.fixture(scope="module")
def graded(graded_course):
    """The attacks' course of the session's graded courses (tests/conftest.py)."""
    root, procs, res = graded_course["attacks"]
    for a, proc in procs.items():
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root, res


def _text(msgs: dict) -> str:
    return "\n".join(msgs.values())


def _status(root, a, kind) -> dict:
    nb = nbformat.read(root / "grading" / "autograded" / kind / a / f"{a}.ipynb", 4)
    return dict(nb.metadata.get("simclr_grading", {}))


@pytest.mark.parametrize("a, kind", [(A1, "forged_hook"), (A1, "replaced_report"), (A1, "wrapped_pack"),
                                     (A1, "finalizer_payload"), (A3, "forged_hook")])
def test_values_forged_in_the_kernel_score_nothing(graded, a, kind):
    """Blank or wrong answers earn what they earn whatever the kernel displays: the values come from a fresh
    process. The wrong answers (0.5 everywhere) earn only 1.4's "returns a 0-d tensor" (a third of 2 points)."""
    score, _, msgs = graded[1][a][kind]
    passes = [line for line in _text(msgs).splitlines() if line.startswith("PASS")]
    if kind == "forged_hook":
        assert score == 0 and not passes, (kind, msgs)
    else:
        assert score == pytest.approx(2 / 3, abs=0.01) and passes == ["PASS  returns a 0-d (scalar) tensor"], msgs


@pytest.mark.parametrize("kind, score, missing", [
    ("library_sys_modules", 3, "anchor_losses is not defined"),  # 1.3's function and L_batch, 1.4 (8 points)
    ("library_alias", 8, "anchor_losses raised NameError"),  # 1.3's function and L_batch (3 points)
    ("library_unmarked_cell", 6, "No module named 'simclr_core.nn'"),  # 1.4 (5 points)
])
def test_library_functions_do_not_exist_when_graded(graded, kind, score, missing):
    got, _, msgs = graded[1][A1][kind]
    assert got == pytest.approx(score), (kind, msgs)
    assert missing in _text(msgs), msgs


def test_library_in_a_problem_set_without_a_rule(graded):
    score, _, msgs = graded[1][A2]["library_ps2"]
    assert score == pytest.approx(6 - 4 / 3 - 1, abs=0.01), msgs  # share_low, share_high and L_batch_high
    assert "No module named 'simclr_core.nn'" in _text(msgs)
    assert graded[1][A2]["correct"][0] == 6


def test_a_gradient_set_by_hand_is_not_a_backward_pass(graded):
    score, _, msgs = graded[1][A3]["fake_grad"]
    assert score == pytest.approx(6 - 2 / 3, abs=0.01), msgs
    assert "do not set it by hand" in msgs["q3_1a"] or "call loss.backward()" in msgs["q3_1a"], msgs
    right, _, ok = graded[1][A3]["correct"]
    assert right == 6 and "loss.backward() filled z1.grad" in ok["q3_1a"], ok


def test_feedback_shows_no_hidden_input(graded):
    score, _, msgs = graded[1][A4]["queue_wrong"]
    assert score == 4, msgs
    assert "queue_after returned 1 values on test input 2 of 7, expected 5" in msgs["q4_2b_queue"], msgs
    text = _text(msgs).replace(" ", "")
    for batches, K in I.QUEUE_CASES[1:]:
        if batches:
            assert repr(batches).replace(" ", "") not in text, (batches, msgs)


def test_no_roster_oracle(graded):
    """A neighbour's numbers and a stranger's get the same message; only the instructor learns whose they are."""
    root, res = graded
    mine, stranger = res[A1]["copied_numbers"][2], res[A1]["stranger_numbers"][2]
    number = re.compile(r"= -?[0-9.e+-]+ is wrong")

    def same(msg, own_id):
        return number.sub("= X is wrong", msg).replace(repr(own_id), "'ID'")

    for gid in ("q1_1_loss", "q1_2", "q1_3_batch"):
        assert "FAIL" in mine[gid] and "FAIL" in stranger[gid], (mine, stranger)
        assert same(mine[gid], "copied_numbers") == same(stranger[gid], "stranger_numbers")
        assert "another student" not in mine[gid] + stranger[gid]
    assert _status(root, A1, "copied_numbers")["answers_for_other_students"]["q1_1_loss"] == ["correct"]
    assert "answers_for_other_students" not in _status(root, A1, "stranger_numbers")


def test_the_named_mistake_survives_a_failing_visible_assert(graded):
    score, _, msgs = graded[1][A1]["anchor_no_tau"]
    assert "the similarities are not divided by the temperature tau" in msgs["q1_3_anchor"], msgs
    assert "AssertionError" not in _text(msgs)
    assert score == 9 - 1, msgs  # anchor_losses (2) and L_batch, computed from it (1)


def test_an_ipython_command_is_refused_by_name(graded):
    _, _, msgs = graded[1][A1]["magic_line"]
    assert "line 1 is an IPython command ('%matplotlib inline')" in msgs["q1_1_terms"], msgs
    assert "PASS  L_34 is right" in msgs["q1_2"]


def test_right_answers_still_score_everything(graded):
    assert graded[1][A1]["correct"][0] == 11
    assert "FAIL" not in _text(graded[1][A1]["correct"][2])


# ------------------------------------------------------------------------------------------ the runner on its own
@pytest.fixture(scope="module")
def runner():
    from grader.harness import Runner

    with Runner(A1, "alice", cell_timeout=3) as r:
        yield r


def _decoded(run, name):
    from grader.verdict import value

    return value(run.values, name)


def test_each_check_runs_in_a_fresh_process(runner):
    """What one check's cells leave behind (a patched builtin) is gone in the next: each check gets a fresh fork."""
    cells = [("a", "import builtins\nbuiltins.seen = getattr(builtins, 'seen', 0) + 1\nL_12 = float(builtins.seen)")]
    assert [_decoded(runner.check("q1_1_loss", cells, {}), "L_12") for _ in range(3)] == [1.0, 1.0, 1.0]


def test_a_cell_that_hangs_or_exits_is_skipped_by_name(runner):
    skipped = {}
    cells = [("q1_1_answer", "L_12 = 0.25"), ("loop", "while True:\n    pass"), ("bye", "import os\nos._exit(3)"),
             ("q1_2_answer", "L_34 = 0.5")]
    run = runner.check("q1_2", cells, skipped)
    assert skipped == {"loop": "was stopped at the time limit", "bye": "ended its process"}
    assert _decoded(run, "L_34") == 0.5


def test_the_grading_library_has_the_numbers_but_not_the_answers(runner):
    cells = [("q1_1_answer", "import importlib\nout = []\n"
                             "for m in ('simclr_core.teaching.variants', 'simclr_core.teaching.sheet', "
                             "'simclr_core.nn.loss', 'simclr_core.eval.diagnostics', 'grader', 'grader.reference'):\n"
                             "    try:\n        importlib.import_module(m)\n        out.append(1)\n"
                             "    except ImportError:\n        out.append(0)\n"
                             "L_12 = float(int(''.join(map(str, out)), 2))")]
    assert _decoded(runner.check("q1_1_loss", cells, {}), "L_12") == float(0b110000)


def test_nothing_but_values_comes_back(runner):
    """A cell that writes a forged reply on every descriptor it can find changes nothing but its own values."""
    cells = [("a", "import os, json, struct\nfor fd in range(3, 64):\n    try:\n"
                   "        b = json.dumps({'stopped': 'setup', 'why': 'exit'}).encode()\n"
                   "        os.write(fd, struct.pack('>I', len(b)) + b)\n    except OSError:\n        pass\n"
                   "L_12 = 0.75")]
    run = runner.check("q1_1_loss", cells, {})
    assert run.values is None or _decoded(run, "L_12") == 0.75
    assert _decoded(runner.check("q1_1_loss", [("b", "L_12 = 0.5")], {}), "L_12") == 0.5
