"""Collapse diagnostics against closed forms (effective rank, uniformity limit, alignment, distances)."""

import math

import numpy as np
import pytest
import torch

from simclr_core.eval.diagnostics import alignment, effective_rank, per_dim_std, positive_negative_distances, summary, uniformity


def random_unit(n, d, seed=0):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z / z.norm(dim=1, keepdim=True)


def test_collapsed_embedding_has_effective_rank_one():
    z = torch.tensor([[0.3, -1.0, 2.0]]).repeat(50, 1)
    assert effective_rank(z).item() == pytest.approx(1.0, abs=1e-6)
    # scaled copies of one vector are still one direction
    z = torch.linspace(0.5, 3, 40).unsqueeze(1) * torch.randn(1, 16)
    assert effective_rank(z).item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("r,D", [(1, 8), (2, 8), (5, 32), (16, 16)])
def test_isotropic_rank_r_embedding_has_effective_rank_r(r, D):
    g = torch.Generator().manual_seed(r)
    U, _ = torch.linalg.qr(torch.randn(100, r, generator=g, dtype=torch.float64))  # (100, r) orthonormal columns
    V, _ = torch.linalg.qr(torch.randn(D, r, generator=g, dtype=torch.float64))  # (D, r)
    z = 3.0 * U @ V.T  # (100, D): r equal singular values
    assert effective_rank(z).item() == pytest.approx(r, rel=1e-9)


def test_effective_rank_of_known_spectrum():
    # singular values (3, 1): p = (3/4, 1/4), erank = exp(-(3/4 log 3/4 + 1/4 log 1/4))
    z = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(z).item() == pytest.approx(expected, rel=1e-12)


def test_uniformity_of_random_unit_vectors_matches_closed_form_d3():
    # on S^2 the cosine u of two uniform points is U[-1, 1]: E exp(-2 * 2 (1 - u)) = e^{-4} sinh(4) / 4
    limit = -4 + math.log(math.sinh(4) / 4)
    got = uniformity(random_unit(3000, 3)).item()
    assert got == pytest.approx(limit, abs=0.02)


def test_uniformity_of_random_unit_vectors_matches_quadrature_d16():
    D = 16
    u = np.linspace(-1, 1, 200001)
    w = (1 - u**2) ** ((D - 3) / 2)  # density of the cosine of two uniform points on S^{D-1}
    limit = math.log(np.trapezoid(w * np.exp(-4 * (1 - u)), u) / np.trapezoid(w, u))
    got = uniformity(random_unit(2000, D, seed=1)).item()
    assert got == pytest.approx(limit, abs=0.02)
    assert got < -3.0


def test_collapsed_uniformity_is_zero_and_spread_is_lower():
    collapsed = torch.ones(100, 16)
    assert uniformity(collapsed).item() == pytest.approx(0.0, abs=1e-7)
    assert uniformity(random_unit(100, 16)).item() < -3.0


def test_two_antipodal_points_uniformity():
    # ||a - b||^2 = 4: log exp(-2 * 4) = -8 exactly
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert uniformity(z).item() == pytest.approx(-8.0, abs=1e-12)


def test_alignment_closed_forms():
    z = random_unit(20, 8)
    assert alignment(z, z.clone()).item() == 0.0
    assert alignment(z, 5 * z).item() == pytest.approx(0.0, abs=1e-12)  # normalised first
    # antipodal views: ||u - (-u)||^2 = 4; with alpha = 1: 2
    assert alignment(z, -z).item() == pytest.approx(4.0)
    assert alignment(z, -z, alpha=1).item() == pytest.approx(2.0)


def test_per_dim_std():
    assert torch.all(per_dim_std(torch.ones(10, 4) * torch.tensor([1.0, 2, 3, 4])) == 0)
    D = 64
    s = per_dim_std(random_unit(20000, D))
    torch.testing.assert_close(s, torch.full((D,), D**-0.5, dtype=torch.float64), atol=0.005, rtol=0)


def test_positive_negative_distances():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])
    pos, neg = positive_negative_distances(z1, z2)
    torch.testing.assert_close(pos, torch.tensor([0.0, 2.0, 0.0]))
    assert neg.shape == (6,)
    # naive loop reference over k != i
    u = z1 / z1.norm(dim=1, keepdim=True)
    v = z2 / z2.norm(dim=1, keepdim=True)
    ref = sorted(float((u[i] - v[k]).norm()) for i in range(3) for k in range(3) if i != k)
    assert sorted(neg.tolist()) == pytest.approx(ref, abs=1e-6)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="shape"):
        effective_rank(torch.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        alignment(torch.ones(3, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="N >= 2"):
        uniformity(torch.ones(1, 4))
    with pytest.raises(ValueError, match="non-finite"):
        per_dim_std(torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="all-zero"):
        effective_rank(torch.zeros(4, 4))


def test_summary_keys():
    s = summary(random_unit(50, 8), random_unit(50, 8, seed=2))
    assert set(s) == {"alignment", "uniformity", "mean_per_dim_std", "one_over_sqrt_D", "effective_rank", "D"}
    assert 1 <= s["effective_rank"] <= 8
