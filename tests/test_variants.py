"""Per-student numbers of problem sets 1-3 (simclr_core.teaching.variants) and the checker's use of them.

The map from student id to numbers must be deterministic (the student's kernel, the sandbox and the checker all
compute it), give different students different numbers, give valid numbers, and the model answers on a variant
must be what an independent, naive computation gives. The checks must grade against the graded id's variant
and say when a value is another variant's answer.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grader import CHECKS
from grader import reference as R
from grader.problems import model_answers, other_variants, problem
from simclr_core.teaching import variants as V

ROOT = Path(__file__).resolve().parent.parent
IDS = [f"student{k:03d}" for k in range(300)] + ["alice", "bob", "王小明", "a.b-c_d@uni.edu"]


def test_the_same_id_gives_the_same_numbers_and_spaces_or_case_do_not_matter():
    a = V.variant("alice")
    V._variant.cache_clear()
    assert repr(V.variant("alice")) == repr(a)
    assert V.variant("  Alice ").S == a.S and V.variant("ALICE").tau == a.tau
    assert V.same_student(" Alice", "alice") and not V.same_student("alice", "alice2")


def test_the_map_is_pinned():
    """These numbers are what students were given: changing SALT, a grid or the sampling changes them all."""
    a = V.variant("alice")
    assert a.S[0][1:] == (0.8, 0.35, 0.25, 0.0, 0.0)
    assert (a.tau, a.tau_high, a.N_bound) == (0.3, 0.8, 96) and not V.has_hard_negative("alice")
    b = V.variant("bob")  # one of the students with a hard negative: z_3 is closer to z_5 (0.7) than to z_4 (0.6)
    assert V.has_hard_negative("bob") and b.S[2][3:] == (0.6, 0.7, 0.3) and b.N_bound == 3200
    assert b.hard_negatives() == [(2, 4), (4, 2)]  # z_5's own positive z_6 (0.65) is below 0.7 too


def test_a_fresh_interpreter_computes_the_same_variant():
    code = "from simclr_core.teaching.variants import variant; print(repr(variant('bob')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == repr(V.variant("bob"))


def test_different_ids_give_different_numbers():
    vs = [V.variant(s) for s in IDS]
    assert len({v.S for v in vs}) == len(IDS)  # no two of 304 students share a matrix
    assert {v.tau for v in vs} == set(V.TAUS) and {v.tau_high for v in vs} == set(V.TAUS_HIGH)
    sizes = {v.N_bound for v in vs}  # 304 draws from 505 sizes: about 230 distinct ones expected
    assert sizes <= set(V.N_BOUNDS) and len(sizes) > 180, len(sizes)
    # a neighbour's L_12 is almost never yours
    l12 = [R.anchor_loss(v.matrix(), 0, 1, v.tau) for v in vs]
    same = sum(R.close(x, y) for k, x in enumerate(l12) for y in l12[k + 1:])
    assert same / (len(l12) * (len(l12) - 1) / 2) < 0.005, same


@pytest.mark.parametrize("student", IDS[:40] + IDS[-4:])
def test_each_variant_is_a_valid_well_conditioned_problem(student):
    v = V.variant(student)
    n = len(v.S)
    assert n == 6 and all(len(r) == n for r in v.S)
    assert v.positives == (1, 0, 3, 2, 5, 4)  # rows (2k, 2k + 1) are the two views of image k
    for i in range(n):
        assert math.isnan(v.S[i][i])
        for k in range(n):
            if k != i:
                assert v.S[i][k] == v.S[k][i]
                if k == v.positives[i]:
                    assert v.S[i][k] in V.POSITIVE_GRID
        # the positive is the most similar view of each anchor, but for the one planted hard negative
        for k in range(n):
            if k in (i, v.positives[i]):
                continue
            planted = V.has_hard_negative(student) and {i, k} in ({V.HARD_ANCHOR, h} for h in V.HARD_NEGATIVES)
            if not planted:
                assert v.S[i][v.positives[i]] > v.S[i][k] and v.S[i][k] in V.NEGATIVE_GRID
    gram = torch.tensor(v.matrix(), dtype=torch.float64).fill_diagonal_(1.0)
    eig = torch.linalg.eigvalsh(gram)
    assert eig.min() >= V.MIN_EIGENVALUE - 1e-12  # cosine similarities of six unit vectors, well-conditioned
    z = torch.linalg.cholesky(gram)  # such vectors exist: rows of the Cholesky factor
    assert torch.allclose(z @ z.T, gram)
    assert v.tau in V.TAUS and v.tau_high in V.TAUS_HIGH and v.tau < v.tau_high and v.N_bound in V.N_BOUNDS


HARD = [s for s in IDS if V.has_hard_negative(s)]


def test_some_variants_have_a_hard_negative_and_the_others_none():
    """About one student in HARD_SHARE: 304 ids give 101 expected, sd 8.2; the share is a hash, so it is stable."""
    assert 75 <= len(HARD) <= 128, len(HARD)
    for s in IDS:
        v = V.variant(s)
        if s not in HARD:
            assert v.hard_negatives() == []
            continue
        i, pos = V.HARD_ANCHOR, v.positives[V.HARD_ANCHOR]
        (k,) = [k for k in V.HARD_NEGATIVES if v.S[i][k] > v.S[i][pos]]  # exactly one, z_5 or z_6
        assert (i, k) in v.hard_negatives() and round(v.S[i][k] - v.S[i][pos], 2) in V.HARD_MARGINS
        assert all(a in (i, k) for a, _ in v.hard_negatives())  # only the planted pair, seen from either end
        assert v.S[0][1] == max(x for x in v.S[0] if not math.isnan(x))  # z_1, problem set 2's anchor, has none


@pytest.mark.parametrize("student", HARD[:12])
def test_a_hard_negative_puts_its_anchors_loss_above_log_2_at_every_tau(student):
    """What the notebook says of a hard negative: the positive's share is below 1/2, so the loss exceeds log 2."""
    v = V.variant(student)
    S = torch.tensor(v.matrix(), dtype=torch.float64)
    for tau in V.TAUS + V.TAUS_HIGH:
        assert _naive_loss(S, 2, 3, tau) > math.log(2)
    gap = max(v.S[2][k] for k in V.HARD_NEGATIVES) - v.S[2][3]
    small = [_naive_loss(S, 2, 3, t) for t in (0.04, 0.02, 0.01)]  # as tau -> 0 it grows like gap / tau ...
    assert small[0] < small[1] < small[2] and all(x >= gap / t for x, t in zip(small, (0.04, 0.02, 0.01)))
    assert _naive_loss(S, 0, 1, 0.01) < 1e-6  # ... while an anchor whose positive is its most similar view goes to 0


