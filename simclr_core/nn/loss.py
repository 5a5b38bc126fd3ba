"""The NT-Xent (normalised temperature-scaled cross-entropy) loss of SimCLR.

Chen, Kornblith, Norouzi, Hinton (2020), "A Simple Framework for Contrastive Learning of Visual
Representations", arXiv:2002.05709, eq. (1). For an anchor i whose positive partner is j(i):

    l(i, j) = -log  exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)

and the batch loss is the mean over all 2N anchors, so both (i, j) and (j, i) count (the paper's
"L = 1/2N sum_k [l(2k-1, 2k) + l(2k, 2k-1)]"). The default tau = 0.5 follows the paper's CIFAR-10
appendix (B.9); its ImageNet default is 0.1.

The code is written as that formula in logit form: row i of ``logits`` holds sim(z_i, z_k) / tau for
every candidate k, the diagonal (k = i) is masked with -inf so exp() makes it vanish from the sum, and
the loss is ``cross_entropy(logits, labels)`` with labels[i] = j(i), i.e.

    l(i, j) = -(logits[i, j] - logsumexp_k logits[i, k])

which is computed stably (never exp, then sum, then log).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .. import checks

__all__ = ["nt_xent", "nt_xent_unchecked", "unit_rows", "info_nce_from_similarity", "positive_pairs", "check_temperature"]

_REDUCTIONS = ("mean", "sum", "none")


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise ValueError if it is not a finite number > 0."""
    if isinstance(temperature, bool):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    try:
        tau = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}") from None
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return tau


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def positive_pairs(N: int, layout: str = "halves", device=None) -> torch.Tensor:
    """The positive partner index of each of the 2N rows.

    layout="halves": rows are [z1 rows, z2 rows], so k pairs with k + N (what ``nt_xent`` uses).
    layout="adjacent": rows are interleaved views (z_1, z_2), (z_3, z_4), ... as in the exercise set,
    so 0 <-> 1, 2 <-> 3, ...
    """
    checks.positive_int("N (number of positive pairs)", N)
    k = torch.arange(N, device=device)
    if layout == "halves":
        return torch.cat([k + N, k])  # (2N,)
    if layout == "adjacent":
        return torch.arange(2 * N, device=device) ^ 1  # (2N,) 0<->1, 2<->3, ...
    raise ValueError(f"layout must be 'halves' or 'adjacent', got {layout!r}")


