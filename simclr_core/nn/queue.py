"""Plentiful negatives without a big batch: a FIFO queue of keys and a momentum encoder.

SimCLR (Chen et al. 2020, arXiv:2002.05709) takes its negatives from the batch, so a batch of N pairs
gives each anchor only 2N - 2 negatives. Two older ideas decouple the number of negatives from N:

- a memory bank (Wu et al. 2018; PIRL, Misra & van der Maaten 2020, arXiv:1912.01991) keeps a stored
  embedding per image and samples negatives from it;
- MoCo (He et al. 2020, arXiv:1911.05722) keeps a FIFO queue of the last K keys, produced by a momentum
  (exponential moving average) copy of the encoder so that old and new keys stay consistent.

Read bottom-up: ``NegativeQueue`` (the FIFO), ``MemoryBank`` (one stored embedding per image, PIRL-style), ``nt_xent_with_queue`` (eq. (1) of SimCLR whose denominator
also runs over the queued keys), ``momentum_update`` / ``MomentumEncoder`` (MoCo's theta_k <- m theta_k +
(1 - m) theta_q; MoCo's default m = 0.999 is for 800k-step ImageNet runs, we default to m = 0.99 because
the workbook's runs are a few thousand steps long).

With an empty queue ``nt_xent_with_queue`` is exactly ``simclr_core.nn.loss.nt_xent``: both are the core of
``simclr_core.nn.ntxent``, here with the keys as extra candidates.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks
from .loss import _check_embeddings
from .ntxent import REDUCTIONS, ntxent_losses, unit_rows

__all__ = ["NegativeQueue", "nt_xent_with_queue", "nt_xent_with_queue_unchecked", "momentum_update", "MomentumEncoder",
           "MemoryBank"]


MAX_STORED = 2**28  # values a queue or bank may hold (1 GiB of float32): larger sizes are a mistake, not a plan


def _check_storage(what: str, name: str, rows: int, dim: int) -> None:
    """Refuse a queue or bank larger than ``MAX_STORED`` values before anything is allocated."""
    if rows * dim > MAX_STORED:
        raise ValueError(f"{what} of {name}={rows} x dim={dim} = {rows * dim} values exceeds the {MAX_STORED} "
                         f"(1 GiB of float32) this library allows; use a smaller {name} or dim")


class NegativeQueue(nn.Module):
    """A FIFO of at most ``size`` L2-normalised, detached keys of dimension ``dim``.

    ``enqueue(keys)`` appends (K, dim) keys; when the queue is full the oldest are dropped. ``keys`` returns
    the stored keys as a (len(q), dim) tensor, OLDEST FIRST. The storage is a ring buffer registered as
    module buffers, so ``.to(device)`` and ``state_dict()`` (checkpointing) work as for any module.
    """

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.dim = checks.positive_int("dim", dim)
        self.size = checks.positive_int("size", size)
        _check_storage("NegativeQueue", "size", size, dim)
        self.register_buffer("_ring", torch.zeros(size, dim))  # (size, dim) ring buffer
        self.register_buffer("_next", torch.zeros((), dtype=torch.long))  # slot the next key goes to
        self.register_buffer("_count", torch.zeros((), dtype=torch.long))  # number of valid keys

    def __len__(self) -> int:
        return int(self._count)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append keys (K, dim): detached, L2-normalised, the oldest dropped when more than ``size``."""
        if not isinstance(keys, torch.Tensor) or keys.dim() != 2 or keys.shape[1] != self.dim:
            shape = tuple(keys.shape) if isinstance(keys, torch.Tensor) else type(keys).__name__
            raise ValueError(f"keys must be a tensor of shape (K, {self.dim}), got {shape}")
        if not keys.is_floating_point():
            raise ValueError(f"keys must be floating-point, got dtype {keys.dtype}")
        _check_key_rows("keys", keys)
        k = unit_rows(keys.detach()).to(self._ring)  # (K, dim) unit vectors
        if k.shape[0] > self.size:
            k = k[-self.size :]  # only the newest ``size`` can survive
        K = k.shape[0]
        slots = (int(self._next) + torch.arange(K, device=k.device)) % self.size  # (K,)
        self._ring[slots] = k
        self._next.fill_((int(self._next) + K) % self.size)
        self._count.fill_(min(self.size, int(self._count) + K))

    @property
    def keys(self) -> torch.Tensor:
        """The stored keys (len, dim), oldest first."""
        n = int(self._count)
        if n < self.size:
            return self._ring[:n]  # (n, dim) never wrapped: slots 0..n-1 in arrival order
        return torch.roll(self._ring, shifts=-int(self._next), dims=0)  # (size, dim) oldest at _next

    def clear(self) -> None:
        self._next.zero_()
        self._count.zero_()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}, len={len(self)}"


