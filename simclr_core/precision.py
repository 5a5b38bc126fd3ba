"""The one place that decides device, autocast dtype and memory format, for training, features, probes and baselines.

- ``parse_device`` checks how a device is spelled ('auto', 'cpu', 'cuda', 'cuda:<i>', 'mps'); ``resolve_device``
  also checks that it is there ('auto' -> cuda if available, else mps, else cpu).
- ``CpuInfo`` / ``read_cpu_info``: the instruction sets this CPU reports (Linux: /proc/cpuinfo's flags; macOS:
  sysctl), the vector ISA torch dispatches to (``torch.backends.cpu.get_cpu_capability()``) and the cap a user may
  put on oneDNN's ISA (``ONEDNN_MAX_CPU_ISA``). ``cpu_kind`` sorts them into the rows of the policy table.
- ``Precision``: the policy of one run, made by ``precision_for(device, amp, channels_last)``.

The policy (``benchmarks/bench_train.py --precisions`` measures each cell on the CPU at hand; docs/benchmarks.md):

| where | autocast dtype | memory format |
| --- | --- | --- |
| CUDA | bfloat16 | channels_last (tensor cores) |
| CPU with AMX-BF16 (``amx``) or AVX512-BF16 (``avx512_bf16``) | bfloat16 | channels_last (oneDNN's native layout) |
| CPU with AVX-512 but no bf16 instructions (``avx512``) | float32 | channels_last |
| CPU with AVX2 (``avx2``), other architectures, unknown CPUs (``other``) | float32 | channels_last |
| MPS | float32 | contiguous |

oneDNN reports bf16 "supported" on every AVX-512 CPU because it can emulate it, but emulated bf16 convolutions are
slower than float32 ones (docs/benchmarks.md), so only the instructions the CPU reports count. Anything unreadable falls to
float32, which is never much slower than bf16 and always correct. ``amp=False`` (CLI ``--no-amp``) means float32
everywhere: training, feature extraction, probes and baselines. Losses are always computed in float32.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from . import checks

__all__ = ["DEVICE_FORMS", "parse_device", "resolve_device", "CpuInfo", "read_cpu_info", "cpu_kind",
           "cpu_has_fast_bf16", "Precision", "precision_for", "as_precision"]

DEVICE_FORMS = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below AVX512_CORE_BF16: under them oneDNN emulates bf16
_ONEDNN_NO_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
_ONEDNN_NO_AMX = _ONEDNN_NO_BF16 | {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512"}


def parse_device(device: str | torch.device) -> str:
    """The canonical spelling of a device request ('auto', 'cpu', 'cuda', 'cuda:1', 'mps'); spelling only, so a
    command line can be checked before anything runs (``resolve_device`` checks that the device is there)."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(f"device must be a string, one of {DEVICE_FORMS}, got {type(device).__name__} {device!r}")
    if not _DEVICE_RE.fullmatch(device):
        raise ValueError(f"device must be {DEVICE_FORMS}, got {device!r}")
    return device


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; otherwise the named device, checked to be there."""
    spec = parse_device(device)
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} was requested but CUDA is not available here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not mps:
        raise ValueError(f"device {spec!r} was requested but MPS is not available here; use 'cpu' or 'auto'")
    return dev


@dataclass(frozen=True)
class CpuInfo:
    """What decides CPU speed: ``arch`` (platform.machine(), lower case), ``flags`` (the instruction sets the CPU
    reports, lower case without underscores: 'avx2', 'avx512f', 'avx512bf16', 'amxbf16', ...), ``source`` (where
    the flags came from: '/proc/cpuinfo', 'sysctl' or 'none'), ``aten_capability`` (the vector ISA torch's own
    kernels use: 'AVX512', 'AVX2', 'DEFAULT', ...) and ``onednn_max_isa`` (ONEDNN_MAX_CPU_ISA, upper case, or None)."""

    arch: str
    flags: frozenset
    source: str
    aten_capability: str
    onednn_max_isa: str | None = None


def _norm(flag: str) -> str:
    return flag.strip().lower().replace("_", "").replace(".", "")  # avx512_bf16, AVX512BF16 -> avx512bf16


def _linux_flags(path: str) -> frozenset | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 and ARM spell the line differently
                    return frozenset(_norm(t) for t in value.split())
    except OSError:
        return None
    return None


def _sysctl_flags() -> frozenset | None:
    keys = ["machdep.cpu.features", "machdep.cpu.leaf7_features"]
    try:
        out = subprocess.run(["sysctl", "-n", *keys], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(_norm(t) for t in out.split()) or None


def read_cpu_info(cpuinfo: str = "/proc/cpuinfo", env=None, system: str | None = None) -> CpuInfo:
    """This machine's ``CpuInfo`` (arguments for tests: another cpuinfo file, environment or ``platform.system()``)."""
    env = os.environ if env is None else env
    system = platform.system() if system is None else system
    flags, source = None, "none"
    if system == "Linux":
        flags, source = _linux_flags(cpuinfo), cpuinfo
    elif system == "Darwin":
        flags, source = _sysctl_flags(), "sysctl"
    if flags is None:
        flags, source = frozenset(), "none"
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        capability = "DEFAULT"
    cap = env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA")
    return CpuInfo(platform.machine().lower(), flags, source, capability, cap.strip().upper() if cap else None)


