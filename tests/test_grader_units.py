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


def test_the_one_way_mean_is_named_where_the_question_asks_for_2n_anchors():
    """Problem set 2 asks for the mean over all 2N anchors: there the one-way mean is a named mistake."""
    p = problem("ps2_temperature", "anyone")
    got = R.batch_loss(p["S"], p["positives"], p["tau_high"], combine="one_way")
    ok, why = R.match(got, R.batch_candidates(p["S"], p["positives"], p["tau_high"]))
    assert not ok and why == R.BATCH_MISTAKES["one_way"]
    assert R.match(R.batch_loss(p["S"], p["positives"], p["tau_high"]),
                   R.batch_candidates(p["S"], p["positives"], p["tau_high"]))[0]
    assert CHECKS["q2_1_loss"]({"L_batch_high": {"v": got.hex()}}, p).mistakes == [R.BATCH_MISTAKES["one_way"]]


def _one_way_by_hand(S, tau) -> float:
    """(L_12 + L_34 + L_56) / 3 written out: anchors z_1, z_3, z_5 with positives z_2, z_4, z_6."""
    def loss(i, j):
        return -math.log(math.exp(S[i][j] / tau) / sum(math.exp(S[i][k] / tau) for k in range(6) if k != i))
    return (loss(0, 1) + loss(2, 3) + loss(4, 5)) / 3


def test_the_sheets_one_way_reading_of_q1_3_earns_the_point_and_is_no_mistake():
    """Q1.3 as the sheet poses it ("combine the losses of the 3 positive pairs", hint: average them): the one-way
    mean is right for that reading, and the feedback gives SimCLR's 2N-anchor mean on the student's numbers."""
    p = problem("ps1_similarity_matrix", "anyone")
    S, tau = p["S"], p["tau"]
    one_way = _one_way_by_hand(S, tau)
    both = sum(R.anchor_losses(S, p["positives"], tau)) / 6
    assert abs(one_way - both) > 1e-2 * both  # on these numbers the two readings differ: the test tells them apart
    v = CHECKS["q1_3_batch"]({"L_batch": {"v": one_way.hex()}}, p)
    assert v.fraction == 1.0 and v.mistakes == [] and v.accepted == [R.BATCH_READINGS["one_way"]]
    assert v.record()["mistakes"] == [] and v.message.startswith("PASS  L_batch = ")
    assert "all 2N = 6 anchors, both (i, j) and (j, i)" in v.message and f"{both:.6g}" in v.message
    right = CHECKS["q1_3_batch"]({"L_batch": {"v": both.hex()}}, p)
    assert right.fraction == 1.0 and right.accepted == [] and right.message == "PASS  L_batch is right"
    # a per-anchor mistake inside the one-way reading is still that mistake
    wrong = R.batch_loss(S, p["positives"], tau, "no_tau", combine="one_way")
    v = CHECKS["q1_3_batch"]({"L_batch": {"v": wrong.hex()}}, p)
    assert v.fraction == 0.0 and v.accepted == [] and R.MISTAKES["no_tau"] in v.mistakes[0]


def test_a_value_near_two_named_mistakes_is_named_by_the_nearer():
    cands = {None: 1.0, "a": 2.0, "b": 2.0015}
    assert R.match(2.0015, cands) == (False, "b") and R.match(2.0, cands) == (False, "a")
    assert R.match([2.0, 3.0], {None: [1.0, 1.0], "a": [2.0, 3.002], "b": [2.0, 3.0]}) == (False, "b")


@pytest.mark.parametrize("student", ["anyone", "alice", "bob", "s0001", "instructor", "student004", "student005"])
def test_ps2_model_answer_holds_on_every_variant(student):
    """The model answer of 2.1(d): at the higher temperature the positive's share drops and the loss rises; also
    on variants with a hard negative (bob, student004, student005), which is never on z_1's row."""
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


# ------------------------------------------------------------------------------------------ grader.harness
def test_answer_cells_run_her_code_and_the_released_setup_never_a_test():
    import nbformat

    from grader.harness import answer_cells

    def cell(src, **nbg):
        c = nbformat.v4.new_code_cell(src)
        if nbg:
            c.metadata["nbgrader"] = nbg
        return c

    nb = nbformat.v4.new_notebook(cells=[
        cell("STUDENT_ID = 'a'", grade_id="student_id", solution=True),
        cell("x = 'edited setup'", grade_id="setup", locked=True),
        nbformat.v4.new_markdown_cell("text"),
        cell("y = 1", grade_id="q_answer", solution=True),
        cell("helper = 2"),  # a cell she added
        cell("assert y", grade_id="q_test", grade=True, solution=True),  # a test cell re-marked as an answer
        cell("z = 3", grade_id="unknown_id", solution=True),
    ])
    gradebook = {"student_id": ("solution", "?"), "setup": ("locked", "x = 'released setup'"),
                 "q_answer": ("solution", "?"), "q_test": ("grade", "assert y")}
    got = answer_cells(nb, gradebook.get)
    assert got == [("student_id", "STUDENT_ID = 'a'"), ("setup", "x = 'released setup'"), ("q_answer", "y = 1"),
                   ("#5", "helper = 2"), ("#7", "z = 3")]