def _queue_keys(queue, D: int, like: torch.Tensor) -> torch.Tensor:
    if queue is None:
        return like.new_zeros(0, D)
    Q = queue.keys if isinstance(queue, NegativeQueue) else queue
    if not isinstance(Q, torch.Tensor) or Q.dim() != 2 or Q.shape[1] != D:
        shape = tuple(Q.shape) if isinstance(Q, torch.Tensor) else type(Q).__name__
        raise ValueError(f"queue must be a NegativeQueue, a (K, {D}) tensor of keys, or None; got {shape}")
    if not Q.is_floating_point():
        raise ValueError(f"queue keys must be floating-point, got dtype {Q.dtype}")
    _check_key_rows("queue", Q)
    return Q.detach()  # (K, D) constants: no gradient into the queue


def _check_key_rows(name: str, keys: torch.Tensor) -> None:
    """Every key finite and with a direction: a zero key would add exp(0) = 1 to every denominator."""
    top = keys.detach().abs().amax(dim=1) if keys.shape[0] else keys.new_ones(0)  # (K,)
    if not torch.isfinite(top).all():
        raise ValueError(f"{name} holds non-finite keys (NaN or inf)")
    if (top == 0).any():
        raise ValueError(f"{name} holds an all-zero key (row {int((top == 0).nonzero()[0])}): its direction is undefined")


def nt_xent_with_queue(z1: torch.Tensor, z2: torch.Tensor, queue=None, temperature: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """NT-Xent whose denominator also runs over K queued keys (MoCo-style extra negatives).

    For anchor i (rows ordered [z1 rows, z2 rows] as in ``nt_xent``) with positive j(i):

        l(i) = -log exp(s_ij / tau) / ( sum_{k != i} exp(s_ik / tau) + sum_{q=1}^{K} exp(sim(z_i, key_q) / tau) )

    The in-batch candidates k run over the 2N - 1 other views (never the anchor itself); the keys are
    treated as constants (detached). ``queue`` is a NegativeQueue, a (K, D) tensor, or None (K = 0).
    The caller enqueues new keys AFTER computing the loss, so a batch never meets its own keys.
    """
    tau = checks.temperature("temperature", temperature)
    checks.one_of("reduction", reduction, REDUCTIONS)
    _check_embeddings(z1, z2)
    return nt_xent_with_queue_unchecked(z1, z2, _queue_keys(queue, z1.shape[1], z1), tau, reduction)


def nt_xent_with_queue_unchecked(z1: torch.Tensor, z2: torch.Tensor, Q: torch.Tensor, tau: float,
                                 reduction: str = "mean") -> torch.Tensor:
    """``nt_xent_with_queue`` with the keys Q (K, D) given and no argument checks (the training step's path)."""
    keys = unit_rows(Q.detach())  # (K, D) constants: no gradient into the keys
    return ntxent_losses(torch.cat([z1, z2]), tau, reduction, keys=keys)  # the positive sits in the batch block


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float = 0.99) -> None:
    """theta_target <- m * theta_target + (1 - m) * theta_online (MoCo eq. (2)); buffers are copied."""
    m = checks.probability("momentum m", m)
    p_on, p_tg = list(online.parameters()), list(target.parameters())
    if len(p_on) != len(p_tg) or any(a.shape != b.shape for a, b in zip(p_on, p_tg)):
        raise ValueError("online and target must have the same architecture (matching parameter shapes)")
    for p, q in zip(p_on, p_tg):
        q.mul_(m).add_(p.detach(), alpha=1.0 - m)
    for b, c in zip(online.buffers(), target.buffers()):  # BatchNorm running statistics
        c.copy_(b)


