"""The NT-Xent logits and their gradient: the one core under ``nt_xent``, the queue and memory-bank loss
(``simclr_core.nn.queue``) and the distributed loss (``simclr_core.train.distributed``).

Chen et al. 2020 (arXiv:2002.05709), eq. (1). The 2N rows z = [view-1 rows, view-2 rows] are made unit vectors
u_k (``unit_rows``); row i's positive partner is j(i) = (i + N) mod 2N. For a set of anchors (all 2N rows, or the
rows of one process) and the candidates c_k (the 2N unit rows, then K extra keys from a queue or bank):

    L[i, k] = <u_i, c_k> / tau,   L[i, i] = -inf (an anchor is never its own negative),
    l_i = logsumexp_k L[i, k] - L[i, j(i)]        (a log-softmax: never exp, then sum, then log)

The gradient is written out instead of left to autograd. With P = softmax(L) row by row and Y the one-hot rows
of the positives, dl/dL = P - Y, so

    dl/du_anchor = (P - Y) c / tau,   dl/dc = (P - Y)^T u_anchor / tau.

When the anchors are all 2N rows and there are no extra keys, the two meet: du = (P u + P^T u - 2 u_j(i)) / tau,
because Y is symmetric (i <-> j(i) is a pairing): the backward pass is one matrix product with P + P^T (built
by a contiguous transposed copy, which torch blocks for the cache, plus an in-place add), and no (2N, 2N)
gradient of the logits is ever built. The unit rows' own gradient, (I - u u^T) / ||z||, is applied last.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["unit_rows", "ntxent_losses", "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "none")


def _row_norms(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, norm) per row, both > 0, with z / scale / norm the unit rows: scale = the largest |entry| (so a
    norm of 1e-30 or entries of 1e30 neither underflow nor overflow), norm = ||z / scale|| in [1, sqrt(D)]."""
    scale = z.abs().amax(dim=1, keepdim=True)  # (rows, 1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    norm = torch.linalg.vector_norm(z / scale, dim=1, keepdim=True)  # (rows, 1)
    return scale, torch.where(norm > 0, norm, torch.ones_like(norm))


def unit_rows(z: torch.Tensor) -> torch.Tensor:
    """z / ||z|| row by row, in float32 (float64 stays float64), for any norm a float can hold. An all-zero
    row stays zero (``nt_xent`` refuses one: its direction is undefined)."""
    z = z if z.dtype == torch.float64 else z.float()
    scale, norm = _row_norms(z)
    return z / scale / norm


