"""What one submission may use while it runs for grading, and how the sandbox (``grader.sandbox``) enforces it.

* memory: ``RLIMIT_DATA`` (heap and private mappings, where tensors live) and a looser ``RLIMIT_AS`` (the address
  space, which PyTorch's shared libraries alone fill to about 3.4 GiB); an allocation beyond them fails with
  MemoryError / RuntimeError inside the submission;
* disk: the sandbox's writable folders are tmpfs of ``disk_bytes`` each (nothing reaches the grading disk) and no
  file may grow beyond that (``RLIMIT_FSIZE``);
* processes and open files: ``RLIMIT_NPROC`` (the kernel counts every process and thread of the grading user
  against it, so it is set to those running at launch plus ``processes``; it does not apply it to root at all, so
  grading as root leaves only the sandbox's pid namespace and time limits to contain a fork bomb),
  ``RLIMIT_NOFILE``; no core dumps;
* time: ``Execute.timeout`` per cell (nbgrader_config.py) and ``notebook_seconds`` for a kernel's whole notebook;
  ``run_seconds`` for a plain command of the grading (coreutils ``timeout`` kills it and its sandbox);
* output: ``output_bytes`` of outputs per notebook are kept, the rest dropped and noted.

Inside, the code runs as uid/gid 1000 with no capabilities and a seccomp filter (libseccomp, Debian package
``libseccomp2``) that refuses the system calls a notebook never needs (debugging other processes, mounting,
namespaces, kernel keyrings, BPF, io_uring...). Without libseccomp the sandbox still runs, with a warning.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

GiB = 1 << 30
MiB = 1 << 20
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 2 * GiB  # RLIMIT_DATA: torch, numpy and IPython take about 0.9 GiB of it
    address_space_bytes: int = 8 * GiB  # RLIMIT_AS, a backstop: shared libraries are mapped, not used
    disk_bytes: int = 256 * MiB
    processes: int = 64
    open_files: int = 256
    output_bytes: int = 2 * MiB
    notebook_seconds: int = 90  # a grading kernel's whole notebook (nbgrader_config.py: Execute.timeout per cell)
    run_seconds: int = 240  # a plain command of the grading (``grader.sandbox.run_argv``), then it is killed

    def prlimit_args(self, tasks_now: int) -> list[str]:
        """util-linux ``prlimit`` options setting these limits (soft = hard) on the command it runs;
        ``tasks_now``: the processes and threads the user runs already (``user_tasks``), which the kernel counts
        against ``RLIMIT_NPROC`` too."""
        return [f"--data={self.memory_bytes}", f"--as={self.address_space_bytes}", f"--fsize={self.disk_bytes}",
                f"--nproc={tasks_now + self.processes}", f"--nofile={self.open_files}", "--core=0"]


def user_tasks() -> int:
    """Processes and threads of this real user id now: the kernel counts all of them against ``RLIMIT_NPROC``
    (in the sandbox's user namespace and in the one above it), so the sandbox's allowance is added to them."""
    uid, total = str(os.getuid()), 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:  # the process ended meanwhile
            continue
        if fields.get("Uid", "").split()[:1] == [uid]:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total


DEFAULT = Limits()


def size_text(n: int) -> str:
    """Bytes as people write them: 2 GiB, 256 MiB, 1 KiB (one decimal at most)."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{round(n / size, 1):g} {unit}"
    return f"{n} bytes"


# system calls a notebook has no use for, refused with EPERM; the others are allowed
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
    "fspick", "mount_setattr", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "acct",
    "swapon", "swapoff", "syslog", "ioperm", "iopl", "quotactl", "lookup_dcookie", "name_to_handle_at",
    "open_by_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register", "mknod", "mknodat",
    "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "sethostname", "setdomainname", "vhangup",
)
_ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000


def _libseccomp():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def write_seccomp_filter(path: Path) -> bool:
    """Write the compiled filter (BPF, native architecture only: other ABIs are killed) to ``path``; False, with a
    warning, where libseccomp is missing."""
    lib = _libseccomp()
    if lib is None:
        log.warning("libseccomp not found (Debian: libseccomp2): grading sandboxes run without a seccomp filter")
        return False
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise RuntimeError("seccomp_init failed")
    try:
        for name in DENIED_SYSCALLS:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # not a system call of this architecture
                continue
            rc = lib.seccomp_rule_add(ctx, _ACT_ERRNO | errno.EPERM, nr, 0)
            if rc < 0:
                raise RuntimeError(f"seccomp_rule_add({name}) failed: {os.strerror(-rc)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
        finally:
            os.close(fd)
        if rc < 0:
            raise RuntimeError(f"seccomp_export_bpf failed: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
    return True


@functools.lru_cache(maxsize=None)
def _filter_of_process(pid: int) -> Path | None:
    folder = tempfile.mkdtemp(prefix=f"simclr-grading-seccomp-{pid}-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "filter.bpf"
    return path if write_seccomp_filter(path) else None


def seccomp_filter() -> Path | None:
    """The compiled filter file of this process (written once per process), or None without libseccomp."""
    return _filter_of_process(os.getpid())
