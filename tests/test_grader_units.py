"""The trusted checker's parts without nbgrader: comparisons, named mistakes, decoding, forbidden shortcuts."""

import math

import pytest

from grader import CHECKS, reference as R, shortcuts
from grader.problems import model_answers, problem
from grader.verdict import Missing, decode
from grader_probe import RECIPES, number


P1 = problem("ps1_similarity_matrix", "anyone")
M, TAU = P1["S"], P1["tau"]


def test_every_recipe_has_a_check_and_back():
    assert set(RECIPES) == set(CHECKS)


def test_close_is_plain_arithmetic_and_refuses_nan():
    assert R.close(1.0, 1.0005) and not R.close(1.0, 1.01)
    assert not R.close(math.nan, 1.0) and not R.close(math.nan, math.nan) and R.close(math.inf, math.inf)


@pytest.mark.parametrize("mistake", sorted(R.MISTAKES))
def test_each_per_anchor_mistake_is_named(mistake):
    got = R.anchor_loss(M, 0, 1, TAU, mistake)
    ok, why = R.match(got, R.loss_candidates(M, 0, 1, TAU))
    assert not ok and why == R.MISTAKES[mistake]


def test_the_one_way_mean_is_named():
    p = problem("ps1_similarity_matrix", "anyone")
    got = R.batch_loss(p["S"], p["positives"], p["tau"], combine="one_way")
    ok, why = R.match(got, R.batch_candidates(p["S"], p["positives"], p["tau"]))
    assert not ok and why == R.BATCH_MISTAKES["one_way"]
    assert R.match(R.batch_loss(p["S"], p["positives"], p["tau"]),
                   R.batch_candidates(p["S"], p["positives"], p["tau"]))[0]


@pytest.mark.parametrize("student", ["anyone", "alice", "bob", "s0001", "instructor"])
def test_ps2_model_answer_holds_on_every_variant(student):
    """The model answer of 2.1(d): at the higher temperature the positive's share drops and the loss rises."""
    m = model_answers("ps2_temperature", student)
    assert m["share_high"] < m["share_low"]
    assert m["L_batch at tau_low (for 2.1(d))"] < m["L_batch_high"] < m["loss_limit"] == pytest.approx(math.log(5))


def test_fair_number_types():
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    for v in (0.25, np.float32(0.25), np.float64(0.25), torch.tensor(0.25), torch.tensor([0.25])):
        assert number(v) == 0.25
    for bad in (True, "0.25", [0.25], torch.ones(2)):
        with pytest.raises(TypeError):
            number(bad)


def test_decode_refuses_what_a_kernel_could_smuggle():
    assert decode([(0.5).hex(), 3]) == [0.5, 3]
    for bad in (True, None, "not-a-float", {"x": object()}):
        with pytest.raises(Missing):
            decode(bad)


def test_check_reads_values_not_verdicts():
    right = {"L_12": {"v": R.anchor_loss(M, 0, 1, TAU).hex()}}
    assert CHECKS["q1_1_loss"](right, P1).fraction == 1.0
    assert CHECKS["q1_1_loss"](right, problem("ps1_similarity_matrix", "x")).fraction == 0.0  # another variant
    for forged in ({"L_12": {"v": "inf"}}, {"L_12": {"passed": True}}, {}, {"L_12": {"error": "boom"}}):
        assert CHECKS["q1_1_loss"](forged, P1).fraction == 0.0


@pytest.mark.parametrize("source", [
    "from simclr_core.nn.loss import nt_xent\nreturn nt_xent(z1, z2)",
    "import simclr_core.nn.loss as L\nL.nt_xent(z1, z2, 0.5)",
    "f = getattr(__import__('simclr_core.nn.loss', fromlist=['x']), 'nt_xent')",
    "from importlib import import_module\nm = import_module('simclr_core')",
])
def test_forbidden_shortcuts_are_found(source):
    found = shortcuts.violations({"q1_4_answer": source})
    assert set(found) == {"q1_4_visible", "q1_4_hidden"} and "do not call" in found["q1_4_hidden"]


def test_comments_and_own_code_are_not_shortcuts():
    src = "# unlike simclr_core's nt_xent, a loop\ndef nt_xent_vectorised(z1, z2, tau):\n    return z1.sum()"
    assert shortcuts.violations({"q1_4_answer": src, "q1_3_answer": "x = 1  # no simclr_core"}) == {}
