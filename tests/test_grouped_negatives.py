"""The grouped NT-Xent objective of the fixed-images negatives experiment (``train.step.grouped_nt_xent``): with
m = N it is ``nt_xent``; with m < N it is the mean over groups of ``nt_xent`` on each group's own rows, with the
gradient of that reference; a bad m is a clear error."""

import pytest
import torch

from simclr_core.nn.loss import nt_xent
from simclr_core.train.step import GroupedObjective, check_group_pairs, grouped_nt_xent

N, D, TAU = 8, 5, 0.3


def _pairs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(N, D, generator=g, dtype=torch.float64),
            torch.randn(N, D, generator=g, dtype=torch.float64))


def _reference(z1, z2, m):
    """Independent: each group's pairs as their own batch through the public nt_xent, then the mean."""
    return torch.stack([nt_xent(z1[i:i + m], z2[i:i + m], TAU) for i in range(0, z1.shape[0], m)]).mean()


def test_one_group_is_plain_nt_xent():
    z1, z2 = _pairs()
    assert torch.allclose(grouped_nt_xent(z1, z2, TAU, N), nt_xent(z1, z2, TAU), atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_groups_are_independent_nt_xent_batches(m):
    z1, z2 = _pairs(m)
    grouped = grouped_nt_xent(z1, z2, TAU, m)
    assert torch.allclose(grouped, _reference(z1, z2, m), atol=1e-12)
    assert not torch.allclose(grouped, nt_xent(z1, z2, TAU), atol=1e-3)  # fewer negatives: another loss


@pytest.mark.parametrize("m", [2, 4, N])
def test_the_gradient_is_autograds_of_the_reference(m):
    z1, z2 = _pairs(10 + m)
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    b1, b2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    grouped_nt_xent(a1, a2, TAU, m).backward()
    _reference(b1, b2, m).backward()
    assert torch.allclose(a1.grad, b1.grad, atol=1e-10) and torch.allclose(a2.grad, b2.grad, atol=1e-10)


@pytest.mark.parametrize("m", [0, 1, 3, 16, -2, 2.0, True, "4"])
def test_a_bad_group_size_names_the_value_and_what_is_valid(m):
    with pytest.raises(ValueError, match=r"group_pairs .*divides the batch size N = 8, got .*valid: \[2, 4, 8\]"):
        check_group_pairs(m, N)
    z1, z2 = _pairs()
    with pytest.raises(ValueError, match="group_pairs"):
        grouped_nt_xent(z1, z2, TAU, m)


def test_the_objective_checks_m_against_the_recipes_batch():
    with pytest.raises(ValueError, match=r"got 5; valid: \[2, 4, 8\]"):
        GroupedObjective(0.2, 5, N)
    assert GroupedObjective(0.2, 4, N).m == 4


def test_at_the_experiments_size_in_float32_with_a_small_tau():
    """N = 128 pairs in groups of 4 (the negatives experiment's smallest arm), float32, tau = 0.05."""
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(128, 32, generator=g), torch.randn(128, 32, generator=g)
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    b1, b2 = z1.double().requires_grad_(), z2.double().requires_grad_()
    loss = grouped_nt_xent(a1, a2, 0.05, 4)
    ref = torch.stack([nt_xent(b1[i:i + 4], b2[i:i + 4], 0.05) for i in range(0, 128, 4)]).mean()
    loss.backward(), ref.backward()
    assert torch.isfinite(loss) and abs(loss.item() - ref.item()) < 1e-4 * ref.item()
    assert torch.allclose(a1.grad.double(), b1.grad, atol=1e-6) and torch.allclose(a2.grad.double(), b2.grad, atol=1e-6)