def test_a_runner_reply_is_validated_strictly():
    from grader.harness import _parse

    ok = _parse({"values": {"L_12": {"v": "0x1p-1"}}, "variant": "alice", "errors": {"a": "boom", "zz": "x"}},
                {"a"})
    assert ok.values == {"L_12": {"v": "0x1p-1"}} and ok.variant == "alice" and ok.cell_errors == {"a": "boom"}
    for bad in ({"values": {"L_12": 0.5}, "variant": None, "errors": {}}, {"values": [], "variant": None, "errors": {}},
                {"values": {}, "variant": 3, "errors": {}}, {"values": {}, "variant": None, "errors": {},
                                                             "verdict": "PASS"}):
        assert _parse(bad, set()).values is None, bad


def test_the_grading_library_holds_numbers_not_answers(tmp_path):
    from grader.harness import grading_library

    for a, has_loss in [("ps1_similarity_matrix", False), ("ps2_temperature", False), ("ps3_batch_size", True),
                        ("ps4_applications", False)]:
        lib = grading_library(a, tmp_path / a) / "simclr_core"
        assert (lib / "teaching" / "variants.py").is_file() and (lib / "teaching" / "sheet.py").is_file()
        assert (lib / "nn" / "loss.py").exists() == has_loss, a
        assert not (lib / "eval").exists() and "nn.loss" not in (lib / "teaching" / "sheet.py").read_text()
        assert not list((tmp_path / a).rglob("grader")) and not list((tmp_path / a).rglob("reference.py"))


def test_the_grading_copy_of_the_sheet_has_the_sheets_numbers(tmp_path):
    import runpy

    import torch

    from grader.harness import grading_library
    from simclr_core.teaching import sheet

    copy = runpy.run_path(str(grading_library("ps1_similarity_matrix", tmp_path) / "simclr_core/teaching/sheet.py"))
    assert copy["SEED_TAU"] == sheet.SEED_TAU
    assert torch.equal(copy["SEED_POSITIVES"], sheet.SEED_POSITIVES)
    assert torch.allclose(copy["SEED_S"], sheet.SEED_S, equal_nan=True) and copy["SEED_S"].dtype == torch.float64


def _grad_values(fn):
    """The values the runner gives for q3_1a when loss_and_grad_norm is ``fn``."""
    from grader_probe import RECIPES

    return {k: v for k, v in RECIPES["q3_1a"]({"loss_N1": 0.0, "grad_norm_N1": 0.0, "loss_and_grad_norm": fn}).items()}


def test_the_gradient_check_needs_a_real_backward_pass():
    import torch

    from simclr_core.nn.loss import nt_xent

    def honest(z1, z2, tau):
        loss = nt_xent(z1, z2, temperature=tau)
        loss.backward()
        return loss.item(), z1.grad.norm().item()

    def by_hand(z1, z2, tau):  # right numbers, but z1.grad written, not computed
        loss = nt_xent(z1, z2, temperature=tau)
        (g,) = torch.autograd.grad(loss, z1)
        z1.grad = torch.zeros_like(z1)
        return loss.item(), g.norm().item()

    p = problem("ps3_batch_size", "anyone")
    assert CHECKS["q3_1a"](_grad_values(honest), p).fraction == 1.0
    fake = CHECKS["q3_1a"](_grad_values(by_hand), p)
    assert fake.fraction == pytest.approx(2 / 3) and "do not set it by hand" in fake.message
    lazy = CHECKS["q3_1a"](_grad_values(lambda z1, z2, tau: (0.0, 0.0)), p)
    assert lazy.fraction == pytest.approx(1 / 3) and "call loss.backward()" in lazy.message


def test_an_exception_on_a_hidden_input_does_not_carry_its_message_out():
    """A function may put its hidden input into the message it raises; the feedback gets the type and position."""
    import grader_probe as P

    secret = [[0.123456, 0.654321], [0.5, 0.25]]

    def leaky(S):
        raise ValueError(f"the input was {S!r}")

    got = P._calls({"f": leaky}, "f", [secret], lambda f, case: f(case), P.number)
    assert "ValueError on test input 1 of 1" in got["error"]
    assert "0.123456" not in got["error"] and "the input was" not in got["error"]
