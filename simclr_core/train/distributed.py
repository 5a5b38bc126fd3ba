"""Multi-process SimCLR: the negatives of every process, gathered with their gradients.

Chen et al. 2020 (arXiv:2002.05709), Sec. 2.2 "Training with large batch size": the paper trains with
batches of up to 8192 spread over 128 TPU cores, and *every* anchor is contrasted against the 2N - 2
negatives of the whole global batch, not just the ones on its own core. Data parallelism by itself
(PyTorch's DistributedDataParallel, DDP) only averages gradients; the loss on each process would see only
its own 2B - 2 negatives. SimCLR needs one more thing from the distributed engine: an all-gather of the
embeddings z that carries gradients back to the process that produced them.

Read bottom-up:
- ``nt_xent_rank``: pure maths, no communication. Given the embeddings of the GLOBAL batch (N = K * B
  pairs from K processes, rank-major order) it returns the loss of rank r's 2B anchors against all
  2N - 1 candidates. The diagonal is masked and the positive picked at GLOBAL indices: rank r's z1 row b
  is global row r*B + b, its z2 row is N + r*B + b. (The classic bug uses the local indices b and B + b.)
  The mean over ranks of these per-rank means is exactly ``simclr_core.nn.loss.nt_xent`` on the global batch;
  both are the one NT-Xent core of ``simclr_core.nn.ntxent``, here with this rank's rows as the anchors.
- ``gather_with_grad``: all_gather whose backward sums the incoming gradients of every process
  (all_reduce) and hands each process the slice of its own rows.
- ``nt_xent_distributed``: the two together; what a training step calls on each process.
- ``init_distributed`` / ``cleanup`` / ``barrier`` / ``is_main_process`` / ``reduce_mean`` / ``any_process``: process
  group plumbing for ``torchrun`` (NCCL on GPUs, gloo on CPU), in ``train.process_group`` and importable from here.

Why the gradients come out right: every process computes L_r (mean over its 2B anchors). The objective
is L = (1/K) sum_r L_r, which is the single-process loss on the global batch because all L_r average the
same number of anchors. Backward on process r gives dz_r = sum_r' dL_r'/dz_r (the all_reduce), i.e.
K * dL/dz_r, and DDP's gradient *averaging* (1/K) over processes turns the parameter gradients into
exactly dL/dtheta. So the gradient w.r.t. this process's embeddings is K times the single-process one,
and the parameter gradients after DDP equal the single-process ones (tests/test_distributed.py checks
both to 1e-5 with 2 gloo processes).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .. import checks
from ..nn.loss import _check_embeddings, nt_xent
from ..nn.ntxent import REDUCTIONS, ntxent_losses
from .process_group import (DistInfo, TorchrunEnv, _world, any_process, barrier, cleanup, init_distributed,
                            is_main_process, reduce_mean, torchrun_env)

__all__ = [
    "DistInfo",
    "TorchrunEnv",
    "torchrun_env",
    "init_distributed",
    "cleanup",
    "barrier",
    "is_main_process",
    "reduce_mean",
    "any_process",
    "gather_with_grad",
    "nt_xent_rank",
    "nt_xent_distributed",
    "nt_xent_distributed_unchecked",
]


# --------------------------------------------------------------------------- the loss (pure maths)


def _check_rank(rank: int, world_size: int) -> None:
    checks.positive_int("world_size", world_size)
    checks.int_in_range(f"rank (world_size={world_size})", rank, 0, world_size - 1)


def nt_xent_rank(
    z1_all: torch.Tensor,
    z2_all: torch.Tensor,
    rank: int,
    world_size: int,
    temperature: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """NT-Xent of rank ``rank``'s anchors against the whole global batch (no communication).

    Args:
        z1_all, z2_all: (N, D) embeddings of the global batch, N = world_size * B, rank-major: rows
            r*B .. r*B + B - 1 come from rank r (what ``gather_with_grad`` returns).
        rank, world_size: which B pairs are this process's anchors.
        temperature: tau > 0 (0.5 = the paper's CIFAR-10 default, appendix B.9).
        reduction: "mean" over the 2B local anchors, "sum", or "none" (the 2B losses, [z1 rows, z2 rows]).

    ``mean_r nt_xent_rank(Z1, Z2, r, K) == nt_xent(Z1, Z2)`` for every K dividing N.
    """
    tau = checks.temperature("temperature", temperature)
    checks.one_of("reduction", reduction, REDUCTIONS)
    _check_embeddings(z1_all, z2_all)
    _check_rank(rank, world_size)
    N = z1_all.shape[0]
    if N % world_size:
        raise ValueError(f"the global batch of N={N} pairs does not split evenly over world_size={world_size}")
    return _nt_xent_rank(z1_all, z2_all, rank, world_size, tau, reduction)


def _nt_xent_rank(z1_all, z2_all, rank: int, world_size: int, tau: float, reduction: str = "mean") -> torch.Tensor:
    N = z1_all.shape[0]
    B = N // world_size
    b = torch.arange(B, device=z1_all.device)  # (B,)
    anchors = torch.cat([rank * B + b, N + rank * B + b])  # (2B,) GLOBAL row index of each local anchor
    return ntxent_losses(torch.cat([z1_all, z2_all]), tau, reduction, anchors=anchors)  # (2N, D) all candidates


# --------------------------------------------------------------------------- the gather


class _GatherWithGrad(torch.autograd.Function):
    """Forward: all_gather (B, D) -> (K*B, D). Backward: all_reduce(sum) the (K*B, D) gradient, keep my B rows.

    Every process's loss depends on every process's rows, so the gradient w.r.t. my rows is the sum over
    processes of what their losses say about them: exactly what all_reduce(SUM) followed by my slice is.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        rank, world_size = _world()
        z = z.contiguous()
        parts = [torch.empty_like(z) for _ in range(world_size)]
        dist.all_gather(parts, z)
        ctx.rank, ctx.B = rank, z.shape[0]
        return torch.cat(parts)  # (K*B, D)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # (K*B, D) never reduce autograd's buffer in place
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.B : (ctx.rank + 1) * ctx.B]  # (B, D)


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """All-gather (B, D) rows from every process into (world_size * B, D), rank-major, with gradients.

    Identity when there is no process group (or world_size 1). Every process must pass the same shape;
    this is checked (one tiny extra all_gather) because NCCL would otherwise hang or return garbage.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError(f"z must be a (B, D) torch.Tensor, got {getattr(z, 'shape', type(z).__name__)}")
    rank, world_size = _world()
    if world_size == 1:
        return z
    shape = torch.tensor(z.shape, device=z.device)  # (2,)
    shapes = [torch.empty_like(shape) for _ in range(world_size)]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shape) for s in shapes):
        raise ValueError(
            f"every process must gather the same (B, D); got {[tuple(s.tolist()) for s in shapes]} "
            "(use drop_last=True in the DistributedSampler/DataLoader)"
        )
    return _GatherWithGrad.apply(z)


def nt_xent_distributed(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent over the GLOBAL batch, called on every process with its own (B, D) pairs.

    This process's 2B anchors are contrasted against all 2N - 1 candidates of the global batch
    (N = world_size * B); the result is the mean over the local anchors. Averaged over processes (which
    DDP does to the gradients) this is ``nt_xent`` on the concatenated global batch. Without a process
    group it is exactly ``nt_xent(z1, z2, temperature)``.
    """
    tau = checks.temperature("temperature", temperature)
    _check_embeddings(z1, z2)
    return nt_xent_distributed_unchecked(z1, z2, tau)


