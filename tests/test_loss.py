"""NT-Xent against an independent naive reference, closed forms, and the seed's hand-computed values."""

import math

import pytest
import torch

from simclr_core.nn.loss import info_nce_from_similarity, nt_xent, positive_pairs
from simclr_core.teaching.sheet import SEED_POSITIVES, SEED_S


def naive_nt_xent(z1, z2, tau):
    """Eq. (1) of the paper with explicit loops: l(i, j) = -log exp(s_ij/tau) / sum_{k != i} exp(s_ik/tau)."""
    z = torch.cat([z1, z2]).double()
    N = z1.shape[0]
    losses = []
    for i in range(2 * N):
        j = i + N if i < N else i - N
        def sim(a, b):
            return float(z[a] @ z[b]) / (float(z[a].norm()) * float(z[b].norm()))
        num = math.exp(sim(i, j) / tau)
        den = sum(math.exp(sim(i, k) / tau) for k in range(2 * N) if k != i)
        losses.append(-math.log(num / den))
    return torch.tensor(losses, dtype=torch.float64)


@pytest.mark.parametrize("N", [1, 2, 7, 64])
@pytest.mark.parametrize("D", [3, 16])
@pytest.mark.parametrize("tau", [0.05, 0.5, 5.0])
def test_matches_naive_reference(N, D, tau):
    g = torch.Generator().manual_seed(1000 * N + D)
    z1, z2 = torch.randn(N, D, generator=g, dtype=torch.float64), torch.randn(N, D, generator=g, dtype=torch.float64)
    ref = naive_nt_xent(z1, z2, tau)
    per_anchor = nt_xent(z1, z2, temperature=tau, reduction="none")
    assert per_anchor.shape == (2 * N,)
    torch.testing.assert_close(per_anchor, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(nt_xent(z1, z2, tau), ref.mean(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(nt_xent(z1, z2, tau, reduction="sum"), ref.sum(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("N", [1, 2, 7, 64])
def test_float32_matches_reference(N):
    g = torch.Generator().manual_seed(N)
    z1, z2 = torch.randn(N, 32, generator=g), torch.randn(N, 32, generator=g)
    torch.testing.assert_close(nt_xent(z1, z2, 0.1, "none").double(), naive_nt_xent(z1, z2, 0.1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("N", [1, 2, 7, 64])
@pytest.mark.parametrize("tau", [0.05, 0.5, 5.0])
def test_identical_embeddings_give_log_2N_minus_1(N, tau):
    # every candidate has the same similarity, so the softmax is uniform over the 2N - 1 candidates
    z = torch.ones(N, 8, dtype=torch.float64)
    torch.testing.assert_close(nt_xent(z, z.clone(), tau), torch.tensor(math.log(2 * N - 1), dtype=torch.float64))


def test_single_pair_gives_exactly_zero_and_zero_gradient():
    z1 = torch.randn(1, 5, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(1, 5, dtype=torch.float64, requires_grad=True)
    loss = nt_xent(z1, z2, 0.1)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(z1.grad == 0) and torch.all(z2.grad == 0)


def test_perfect_alignment_orthogonal_negatives_closed_form():
    # z1 = z2 = orthonormal rows: positive sim 1, every negative sim 0 ->
    # l = -log e^{1/tau} / (e^{1/tau} + 2N - 2)
    N, tau = 5, 0.3
    z = torch.eye(N, dtype=torch.float64)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * N - 2))
    torch.testing.assert_close(nt_xent(z, z.clone(), tau, "none"), torch.full((2 * N,), expected, dtype=torch.float64))


def test_symmetric_under_swapping_views():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(9, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    a = nt_xent(z1, z2, 0.5, "none")
    b = nt_xent(z2, z1, 0.5, "none")
    torch.testing.assert_close(a, torch.cat([b[9:], b[:9]]))
    torch.testing.assert_close(nt_xent(z1, z2, 0.5), nt_xent(z2, z1, 0.5))


def test_scale_invariant_because_embeddings_are_normalised():
    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(nt_xent(z1, z2, 0.2), nt_xent(7.5 * z1, 0.01 * z2, 0.2))


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(5)
    z1 = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3, "none"), (z1, z2))


def test_seed_question_1_values_at_tau_0_1():
    # hand computation (tau = 0.1): numerator e^{9.5} = 13359.73,
    # denominator e^{9.5} + e^{1.0} + e^{0.5} + e^{0.2} + e^{0} = 13366.32
    losses = info_nce_from_similarity(SEED_S, SEED_POSITIVES, 0.1)
    assert f"{losses[0].item():.4g}" == "0.000493"  # L(1,2) = 4.930e-4
    assert f"{losses[2].item():.4g}" == "0.001154"  # L(3,4) = 1.154e-3
    assert math.isclose(losses[0].item(), -math.log(13359.7268 / 13366.3152), rel_tol=1e-6)


def test_from_similarity_agrees_with_naive_on_embeddings():
    g = torch.Generator().manual_seed(6)
    z1, z2 = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    S = z @ z.T
    S.fill_diagonal_(float("nan"))  # the diagonal is ignored whatever it holds
    out = info_nce_from_similarity(S, positive_pairs(4), 0.7)
    torch.testing.assert_close(out, naive_nt_xent(z1, z2, 0.7))


def test_from_similarity_accepts_lists_and_adjacent_layout():
    S = SEED_S.nan_to_num(1.0).tolist()
    out = info_nce_from_similarity(S, [1, 0, 3, 2, 5, 4], 0.5)
    assert out.shape == (6,)
    assert math.isclose(out[0].item(), 0.502727116319136, rel_tol=1e-9)  # hand-computed at tau = 0.5


@pytest.mark.parametrize("tau", [0, -0.1, float("inf"), float("nan"), "hot", None])
def test_bad_temperature(tau):
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, tau)
    with pytest.raises(ValueError, match="temperature"):
        info_nce_from_similarity(SEED_S, SEED_POSITIVES, tau)


@pytest.mark.parametrize(
    "z1, z2, match",
    [
        (torch.randn(3, 4), torch.randn(4, 4), "same shape"),
        (torch.randn(3, 4), torch.randn(3, 5), "same shape"),
        (torch.randn(4), torch.randn(4), "2 dims"),
        (torch.randn(2, 3, 4), torch.randn(2, 3, 4), "2 dims"),
        (torch.tensor([[1.0, float("nan")]]), torch.ones(1, 2), "non-finite"),
        (torch.ones(2, 2), torch.tensor([[1.0, 1.0], [float("inf"), 0.0]]), "non-finite"),
        (torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long), "floating"),
        (torch.empty(0, 4), torch.empty(0, 4), "at least one"),
    ],
)
def test_bad_embeddings(z1, z2, match):
    with pytest.raises(ValueError, match=match):
        nt_xent(z1, z2)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        nt_xent(torch.randn(2, 3), torch.randn(2, 3), reduction="avg")


@pytest.mark.parametrize(
    "S, positives, match",
    [
        (torch.zeros(6, 5), [1, 0, 3, 2, 5, 4], "square"),
        (torch.zeros(5, 5), [1, 0, 3, 2, 4], "even"),
        (torch.zeros(6, 6), [1, 0, 3, 2, 5], "6 integer"),
        (torch.zeros(6, 6), [1, 0, 3, 2, 5, 6], "0..5"),
        (torch.zeros(6, 6), [0, 1, 3, 2, 5, 4], "its own positive"),
        (torch.zeros(6, 6), [1, 2, 0, 4, 5, 3], "not a valid pairing"),
        (torch.zeros(6, 6), [1.0, 0, 3, 2, 5, 4], "integer"),
        (torch.tensor([[0.0, float("nan")], [1.0, 0.0]]), [1, 0], "non-finite"),
    ],
)
def test_bad_similarity_inputs(S, positives, match):
    with pytest.raises(ValueError, match=match):
        info_nce_from_similarity(S, positives, 0.1)


def test_keeps_device_and_dtype():
    z = torch.randn(3, 4, dtype=torch.float64)
    assert nt_xent(z, z + 1).dtype == torch.float64
    assert nt_xent(z.float(), z.float() + 1).dtype == torch.float32


# ---------------------------------------------------------------- numerics: any norm, any input dtype

def _loss64(z1, z2, tau):
    """The reference: NT-Xent of the unit vectors in float64, computed from the directions alone."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    N = z1.shape[0]
    logits = z @ z.T / tau
    logits.fill_diagonal_(float("-inf"))
    labels = torch.cat([torch.arange(N) + N, torch.arange(N)])
    return torch.nn.functional.cross_entropy(logits, labels)


@pytest.mark.parametrize("scale", [1e-20, 1e-30, 1.0, 1e20, 1e30])
def test_nt_xent_depends_on_directions_only_whatever_the_norm(scale):
    """A tiny norm must not hit F.normalize's eps (giving log(2N-1)), nor a huge one overflow the norm."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    ref = _loss64(z1, z2, 0.5)
    got = nt_xent(z1 * scale, z2 * scale, 0.5)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert abs(got.item() - math.log(7)) > 0.1  # not the eps-clamped value


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nt_xent_computes_in_float32_for_half_inputs(dtype):
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(256, 128, generator=g), torch.randn(256, 128, generator=g)
    z1h, z2h = z1.to(dtype), z2.to(dtype)
    for tau in (1e-3, 0.5):
        got = nt_xent(z1h, z2h, tau)
        assert torch.isfinite(got) and got.dtype == torch.float32
        ref = _loss64(z1h.double(), z2h.double(), tau)  # the same (rounded) inputs, exactly
        assert got.item() == pytest.approx(ref.item(), rel=1e-4)


def test_nt_xent_float64_stays_float64():
    z = torch.randn(3, 4, dtype=torch.float64)
    assert nt_xent(z, z.flip(0)).dtype == torch.float64


# ---------------------------------------------------------------- the published implementations as references

def spijkervet_nt_xent(z_i, z_j, tau):
    """Spijkervet/SimCLR's NT_Xent (simclr/modules/nt_xent.py), one process: positives from the two off-diagonals,
    negatives by a boolean mask, cross-entropy summed and divided by 2N."""
    n = z_i.shape[0]
    mask = torch.ones(2 * n, 2 * n, dtype=torch.bool).fill_diagonal_(False)
    for i in range(n):
        mask[i, n + i] = mask[n + i, i] = False
    z = torch.cat([z_i, z_j])
    sim = torch.nn.functional.cosine_similarity(z.unsqueeze(1), z.unsqueeze(0), dim=2) / tau
    positives = torch.cat([torch.diag(sim, n), torch.diag(sim, -n)]).reshape(2 * n, 1)
    negatives = sim[mask].reshape(2 * n, -1)
    logits = torch.cat([positives, negatives], dim=1)
    labels = torch.zeros(2 * n, dtype=torch.long)
    return torch.nn.functional.cross_entropy(logits, labels, reduction="sum") / (2 * n)


def sthalles_info_nce(z_i, z_j, tau):
    """sthalles/SimCLR's info_nce_loss (simclr.py): the same-image matrix, the diagonal dropped, positives first."""
    n = z_i.shape[0]
    ids = torch.cat([torch.arange(n), torch.arange(n)])
    same = (ids.unsqueeze(0) == ids.unsqueeze(1)).float()
    f = torch.nn.functional.normalize(torch.cat([z_i, z_j]), dim=1)
    sim = f @ f.T
    off = ~torch.eye(2 * n, dtype=torch.bool)
    same, sim = same[off].view(2 * n, -1), sim[off].view(2 * n, -1)
    positives = sim[same.bool()].view(2 * n, -1)
    negatives = sim[~same.bool()].view(2 * n, -1)
    logits = torch.cat([positives, negatives], dim=1) / tau
    return torch.nn.functional.cross_entropy(logits, torch.zeros(2 * n, dtype=torch.long))


def lightly_nt_xent(z_i, z_j, tau):
    lightly_loss = pytest.importorskip("lightly.loss", reason="lightly is installed apart (scripts/install_lightly.sh)")
    return lightly_loss.NTXentLoss(temperature=tau)(z_i, z_j)


@pytest.mark.parametrize("reference", [spijkervet_nt_xent, sthalles_info_nce, lightly_nt_xent],
                         ids=["Spijkervet", "sthalles", "lightly"])
@pytest.mark.parametrize("N", [2, 7, 64])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_agrees_with_published_implementations_value_and_gradient(reference, N, tau):
    g = torch.Generator().manual_seed(N)
    z1, z2 = torch.randn(N, 16, generator=g, dtype=torch.float64), torch.randn(N, 16, generator=g, dtype=torch.float64)
    ours = [t.clone().requires_grad_() for t in (z1, z2)]
    theirs = [t.clone().requires_grad_() for t in (z1, z2)]
    a, b = nt_xent(*ours, tau), reference(*theirs, tau)
    a.backward()
    b.backward()
    torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-9, atol=1e-12)
    for mine, ref in zip(ours, theirs):
        torch.testing.assert_close(mine.grad, ref.grad, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["all anchors", "some anchors", "extra keys", "anchors and keys"])
def test_core_gradient_matches_autograd_of_the_plain_formula(reduction, layout):
    """The written-out backward of simclr_core.nn.ntxent against autograd through the formula, with per-anchor
    weights on the losses (a weight per anchor catches a mixed-up row or column in the backward)."""
    from simclr_core.nn.ntxent import ntxent_losses

    g = torch.Generator().manual_seed(11)
    z = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    anchors = torch.tensor([1, 2, 6, 7]) if "anchors" in layout and layout != "all anchors" else None
    keys = torch.nn.functional.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1) if "keys" in layout else None
    rows = torch.arange(10) if anchors is None else anchors
    u = torch.nn.functional.normalize(z, dim=1)
    cand = u if keys is None else torch.cat([u, keys])
    logits = (u[rows] @ cand.T / 0.3).masked_fill(torch.nn.functional.one_hot(rows, cand.shape[0]).bool(), -math.inf)
    ref = torch.nn.functional.cross_entropy(logits, (rows + 5) % 10, reduction=reduction)
    got = ntxent_losses(z, 0.3, reduction, anchors=anchors, keys=keys)
    torch.testing.assert_close(got, ref)
    w = torch.rand(got.shape, generator=g, dtype=torch.float64) + 0.5
    (g_got,) = torch.autograd.grad((got * w).sum(), z)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), z)
    torch.testing.assert_close(g_got, g_ref)
    assert torch.autograd.gradcheck(lambda t: ntxent_losses(t, 0.3, reduction, anchors=anchors, keys=keys), (z,))


@pytest.mark.parametrize("tau", [1e-4, 1e-3, 0.5, 1e6])
def test_finite_and_right_at_every_admitted_temperature(tau):
    """From the bound 1e-4 up the float32 loss and its gradient are finite and match float64 autograd."""
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = nt_xent(a, b, tau)
    loss.backward()
    r1, r2 = z1.double().requires_grad_(), z2.double().requires_grad_()
    ref = _loss64(r1, r2, tau)
    ref.backward()
    assert torch.isfinite(loss) and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)
    scale = r1.grad.abs().max().item()
    torch.testing.assert_close(a.grad.double(), r1.grad, rtol=1e-3, atol=1e-4 * scale)


def test_temperature_below_the_bound_or_with_a_gradient_is_refused():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r">= 0\.0001.*got 5e-05"):
        nt_xent(z, z, 5e-5)
    with pytest.raises(ValueError, match="requires grad"):
        nt_xent(z, z, torch.tensor(0.5, requires_grad=True))
    assert nt_xent(z, z.flip(0), torch.tensor(0.5)) == nt_xent(z, z.flip(0), 0.5)