class _NTXent(torch.autograd.Function):
    """l_i for the given anchors; see the module docstring for the forward and backward formulas."""

    @staticmethod
    def forward(ctx, z, keys, anchors, tau: float, reduction: str, group_pairs: int | None):
        n2 = z.shape[0]
        with torch.autocast(z.device.type, enabled=False):
            scale, norm = _row_norms(z)
            u = z / scale / norm  # (2N, D) unit rows
            a = u if anchors is None else u.index_select(0, anchors)  # (A, D)
            c = u if keys is None else torch.cat([u, keys.to(u)])  # (2N + K, D)
            logits = torch.mm(a * (1.0 / tau), c.t())  # (A, 2N + K)  L[i, k] = <u_i, c_k> / tau
            if anchors is None:
                logits.fill_diagonal_(float("-inf"))
                labels = torch.arange(n2, device=z.device).add_(n2 // 2).remainder_(n2)  # (2N,) j(i)
                if group_pairs is not None:  # rows of other groups are no candidates: P is block-diagonal
                    group = torch.arange(n2, device=z.device).remainder_(n2 // 2)  # (2N,) the pair of each row
                    group.div_(group_pairs, rounding_mode="floor")  # (2N,) its group
                    logits.masked_fill_(group[:, None] != group[None, :], float("-inf"))
            else:
                logits[torch.arange(a.shape[0], device=z.device), anchors] = float("-inf")
                labels = (anchors + n2 // 2).remainder_(n2)  # (A,) j(i) at global rows
            # l_i = logsumexp_k L[i, k] - L[i, j(i)] with logsumexp = m_i - log max_k P[i, k], m_i the row's largest
            # logit: max_k P[i, k] = exp(m_i - logsumexp) >= 1 / (2N + K) never underflows, and m_i - L[i, j(i)] >= 0
            # is a plain difference, so the loss is exact for any tau the checks admit
            top = logits.amax(dim=1)  # (A,) m_i
            positive = logits.gather(1, labels[:, None]).squeeze(1)  # (A,) L[i, j(i)]
            probs = torch.softmax(logits, dim=1)  # (A, 2N + K) P
            del logits
            losses = (top - positive).sub_(probs.amax(dim=1).log_())  # (A,) l_i
        ctx.save_for_backward(u, probs, labels, scale, norm, anchors, keys)
        ctx.tau, ctx.reduction = tau, reduction
        if reduction == "mean":
            return losses.mean()
        return losses.sum() if reduction == "sum" else losses

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        u, probs, labels, scale, norm, anchors, keys = ctx.saved_tensors
        n2, n_anchors = u.shape[0], probs.shape[0]
        if ctx.reduction == "none":
            w = grad[:, None].to(u) / ctx.tau  # (A, 1) per-anchor weights
        else:
            w = grad.to(u) / (ctx.tau * (n_anchors if ctx.reduction == "mean" else 1))  # () one weight
        if anchors is None and keys is None and w.dim() == 0:
            both = probs.t().contiguous().add_(probs)  # (2N, 2N) P^T + P: a blocked transpose, then one product
            du = torch.mm(both, u)  # (2N, D) P u + P^T u: every row as an anchor and as a candidate
            del both
            du.sub_(u.index_select(0, labels), alpha=2.0).mul_(w)  # - (Y + Y^T) u, Y symmetric
        else:
            a = u if anchors is None else u.index_select(0, anchors)  # (A, D)
            c = u if keys is None else torch.cat([u, keys.to(u)])  # (2N + K, D)
            wa = a * w  # (A, D)
            d_anchor = torch.mm(probs, c).sub_(u.index_select(0, labels)).mul_(w)  # (A, D) (P - Y) c
            du = torch.mm(probs[:, :n2].t(), wa)  # (2N, D) P^T a: every row as a candidate
            du.index_add_(0, labels, wa, alpha=-1.0)  # - Y^T a
            du = du + d_anchor if anchors is None else du.index_add_(0, anchors, d_anchor)
        du.sub_(u * (u * du).sum(dim=1, keepdim=True))  # (I - u u^T) du
        return du.div_(norm).div_(scale), None, None, None, None, None


def ntxent_losses(z: torch.Tensor, tau: float, reduction: str = "mean", anchors: torch.Tensor | None = None,
                  keys: torch.Tensor | None = None, group_pairs: int | None = None) -> torch.Tensor:
    """The NT-Xent losses of ``anchors`` (default: all 2N rows) among the rows of z and the extra ``keys``.

    Args:
        z: (2N, D) embeddings, [view-1 rows, view-2 rows]; made unit rows here (float32, float64 stays float64).
        tau: temperature, a checked float (``simclr_core.checks.temperature``).
        reduction: "mean" over the anchors, "sum", or "none" (one loss per anchor, in the order of ``anchors``).
        anchors: (A,) int64 row indices of z whose losses are wanted, or None for all 2N rows.
        keys: (K, D) unit-row negatives that get no gradient (a queue or a memory bank), or None.
        group_pairs: m, or None. With m, pairs [g m, (g + 1) m) form group g and an anchor's candidates are the
            2m - 1 other rows of its group only (NT-Xent within groups, ``train.step.grouped_nt_xent``); N must
            be a multiple of m, and anchors and keys must be None.

    No checks and no host synchronisation: callers check once at their public boundary.
    """
    z = z if z.dtype == torch.float64 else z.float()
    keys = None if keys is None or keys.shape[0] == 0 else keys.detach()
    return _NTXent.apply(z, keys, anchors, tau, reduction, group_pairs)
