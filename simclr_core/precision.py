"""The one place that decides device, autocast dtype and memory format, for training, features and baselines.

- ``resolve_device``: 'auto' -> cuda if available, else mps, else cpu.
- ``Precision``: the policy of one run, made by ``precision_for(device, amp, channels_last)``:
  bfloat16 autocast on CUDA and on CPUs that compute bf16 natively (AVX512-BF16 or AMX; elsewhere bf16 is
  emulated and slower than float32, so the run stays float32), and the channels_last (NHWC) memory format on CUDA
  (tensor cores) and CPU (oneDNN's native layout, about 1.8x faster convolutions, ``benchmarks/bench_train.py``).
  ``amp=False`` (CLI ``--no-amp``) means float32 everywhere: training, feature extraction and the baselines.
  Losses are always computed in float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["resolve_device", "cpu_has_fast_bf16", "Precision", "precision_for"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; otherwise the named device, checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {device!r}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was requested but MPS is not available here; use 'cpu' or 'auto'")
    return dev


def cpu_has_fast_bf16() -> bool:
    """Does this CPU compute bfloat16 natively (AVX512-BF16 or AMX, as oneDNN reports)?"""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """Where and how a model runs: ``device``, autocast ``dtype`` (None: float32) and ``channels_last``."""

    device: torch.device
    dtype: torch.dtype | None = None
    channels_last: bool = False

    def prepare(self, module: nn.Module) -> nn.Module:
        """``module`` on the device, in the memory format to run in."""
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch (B, C, H, W) in the memory format the model runs in."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        """The autocast context of this policy (a no-op context for float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> str:
        dt = {None: "float32", torch.bfloat16: "bfloat16 autocast", torch.float16: "float16 autocast"}[self.dtype]
        return f"{self.device}, {dt}{', channels_last' if self.channels_last else ''}"


def precision_for(device: str | torch.device = "auto", amp: bool = True, channels_last: bool = True) -> Precision:
    """The policy for ``device``: bf16 autocast where it is native (and ``amp``), channels_last on CUDA and CPU."""
    dev = resolve_device(device)
    native_bf16 = dev.type == "cuda" or (dev.type == "cpu" and cpu_has_fast_bf16())
    return Precision(dev, torch.bfloat16 if amp and native_bf16 else None, bool(channels_last) and dev.type in ("cuda", "cpu"))

