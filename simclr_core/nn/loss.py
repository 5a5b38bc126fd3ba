"""The NT-Xent (normalised temperature-scaled cross-entropy) loss of SimCLR.

Chen, Kornblith, Norouzi, Hinton (2020), "A Simple Framework for Contrastive Learning of Visual
Representations", arXiv:2002.05709, eq. (1). For an anchor i whose positive partner is j(i):

    l(i, j) = -log  exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)

and the batch loss is the mean over all 2N anchors, so both (i, j) and (j, i) count (the paper's
"L = 1/2N sum_k [l(2k-1, 2k) + l(2k, 2k-1)]"). The default tau = 0.5 follows the paper's CIFAR-10
appendix (B.9); its ImageNet default is 0.1.

In logit form: row i of the logits holds sim(z_i, z_k) / tau for every candidate k, the diagonal (k = i)
is masked with -inf so exp() makes it vanish from the sum, and

    l(i, j) = -(logits[i, j] - logsumexp_k logits[i, k])

which is computed stably (never exp, then sum, then log). ``nt_xent`` checks its arguments and hands them to
``simclr_core.nn.ntxent``, the one core that the queue, memory-bank and distributed losses share.
``info_nce_from_similarity`` is the same formula on a given similarity matrix (the exercise sheet's form).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .. import checks
from .ntxent import REDUCTIONS, ntxent_losses, unit_rows

__all__ = ["nt_xent", "nt_xent_unchecked", "unit_rows", "info_nce_from_similarity", "positive_pairs"]


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
    """Shapes and dtypes, then one pass over the rows' largest |entry|: finite, and not so small that the row's
    direction is lost (all zeros, or below the normal range of float16 / bfloat16)."""
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
        tiny = torch.finfo(z.dtype).tiny if z.dtype in (torch.float16, torch.bfloat16) else 0.0
        top = z.detach().abs().amax(dim=1)  # (N,) NaN and inf carry through
        if not bool(((top > tiny) & torch.isfinite(top)).all()):
            _raise_bad_row(name, z, top, tiny)


def _raise_bad_row(name: str, z: torch.Tensor, top: torch.Tensor, tiny: float) -> None:
    if not torch.isfinite(top).all():
        bad = (~torch.isfinite(z)).nonzero()[0].tolist()
        raise ValueError(f"{name} holds non-finite values (first at index {bad}: {z[tuple(bad)].item()})")
    row = int((top <= tiny).nonzero()[0])
    if tiny == 0.0:
        raise ValueError(f"{name} row {row} is all zeros: its direction, and so its cosine similarity, is undefined")
    raise ValueError(f"{name} row {row} has no entry above {tiny:.3g}, the smallest normal {z.dtype} number: its "
                     "direction has lost its precision (or is all zeros); compute the embeddings in float32")


def nt_xent_unchecked(z1: torch.Tensor, z2: torch.Tensor, tau: float, reduction: str = "mean") -> torch.Tensor:
    """``nt_xent`` without the argument checks (no host sync): the training loop's step calls this."""
    return ntxent_losses(torch.cat([z1, z2]), tau, reduction)  # (2N, D) rows [z1 rows, z2 rows]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """NT-Xent loss for N positive pairs (z1[k], z2[k]).

    Args:
        z1, z2: (N, D) embeddings of the two views (projection-head outputs); L2-normalised here, so
            ``sim`` is the cosine similarity. Computed in float32 whatever their dtype (float64 stays float64).
            Every row needs a direction: an all-zero row is an error.
        temperature: tau >= 1e-4 (``simclr_core.checks.temperature``), a number; tau is a constant, so a
            tensor that requires grad is refused.
        reduction: "mean" (the paper's loss: mean over all 2N anchors), "sum", or "none" (the 2N
            per-anchor losses in the order [z1 rows, z2 rows]).

    N = 1 is legal: the only candidate left in the denominator is the positive, so the loss is exactly 0
    and so is its gradient (exercise Q3).
    """
    tau = checks.temperature("temperature", temperature)
    checks.one_of("reduction", reduction, REDUCTIONS)
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
        temperature: tau >= 1e-4 (``simclr_core.checks.temperature``).

    Returns:
        (2N,) tensor in S's float dtype, entry i is l(i, positives[i]); its mean is the batch loss. Computed in
        float64, so any similarities a float32 matrix holds give a finite, right loss.
    """
    tau = checks.temperature("temperature", temperature)
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

    logits = S.double() / tau  # (2N, 2N) sim(z_i, z_k) / tau
    logits = logits.masked_fill(~off_diagonal, float("-inf"))  # (2N, 2N) drop k = i
    losses = F.cross_entropy(logits, labels, reduction="none").to(S.dtype)  # (2N,) l(i, positives[i])
    if not torch.isfinite(losses).all():
        raise ValueError(f"S / tau overflows {S.dtype} (|S| up to {S[off_diagonal].abs().max().item():.3g} at "
                         f"tau = {tau:g}): rescale the similarities")
    return losses


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