class MomentumEncoder(nn.Module):
    """A frozen EMA copy of ``model``: ``update(online)`` moves it towards the online weights; forward has no grad."""

    def __init__(self, model: nn.Module, m: float = 0.99):
        super().__init__()
        self.m = checks.probability("momentum m", m)
        self.target = copy.deepcopy(model)
        for p in self.target.parameters():
            p.requires_grad_(False)

    def update(self, online: nn.Module) -> None:
        momentum_update(online, self.target, self.m)

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.target(*args, **kwargs)


class MemoryBank(nn.Module):
    """PIRL-style memory bank: one stored unit-norm embedding per dataset image (Wu et al. 2018; Misra & van der
    Maaten 2020, Sec. 3.2). ``sample(K, g)`` draws K stored embeddings uniformly as negatives; ``update(idx, z)``
    moves the entries of images ``idx`` towards their new embeddings z with momentum m (PIRL: m = 0.5):

        bank[i] <- normalise(m * bank[i] + (1 - m) * normalise(z_i))

    Entries start as random unit vectors (seeded), as in PIRL. A buffer, so it moves and checkpoints with the module.
    """

    def __init__(self, n: int, dim: int, momentum: float = 0.5, seed: int = 0):
        super().__init__()
        self.n, self.dim = checks.positive_int("n", n), checks.positive_int("dim", dim)
        _check_storage("MemoryBank", "n", n, dim)
        self.momentum = checks.probability("momentum", momentum)
        g = torch.Generator().manual_seed(checks.nonnegative_int("seed", seed))
        self.register_buffer("bank", F.normalize(torch.randn(n, dim, generator=g), dim=1))  # (n, dim)

    @torch.no_grad()
    def sample(self, K: int, generator: torch.Generator | None = None, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """K stored embeddings drawn uniformly with replacement: (K, dim).

        ``exclude``: dataset indices never to draw (a batch's own images: an anchor's own entry is a view of the
        same image, not a negative). The K draws are uniform over the other n - len(unique(exclude)) entries."""
        checks.positive_int("K (negatives to draw)", K)
        if exclude is None:
            idx = torch.randint(self.n, (K,), generator=generator)  # (K,)
        else:
            banned = torch.unique(exclude.detach().cpu().long())  # (E,) sorted
            if banned.numel() and (int(banned[0]) < 0 or int(banned[-1]) >= self.n):
                raise ValueError(f"exclude must index entries 0..{self.n - 1}, got {banned[0]}..{banned[-1]}")
            if banned.numel() >= self.n:
                raise ValueError(f"exclude bans all {self.n} entries of the bank: no negative is left to draw")
            rank = torch.randint(self.n - banned.numel(), (K,), generator=generator)  # (K,) rank among the allowed
            # the rank-th allowed index is rank + #{banned e_j : e_j - j <= rank} (e_j - j: allowed ones below e_j)
            shift = banned - torch.arange(banned.numel())  # (E,) non-decreasing
            idx = rank + torch.searchsorted(shift, rank, right=True)  # (K,)
        return self.bank[idx.to(self.bank.device)]

    @torch.no_grad()
    def update(self, idx: torch.Tensor, z: torch.Tensor) -> None:
        """bank[idx] <- normalise(m bank[idx] + (1 - m) normalise(z)), z (len(idx), dim)."""
        new = self.momentum * self.bank[idx] + (1 - self.momentum) * unit_rows(z.detach()).to(self.bank.dtype)
        self.bank[idx] = F.normalize(new, dim=1)

    def extra_repr(self) -> str:
        return f"n={self.n}, dim={self.dim}, momentum={self.momentum}"