def cpu_kind(info: CpuInfo) -> str:
    """The row of the policy table: 'amx', 'avx512_bf16', 'avx512', 'avx2' or 'other'.

    bf16 counts only where the CPU reports the instructions *and* neither torch's kernels nor oneDNN are capped
    below them (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI``)."""
    if info.arch not in ("x86_64", "amd64", "x86", "i686", "i386"):
        return "other"
    f = info.flags
    aten_avx512 = info.aten_capability.upper().startswith("AVX512")
    capped = info.onednn_max_isa in _ONEDNN_NO_BF16
    if "avx512f" in f and aten_avx512 and not capped:
        if "amxbf16" in f and "amxtile" in f and info.onednn_max_isa not in _ONEDNN_NO_AMX:
            return "amx"
        if "avx512bf16" in f:
            return "avx512_bf16"
    if "avx512f" in f and aten_avx512:
        return "avx512"
    if "avx2" in f:
        return "avx2"
    return "other"


def cpu_has_fast_bf16(info: CpuInfo | None = None) -> bool:
    """Does this CPU compute bfloat16 natively (AMX-BF16 or AVX512-BF16, as the CPU itself reports)?"""
    return cpu_kind(read_cpu_info() if info is None else info) in ("amx", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    """Where and how a model runs: ``device``, autocast ``dtype`` (None: float32) and ``channels_last``."""

    device: torch.device
    dtype: torch.dtype | None = None
    channels_last: bool = False

    def __post_init__(self):
        if not isinstance(self.device, torch.device):
            raise ValueError(f"Precision.device must be a torch.device (see precision_for), got {self.device!r}")
        if self.dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"Precision.dtype must be None (float32), torch.bfloat16 or torch.float16, got {self.dtype!r}")

    def prepare(self, module: nn.Module) -> nn.Module:
        """``module`` on the device, in the memory format to run in."""
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch (B, C, H, W) in the memory format the model runs in."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def hold(self, data: torch.Tensor) -> torch.Tensor:
        """Where a loop keeps a whole uint8 dataset it draws batches from: on a GPU (one copy, batches gathered
        there), in host memory otherwise (the CPU reads it in place)."""
        return data.to(self.device) if self.device.type == "cuda" else data

    def autocast(self):
        """The autocast context of this policy (a no-op context for float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def float32(self) -> "Precision":
        """The same device and memory format without autocast (what ``amp=False`` gives)."""
        return replace(self, dtype=None)

    def describe(self) -> str:
        dt = {None: "float32", torch.bfloat16: "bfloat16 autocast", torch.float16: "float16 autocast"}[self.dtype]
        return f"{self.device}, {dt}{', channels_last' if self.channels_last else ''}"


def precision_for(device: str | torch.device = "auto", amp: bool = True, channels_last: bool = True) -> Precision:
    """The policy for ``device`` (the table in this module's docstring); ``amp``/``channels_last`` False turn
    autocast / the channels_last format off."""
    checks.boolean("amp", amp)
    checks.boolean("channels_last", channels_last)
    dev = resolve_device(device)
    native_bf16 = dev.type == "cuda" or (dev.type == "cpu" and cpu_has_fast_bf16())
    return Precision(dev, torch.bfloat16 if amp and native_bf16 else None, channels_last and dev.type in ("cuda", "cpu"))


def as_precision(precision: Precision | str | torch.device | None, module: nn.Module | None = None) -> Precision:
    """What a function that runs a model takes: a ``Precision`` as it is; a device (name) -> ``precision_for`` of
    it, the policy a run on that device trains with; None -> float32 on ``module``'s device."""
    if isinstance(precision, Precision):
        return precision
    if precision is None:
        param = next(module.parameters(), None) if module is not None else None
        return Precision(param.device if param is not None else torch.device("cpu"))
    if isinstance(precision, (str, torch.device)):
        return precision_for(precision)
    raise ValueError(f"precision must be a simclr_core.precision.Precision or a device ({DEVICE_FORMS}), "
                     f"got {type(precision).__name__}")
