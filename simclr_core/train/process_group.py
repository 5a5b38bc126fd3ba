"""The process group that ``torchrun`` describes: its environment checked before any work, joined or not, and the
small collectives a training run needs (``barrier``, ``any_process``, ``min_over_processes``, ``reduce_mean``).

``torchrun`` starts one process per GPU (or per CPU worker) and sets RANK, WORLD_SIZE and LOCAL_RANK; ``torchrun_env``
reads and checks them, ``init_distributed`` joins the default process group (NCCL on GPUs, gloo on CPU) or, without
torchrun, returns one process and creates no group. The gathered loss is ``train.distributed``.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..precision import resolve_device

__all__ = ["DistInfo", "TorchrunEnv", "torchrun_env", "init_distributed", "cleanup", "barrier", "is_main_process",
           "reduce_mean", "any_process", "min_over_processes"]


def _world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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


def min_over_processes(v: int) -> int:
    """The smallest of ``v`` over all processes, on every process (a collective: all processes must call it), e.g.
    the number of steps a time budget buys, on which they must agree; ``v`` itself without a process group."""
    _, world_size = _world()
    if world_size == 1:
        return int(v)
    t = torch.tensor([v], device=_collective_device())  # (1,)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (e.g. rank 0 logging the global loss); a detached copy on x's device."""
    _, world_size = _world()
    if world_size == 1:
        return x.detach().clone()
    t = x.detach().to(_collective_device(), copy=True)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / world_size).to(x.device)
