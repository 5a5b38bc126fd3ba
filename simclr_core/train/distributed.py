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
- ``init_distributed`` / ``cleanup`` / ``barrier`` / ``is_main_process`` / ``reduce_mean``: process
  group plumbing for ``torchrun`` (NCCL on GPUs, gloo on CPU).

Why the gradients come out right: every process computes L_r (mean over its 2B anchors). The objective
is L = (1/K) sum_r L_r, which is the single-process loss on the global batch because all L_r average the
same number of anchors. Backward on process r gives dz_r = sum_r' dL_r'/dz_r (the all_reduce), i.e.
K * dL/dz_r, and DDP's gradient *averaging* (1/K) over processes turns the parameter gradients into
exactly dL/dtheta. So the gradient w.r.t. this process's embeddings is K times the single-process one,
and the parameter gradients after DDP equal the single-process ones (tests/test_distributed.py checks
both to 1e-5 with 2 gloo processes).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .. import checks
from ..nn.loss import _check_embeddings, nt_xent
from ..nn.ntxent import REDUCTIONS, ntxent_losses
from ..precision import resolve_device

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


def _world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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


# --------------------------------------------------------------------------- process-group plumbing


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its global rank, the number of processes, its rank on this node, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class TorchrunEnv:
    """RANK, WORLD_SIZE and LOCAL_RANK as ``torchrun`` sets them (0, 1, 0 when they are unset: one process)."""

    rank: int
    world_size: int
    local_rank: int


def _env_int(environ, name: str, default: int, valid: str) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"environment variable {name} must be {valid}, got {raw!r}") from None


def torchrun_env(environ=None) -> TorchrunEnv:
    """Read and check the torchrun variables of ``environ`` (default ``os.environ``), before any work is done.

    Each must be an integer: WORLD_SIZE >= 1, RANK and LOCAL_RANK in 0..WORLD_SIZE-1. A ValueError names the
    variable, its value and what would be valid."""
    environ = os.environ if environ is None else environ
    world_size = _env_int(environ, "WORLD_SIZE", 1, "an integer >= 1 (the number of processes)")
    if world_size < 1:
        raise ValueError(f"environment variable WORLD_SIZE must be an integer >= 1 (the number of processes), "
                         f"got {environ.get('WORLD_SIZE')!r}")
    valid_rank = f"an integer in 0..{world_size - 1} (WORLD_SIZE={world_size})"
    rank = _env_int(environ, "RANK", 0, valid_rank)
    if not 0 <= rank < world_size:
        raise ValueError(f"environment variable RANK must be {valid_rank}, got {environ.get('RANK')!r}")
    valid_local = f"an integer in 0..{world_size - 1} (WORLD_SIZE={world_size})"
    local_rank = _env_int(environ, "LOCAL_RANK", 0, valid_local)
    if not 0 <= local_rank < world_size:
        raise ValueError(f"environment variable LOCAL_RANK must be {valid_local}, got {environ.get('LOCAL_RANK')!r}")
    return TorchrunEnv(rank, world_size, local_rank)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes, or run as a single process.

    Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment, WORLD_SIZE > 1) this initialises the
    default process group, NCCL when the device is a GPU and gloo on CPU, and pins process ``local_rank``
    to GPU ``cuda:local_rank``. Otherwise it returns world_size 1 and creates no process group.

    device: "auto" (GPU if available, else mps, else cpu), "cpu", "cuda", "cuda:<i>" or "mps" (the last two
    single process only; under torchrun the GPU is chosen by LOCAL_RANK), as ``simclr_core.precision`` decides.
    """
    dev = resolve_device(device)  # spelling and presence checked, 'auto' resolved: simclr_core.precision

    env = torchrun_env()
    rank, world_size, local_rank = env.rank, env.world_size, env.local_rank

    if world_size == 1:
        return DistInfo(0, 1, 0, dev)
    if dev.type == "mps":
        raise ValueError(f"device {device!r} is mps (an Apple GPU), where torchrun's process groups (NCCL, gloo) do not run; use 'cpu'")
    use_cuda = dev.type == "cuda"
    if use_cuda:
        if dev.index is not None:
            raise ValueError(f"device {device!r}: under torchrun pass 'cuda' (or 'auto'); LOCAL_RANK picks the GPU")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, dev)


def cleanup() -> None:
    """Destroy the default process group, if there is one (safe to call always).

    First it collects garbage, so that objects left in reference cycles that hold on to the group (a
    DistributedDataParallel wrapper and its autograd hooks, say) are freed while the group and the interpreter are
    alive rather than during interpreter shutdown, where freeing them can abort the process ("terminate called
    without an active exception"). No barrier here: cleanup also runs on error paths, where the other processes
    may never reach one.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0, or when there is no process group."""
    return _world()[0] == 0


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _collective_device() -> torch.device:
    """Where small bookkeeping tensors must live for the default group: this GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_process(flag: bool) -> bool:
    """True on every process if ``flag`` is True on at least one (a collective: all processes must call it).

    For decisions that must agree across processes, e.g. "stop now, the time limit has passed": if one
    process left the training loop alone, the others would wait forever in their next all_gather.
    """
    _, world_size = _world()
    if world_size == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())  # (1,)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (e.g. rank 0 logging the global loss); a detached copy on x's device."""
    _, world_size = _world()
    if world_size == 1:
        return x.detach().clone()
    t = x.detach().to(_collective_device(), copy=True)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / world_size).to(x.device)


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