def _named(check: str, name: str, x: float, p: dict):
    v = CHECKS[check]({name: {"v": float(x).hex()}}, p)
    return v.fraction, v.mistakes, v.accepted


@pytest.mark.parametrize("student", HARD[:20] + ["alice"])
def test_the_checks_tell_every_named_mistake_apart_on_hard_variants(student):
    """Each named mistake of problem set 1, computed on her numbers, is named as itself and as nothing else, and
    the right answer and the accepted reading of Q1.3 match no mistake."""
    p = problem("ps1_similarity_matrix", student)
    S, pos, tau = p["S"], p["positives"], p["tau"]
    for m, why in R.MISTAKES.items():
        assert _named("q1_1_loss", "L_12", R.anchor_loss(S, 0, 1, tau, m), p) == (0.0, [why], [])
        assert _named("q1_2", "L_34", R.anchor_loss(S, 2, 3, tau, m), p) == (0.0, [why], [])
        assert _named("q1_3_batch", "L_batch", R.batch_loss(S, pos, tau, m), p) == (0.0, [why], [])
    for m in ("self", "no_tau", "negatives_only"):
        assert _named("q1_1_terms", "denominator_12", R.denominator(S, 0, 1, tau, m), p)[1] == [R.MISTAKES[m]]
    summed = R.batch_loss(S, pos, tau, combine="sum")
    assert _named("q1_3_batch", "L_batch", summed, p) == (0.0, [R.BATCH_MISTAKES["sum"]], [])
    one_way = R.batch_loss(S, pos, tau, combine="one_way")
    assert _named("q1_3_batch", "L_batch", one_way, p) == (1.0, [], [R.BATCH_READINGS["one_way"]])
    assert _named("q1_3_batch", "L_batch", R.batch_loss(S, pos, tau), p) == (1.0, [], [])
    assert _named("q1_2", "L_34", R.anchor_loss(S, 2, 3, tau), p) == (1.0, [], [])


