"""Is the representation healthy or collapsed? Numbers to look at next to a t-SNE map.

- ``positive_negative_distances``: distances between two views of the same image vs of different images
  (exercise Q5.1: histogram both; a good encoder separates them).
- ``alignment`` and ``uniformity``: Wang & Isola 2020 ("Understanding contrastive representation learning
  through alignment and uniformity on the hypersphere", arXiv:2005.10242), eqs. (4)-(5) with their
  defaults alpha = 2, t = 2. Contrastive losses push alignment -> 0 (positives together) and uniformity
  down (points spread over the sphere); a collapsed encoder has uniformity = 0, its maximum.
- ``per_dim_std``: the std of each coordinate of the L2-normalised embedding (SimSiam, Chen & He 2021,
  arXiv:2011.10566, Sec. 4.1): ~ 1/sqrt(D) for spread-out embeddings, ~ 0 under collapse.
- ``effective_rank``: Roy & Vetterli 2007, "The effective rank: a measure of effective dimensionality":
  exp of the Shannon entropy of the normalised singular values; 1 for a rank-1 (collapsed) embedding,
  r for r equal singular values (dimensional collapse shows up as erank << D).

All take embeddings z (N, D) (any float dtype) and return plain tensors.
"""

from __future__ import annotations

import torch

from .. import checks
from ..nn.ntxent import unit_rows

__all__ = ["effective_rank", "per_dim_std", "alignment", "uniformity", "positive_negative_distances", "summary"]


def _check_z(z, name: str = "z", min_rows: int = 1) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, D), got {type(z).__name__}")
    if z.dim() != 2 or z.shape[0] < min_rows or z.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, D) with N >= {min_rows}, D >= 1; got {tuple(z.shape)}")
    if z.dtype == torch.bool or z.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {z.dtype}")
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} holds non-finite values")
    return z if z.is_floating_point() else z.float()


def _directions(z: torch.Tensor, name: str) -> torch.Tensor:
    """z / ||z|| for any scale a float holds; an all-zero row has no direction and is an error."""
    zero = z.abs().amax(dim=1) == 0  # (N,)
    if zero.any():
        raise ValueError(f"{name} row {int(zero.nonzero()[0])} is all zeros: it has no direction on the sphere")
    return unit_rows(z)


def _check_pair(z1, z2) -> tuple[torch.Tensor, torch.Tensor]:
    z1, z2 = _check_z(z1, "z1"), _check_z(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    return z1, z2


def positive_negative_distances(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances between L2-normalised views.

    Returns (pos, neg): pos (N,) with pos[i] = ||z1_i - z2_i|| (two views of image i) and neg (N(N-1),)
    with all ||z1_i - z2_k||, k != i (views of different images). On the unit sphere a distance d
    corresponds to cosine similarity 1 - d^2 / 2; d ranges over [0, 2].
    """
    z1, z2 = _check_pair(z1, z2)
    u, v = _directions(z1, "z1"), _directions(z2, "z2")  # (N, D)
    d = torch.cdist(u, v)  # (N, N) d[i, k] = ||u_i - v_k||
    off = ~torch.eye(d.shape[0], dtype=torch.bool, device=d.device)
    return d.diagonal().clone(), d[off]  # (N,), (N(N-1),)


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """L_align = E ||f(x) - f(y)||_2^alpha over positive pairs, on L2-normalised embeddings (0 = perfect)."""
    z1, z2 = _check_pair(z1, z2)
    checks.positive_float("alpha", alpha)
    u, v = _directions(z1, "z1"), _directions(z2, "z2")  # (N, D)
    return (u - v).norm(dim=1).pow(alpha).mean()


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """L_uniform = log E_{i<j} exp(-t ||z_i - z_j||^2) on L2-normalised z; 0 if collapsed, lower = more uniform.

    For points uniform on the sphere S^{D-1} it tends to log E[exp(-2t(1 - u))], u the cosine of two
    random points (for D = 3, u ~ U[-1, 1]: -2t + log(sinh(2t) / (2t))).
    """
    z = _check_z(z, min_rows=2)
    checks.positive_float("t", t)
    u = _directions(z, "z")  # (N, D)
    sq = torch.pdist(u).pow(2)  # (N(N-1)/2,) ||u_i - u_j||^2 for i < j
    return torch.logsumexp(-t * sq, dim=0) - torch.log(torch.tensor(float(sq.numel()), dtype=sq.dtype))


def per_dim_std(z: torch.Tensor) -> torch.Tensor:
    """(D,) standard deviation over the batch of each coordinate of z / ||z|| (~1/sqrt(D) if spread, 0 if collapsed)."""
    z = _check_z(z, min_rows=2)
    return _directions(z, "z").std(dim=0)  # (D,)


def effective_rank(z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """exp(H(p)), p_k = sigma_k / sum sigma: the effective rank of the (uncentred) embedding matrix z (N, D).

    Between 1 (one direction: complete collapse) and min(N, D) (all singular values equal).
    """
    z = _check_z(z)
    checks.nonnegative_float("eps", eps)
    s = torch.linalg.svdvals(z.double() / (z.abs().max().double() or 1.0))  # (min(N, D),) scale-free: p is a ratio
    if s.sum() <= eps:
        raise ValueError("effective_rank of an all-zero matrix is undefined")
    p = s / s.sum()
    p = p[p > eps]
    return torch.exp(-(p * p.log()).sum()).to(z.dtype)


def summary(z1: torch.Tensor, z2: torch.Tensor) -> dict[str, float]:
    """The scalar diagnostics of a batch of positive pairs, as floats (for tables and cached JSON)."""
    z = torch.cat([z1, z2])
    return {
        "alignment": float(alignment(z1, z2)),
        "uniformity": float(uniformity(z1)),
        "mean_per_dim_std": float(per_dim_std(z).mean()),
        "one_over_sqrt_D": float(z.shape[1] ** -0.5),
        "effective_rank": float(effective_rank(z1)),
        "D": int(z.shape[1]),
    }