def _check_embeddings(z1: torch.Tensor, z2: torch.Tensor) -> None:
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape (N, D), got {type(z).__name__}")
        if z.dim() != 2:
            raise ValueError(f"{name} must have exactly 2 dims (N, D), got shape {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 1 or z1.shape[1] < 1:
        raise ValueError(f"need at least one pair of at least 1-d embeddings, got shape {tuple(z1.shape)}")
    for name, z in (("z1", z1), ("z2", z2)):
        if not torch.isfinite(z).all():
            bad = (~torch.isfinite(z)).nonzero()[0].tolist()
            raise ValueError(f"{name} holds non-finite values (first at index {bad}: {z[tuple(bad)].item()})")


def unit_rows(z: torch.Tensor) -> torch.Tensor:
    """z / ||z|| row by row, in float32 (float64 stays float64), for any norm: each row is first divided by its
    largest |entry|, so a norm of 1e-20 does not hit F.normalize's eps and entries of 1e20 do not overflow the
    norm. An all-zero row stays zero."""
    z = z if z.dtype == torch.float64 else z.float()
    scale = z.abs().amax(dim=1, keepdim=True)  # (rows, 1)
    z = z / torch.where(scale > 0, scale, torch.ones_like(scale))
    return F.normalize(z, dim=1)


def nt_xent_unchecked(z1: torch.Tensor, z2: torch.Tensor, tau: float, reduction: str = "mean") -> torch.Tensor:
    """``nt_xent`` without the argument checks (no host sync): the training loop's step calls this."""
    N = z1.shape[0]
    z = unit_rows(torch.cat([z1, z2]))  # (2N, D) unit vectors
    logits = (z / tau) @ z.T  # (2N, 2N) sim(z_i, z_k) / tau  (dividing the (2N, D) side is cheaper)
    logits.fill_diagonal_(float("-inf"))  # (2N, 2N) k = i is never a candidate
    labels = positive_pairs(N, device=z.device)  # (2N,) j(i), the positive partner of anchor i
    return F.cross_entropy(logits, labels, reduction=reduction)  # -log softmax(logits)[i, j(i)]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """NT-Xent loss for N positive pairs (z1[k], z2[k]).

    Args:
        z1, z2: (N, D) embeddings of the two views (projection-head outputs); L2-normalised here, so
            ``sim`` is the cosine similarity. Computed in float32 whatever their dtype (float64 stays float64).
        temperature: tau > 0.
        reduction: "mean" (the paper's loss: mean over all 2N anchors), "sum", or "none" (the 2N
            per-anchor losses in the order [z1 rows, z2 rows]).

    N = 1 is legal: the only candidate left in the denominator is the positive, so the loss is exactly 0
    and so is its gradient (exercise Q3).
    """
    tau = check_temperature(temperature)
    _check_reduction(reduction)
    _check_embeddings(z1, z2)
    return nt_xent_unchecked(z1, z2, tau, reduction)


def _as_float_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.double()
    try:
        return torch.as_tensor(x, dtype=torch.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric matrix, got {type(x).__name__}: {err}") from None


def info_nce_from_similarity(S, positives: Sequence[int], temperature: float) -> torch.Tensor:
    """Per-anchor InfoNCE losses from a given (2N, 2N) similarity matrix.

    Args:
        S: (2N, 2N) matrix with S[i, k] = sim(z_i, z_k) (tensor, numpy array or nested lists). The
            diagonal is ignored whatever it holds (NaN for "-" in the exercise sheet is fine).
        positives: length-2N sequence, positives[i] = index of anchor i's positive partner; must be a
            pairing (positives[positives[i]] == i, positives[i] != i). See ``positive_pairs``.
        temperature: tau > 0.

    Returns:
        (2N,) tensor, entry i is l(i, positives[i]); its mean is the batch loss.
    """
    tau = check_temperature(temperature)
    S = _as_float_tensor(S, "S")
    if S.dim() != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square (2N, 2N) matrix, got shape {tuple(S.shape)}")
    n = S.shape[0]
    if n < 2 or n % 2:
        raise ValueError(f"S must be (2N, 2N) with an even size >= 2, got size {n}")
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=S.device)
    if not torch.isfinite(S[off_diagonal]).all():
        raise ValueError("S holds non-finite values off the diagonal; only the diagonal may be NaN/inf")
    labels = _check_pairing(positives, n, S.device)

    logits = S / tau  # (2N, 2N) sim(z_i, z_k) / tau
    logits = logits.masked_fill(~off_diagonal, float("-inf"))  # (2N, 2N) drop k = i
    return F.cross_entropy(logits, labels, reduction="none")  # (2N,) l(i, positives[i])


def _check_pairing(positives, n: int, device) -> torch.Tensor:
    try:
        p = torch.as_tensor(positives, device=device)
    except (TypeError, ValueError):
        raise ValueError(f"positives must be a sequence of {n} integer indices, got {positives!r}") from None
    if p.dim() != 1 or p.numel() != n or p.is_floating_point() or p.dtype == torch.bool:
        raise ValueError(f"positives must be {n} integer indices (one per row of S), got {positives!r}")
    p = p.long()
    if ((p < 0) | (p >= n)).any():
        raise ValueError(f"positives must index rows 0..{n - 1}, got {p.tolist()}")
    rows = torch.arange(n, device=device)
    if (p == rows).any():
        i = int((p == rows).nonzero()[0])
        raise ValueError(f"positives is not a valid pairing: row {i} is its own positive ({p.tolist()})")
    if (p[p] != rows).any():
        i = int((p[p] != rows).nonzero()[0])
        raise ValueError(
            f"positives is not a valid pairing: row {i} -> {int(p[i])} but row {int(p[i])} -> {int(p[p[i]])} "
            f"({p.tolist()}); every row must be the positive of its own positive"
        )
    return p