def nt_xent_distributed_unchecked(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """``nt_xent_distributed`` without the argument checks (no host sync): the training step calls this."""
    rank, world_size = _world()
    B, D = z1.shape
    N = world_size * B
    z_all = gather_with_grad(torch.cat([z1, z2]))  # (2N, D) rank-major: z1 of rank 0, z2 of rank 0, z1 of rank 1, ...
    z_all = z_all.view(world_size, 2, B, D).transpose(0, 1).reshape(2 * N, D)  # (2N, D) [all z1 rows, all z2 rows]
    return _nt_xent_rank(z_all[:N], z_all[N:], rank, world_size, tau)  # one gather, one all-reduce per step


# --------------------------------------------------------------------------- self-check under torchrun


def self_check(N: int = 8, D: int = 16, temperature: float = 0.5, device: str = "auto") -> float:
    """Check this process group end to end; returns the largest deviation from single-process nt_xent.

    Every process builds the same seeded global batch of N pairs, keeps its N / world_size rows, runs
    ``nt_xent_distributed`` + backward, and compares the loss (averaged over processes) and its
    embedding gradient / world_size with single-process ``nt_xent`` computed locally on the whole batch
    (float64, so the deviation should be ~1e-16). Run it with
    ``torchrun --standalone --nproc-per-node 2 -m simclr_core.train.distributed`` (gloo on CPU, NCCL on GPUs).
    """
    info = init_distributed(device)
    try:
        if N % info.world_size:
            raise ValueError(f"N={N} pairs do not split over world_size={info.world_size}")
        g = torch.Generator().manual_seed(0)
        Z1, Z2 = (torch.randn(N, D, generator=g, dtype=torch.float64).to(info.device) for _ in range(2))  # (N, D)
        ref1, ref2 = Z1.clone().requires_grad_(), Z2.clone().requires_grad_()
        ref = nt_xent(ref1, ref2, temperature)
        ref.backward()
        B, r = N // info.world_size, info.rank
        z1 = Z1[r * B : (r + 1) * B].clone().requires_grad_()  # (B, D) this process's pairs
        z2 = Z2[r * B : (r + 1) * B].clone().requires_grad_()  # (B, D)
        loss = nt_xent_distributed(z1, z2, temperature)
        loss.backward()
        err = max(
            float((reduce_mean(loss) - ref.detach()).abs()),
            float((z1.grad / info.world_size - ref1.grad[r * B : (r + 1) * B]).abs().max()),
            float((z2.grad / info.world_size - ref2.grad[r * B : (r + 1) * B]).abs().max()),
        )
        err_t = torch.tensor([err], dtype=torch.float64, device=info.device)  # (1,)
        if dist.is_initialized():
            dist.all_reduce(err_t, op=dist.ReduceOp.MAX)  # the worst process decides
        err = float(err_t.item())
        if info.is_main:
            backend = dist.get_backend() if dist.is_initialized() else "none"
            print(f"world_size={info.world_size} backend={backend} device={info.device} global batch N={N}: "
                  f"loss={ref.item():.6f}, max |distributed - single-process| (loss, dL/dz), worst process = {err:.2e}")
        return err
    finally:
        cleanup()


if __name__ == "__main__":
    raise SystemExit(0 if self_check() < 1e-9 else 1)