def test_pure_python_eigenvalues_match_torch():
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 6, 7):
        a = torch.randn(n, n, generator=g, dtype=torch.float64)
        a = a + a.T
        assert torch.allclose(torch.tensor(V.eigenvalues(a.tolist()), dtype=torch.float64), torch.linalg.eigvalsh(a),
                              atol=1e-10)


def _naive_loss(S: torch.Tensor, i: int, j: int, tau: float) -> float:
    """-log softmax of the positive among k != i, with torch, not grader.reference."""
    logits = torch.stack([S[i, k] / tau for k in range(S.shape[0]) if k != i])
    pos = [k for k in range(S.shape[0]) if k != i].index(j)
    return float(-torch.log_softmax(logits, dim=0)[pos])


@pytest.mark.parametrize("student", ["alice", "bob", "student007", "王小明"])
def test_model_answers_equal_a_naive_loop(student):
    v = V.variant(student)
    S = torch.tensor(v.matrix(), dtype=torch.float64)
    m1 = model_answers("ps1_similarity_matrix", student)
    assert m1["numerator_12"] == pytest.approx(math.exp(0.0 + S[0, 1].item() / v.tau))
    assert m1["denominator_12"] == pytest.approx(sum(math.exp(S[0, k].item() / v.tau) for k in range(1, 6)))
    assert m1["L_12"] == pytest.approx(_naive_loss(S, 0, 1, v.tau), rel=1e-12)
    assert m1["L_34"] == pytest.approx(_naive_loss(S, 2, 3, v.tau), rel=1e-12)
    losses = [_naive_loss(S, i, i ^ 1, v.tau) for i in range(6)]
    assert m1["anchor_losses(S, positives, tau)"] == pytest.approx(losses, rel=1e-12)
    assert m1["L_batch"] == pytest.approx(sum(losses) / 6, rel=1e-12)
    # the library's own loss on embeddings whose similarities are S gives the same batch loss
    from simclr_core.nn.loss import nt_xent

    z = torch.linalg.cholesky(S.clone().fill_diagonal_(1.0))
    assert float(nt_xent(z[0::2], z[1::2], temperature=v.tau)) == pytest.approx(m1["L_batch"], rel=1e-9)
    m2 = model_answers("ps2_temperature", student)
    for name, t in (("share_low", v.tau), ("share_high", v.tau_high)):
        assert m2[name] == pytest.approx(math.exp(-_naive_loss(S, 0, 1, t)), rel=1e-12)
    assert m2["L_batch_high"] == pytest.approx(sum(_naive_loss(S, i, i ^ 1, v.tau_high) for i in range(6)) / 6)
    assert m2["denominator_terms(S, 0, tau_high)"] == pytest.approx(
        [math.exp(S[0, k].item() / v.tau_high) for k in range(1, 6)])
    assert model_answers("ps3_batch_size", student)["max_bound"] == pytest.approx(math.log(2 * v.N_bound - 1))


def test_the_notebook_id_comes_from_the_cell_then_the_environment():
    assert V.student_id(" alice ", environ={}) == "alice"
    assert V.student_id("alice", environ={"SIMCLR_STUDENT_ID": "bob"}) == "alice"  # typed wins
    assert V.student_id(None, environ={"SIMCLR_STUDENT_ID": "bob", "JUPYTERHUB_USER": "carol"}) == "bob"
    assert V.student_id("", environ={"JUPYTERHUB_USER": "carol"}) == "carol"
    assert V.my_variant(None, environ={"JUPYTERHUB_USER": "carol"}) == V.variant("carol")
    for empty in (None, "", "   "):
        with pytest.raises(ValueError, match='no student id: type yours in the cell above, STUDENT_ID = "your id"'):
            V.student_id(empty, environ={})
    for bad in (42, ["alice"], "x" * 101, "tab\there"):
        with pytest.raises(ValueError, match="a student id"):
            V.variant(bad)
    with pytest.raises(ValueError, match="unknown problem set"):
        V.variant("alice").text("ps4_applications")


def test_the_notebook_prints_the_students_own_numbers():
    v = V.variant("alice")
    text = v.text("ps1_similarity_matrix")
    assert "student id 'alice'" in text and f"tau = {v.tau:g}" in text and f"{v.S[0][1]:.2f}" in text
    assert "N_bound" not in text and f"N_bound = {v.N_bound}" in v.text("ps3_batch_size")
    assert f"tau_high = {v.tau_high:g}" in v.text("ps2_temperature")


# ------------------------------------------------------------------------------------------ the checker's side
def _values(**numbers):
    return {k: {"v": float(x).hex()} for k, x in numbers.items()}


def test_a_check_grades_the_graded_students_variant_and_records_a_copied_one():
    mine, theirs = "alice", "bob"
    p = problem("ps1_similarity_matrix", mine)
    p["others"] = other_variants("ps1_similarity_matrix", mine, None, [mine, theirs, "carol"])
    right = model_answers("ps1_similarity_matrix", mine)["L_12"]
    copied = model_answers("ps1_similarity_matrix", theirs)["L_12"]
    ok = CHECKS["q1_1_loss"](_values(L_12=right), p)
    assert ok.fraction == 1.0 and not ok.copied_from
    bad = CHECKS["q1_1_loss"](_values(L_12=copied), p)
    assert bad.fraction == 0.0 and bad.copied_from == {theirs}  # for the instructor
    # no roster oracle: the message is the one any wrong value gets, whether or not it is a classmate's answer
    stranger = model_answers("ps1_similarity_matrix", "not-enrolled")["L_12"]
    other = CHECKS["q1_1_loss"](_values(L_12=stranger), p)
    assert other.fraction == 0.0 and not other.copied_from
    assert bad.message.replace(f"{copied:.6g}", "X") == other.message.replace(f"{stranger:.6g}", "X")
    assert "bob" not in bad.message and "another student" not in bad.message
    # the same numbers typed under the neighbour's id: the message says which id the numbers are for
    p["others"] = other_variants("ps1_similarity_matrix", mine, theirs, [mine, theirs])
    typed = CHECKS["q1_1_loss"](_values(L_12=copied), p)
    assert typed.fraction == 0.0 and "numbers of student id 'bob', the STUDENT_ID in this notebook" in typed.message
    # a named mistake on her own numbers is still named as such
    no_tau = CHECKS["q1_1_loss"](_values(L_12=R.anchor_loss(p["S"], 0, 1, p["tau"], "no_tau")), p)
    assert R.MISTAKES["no_tau"] in no_tau.message


def test_other_variants_skip_the_student_herself_and_malformed_ids():
    out = other_variants("ps2_temperature", "alice", " ALICE ", ["alice", "Alice", "", "x" * 200, "bob", "bob"])
    assert [sid for sid, _, _ in out] == ["bob"]
    assert other_variants("ps4_applications", "alice", "bob", ["bob"]) == []


def test_course_variant_prints_numbers_and_model_answers():
    spec = importlib.util.spec_from_file_location("course", ROOT / "scripts" / "course.py")
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    text = course.variant_report("alice", ["ps1"])
    L = model_answers("ps1_similarity_matrix", "alice")["L_12"]
    assert "== ps1_similarity_matrix" in text and f"L_12 = {L:.6g}" in text and "ps2_temperature" not in text
    assert "max_bound = " in course.variant_report("alice", ["ps3_batch_size"])
    assert "hard negative" not in text and "one-way reading (also full marks) = " in text
    assert "hard negative: s_35 = 0.70 > s_34 = 0.60 (anchor z3)" in course.variant_report("bob", ["ps1"])
    with pytest.raises(ValueError, match="no problem set 'ps4'"):
        course.variant_report("alice", ["ps4"])
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "course.py"), "variant", "alice", "ps2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "share_low = " in r.stdout and "tau_high = " in r.stdout, r.stderr


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_the_sandbox_passes_on_the_graded_id_and_nothing_else(tmp_path):
    from grader.sandbox import bwrap_command

    cmd = bwrap_command(["python"], tmp_path, str(tmp_path / "k.json"), str(tmp_path),
                        env={"SIMCLR_STUDENT_ID": "alice", "HOME": "/root", "JUPYTERHUB_API_TOKEN": "secret"})
    assert "--clearenv" in cmd and cmd[cmd.index("SIMCLR_STUDENT_ID") + 1] == "alice"
    assert cmd.index("--clearenv") < cmd.index("SIMCLR_STUDENT_ID") and "secret" not in cmd and "/root" not in cmd
