"""Run a grading kernel, or any command of the grading, inside bubblewrap (Debian package ``bubblewrap``).

The submission's code sees, read-only, the operating system, the Python environment, ``simclr_core`` and the
kernel side of the grader (``grader_probe``). It does not see the rest of the course (``solutions/``, the
gradebook, the trusted checker, other students' submissions), the instructor's home or the network (own network
namespace). Its working folder and ``/tmp`` are size-capped tmpfs discarded at its end: nothing it writes reaches
the grading disk, and the folder nbgrader reads and writes (``grading/autograded/``) is not in the sandbox at all;
a kernel starts with a copy of the submission's regular files (``disposable_copy``; links and special files are
never followed). It runs as uid 1000 without capabilities, under the limits and seccomp filter of
``grader.limits``. The kernel talks to nbgrader over Unix sockets in a private directory, not TCP, because the
sandbox has no network. Of the grading process's environment only ``FORWARDED_ENV`` reaches the kernel (the id
being graded, which a notebook whose STUDENT_ID is left empty takes its numbers from).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.session import Session
from traitlets import default

from .limits import DEFAULT, Limits, seccomp_filter, user_tasks

REPO = Path(__file__).resolve().parent.parent
READ_ONLY_SYSTEM = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]
FORWARDED_ENV = ("SIMCLR_STUDENT_ID",)
SANDBOX_UID = 1000
SUBMISSION_MOUNT = "/opt/simclr-submission"  # a kernel's read-only copy of the submission, copied into its folder
SECCOMP_FD = 9
# copies the submission into the kernel's tmpfs folder, then becomes the kernel (argv: source, kernel command...)
_COPY_THEN_EXEC = ("import os, shutil, sys; shutil.copytree(sys.argv[1], '.', symlinks=True, dirs_exist_ok=True); "
                   "os.execv(sys.argv[2], sys.argv[2:])")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def python_roots() -> list[str]:
    """Directories the environment's Python needs: the venv and the interpreter it was made from."""
    roots = {sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"], str(Path(sys.executable).resolve().parent)}
    for mod in ("torch", "numpy"):  # their site-packages; simclr_core is bound on its own, not its repository
        spec = importlib.util.find_spec(mod)
        if spec and spec.origin:
            roots.add(str(Path(spec.origin).resolve().parent.parent))
    return sorted(r for r in roots if os.path.isdir(r))


def _launcher(limits: Limits, seconds: int | None) -> list[str]:
    """What runs bwrap: ``prlimit`` with the limits, after ``seconds`` killed by ``timeout`` (bwrap's
    --die-with-parent ends the sandbox with it) and, where libseccomp exists, a shell that opens the compiled
    seccomp filter on ``SECCOMP_FD`` for bwrap's ``--seccomp`` (an argv cannot carry an open file otherwise)."""
    prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
    cmd = [prlimit, *limits.prlimit_args(user_tasks()), "--"]
    if seconds:
        cmd = [shutil.which("timeout") or "/usr/bin/timeout", "--signal=KILL", str(seconds), *cmd]
    filt = seccomp_filter()
    if filt is not None:
        cmd = ["/bin/sh", "-c", f'exec {SECCOMP_FD}<"$0" && exec "$@"', str(filt), *cmd]
    return cmd


def _sandbox_argv(workdir: Path, env: dict[str, str] | None, extra_binds: list[str],
                  limits: Limits = DEFAULT, seconds: int | None = None) -> list[str]:
    """The launcher and bwrap options (everything before the command): ``workdir`` is a fresh tmpfs, the only
    writable folder but ``/tmp``; of ``env`` only the variables of ``FORWARDED_ENV``; ``extra_binds``: more bwrap
    bind options."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise RuntimeError("sandboxed grading needs bubblewrap: `sudo apt-get install bubblewrap` "
                           "(or `make system`); to grade without a sandbox pass --SandboxedExecute.sandbox=False")
    workdir = Path(workdir).resolve()
    if workdir == REPO or workdir in REPO.parents:
        raise ValueError(f"refusing to sandbox {workdir}: it would expose the course folder {REPO}")
    disk = str(limits.disk_bytes)
    cmd = [*_launcher(limits, seconds), bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
           "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL", "--new-session",
           "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--size", disk, "--tmpfs", "/tmp"]
    if seccomp_filter() is not None:
        cmd += ["--seccomp", str(SECCOMP_FD)]
    for d in READ_ONLY_SYSTEM:
        if os.path.exists(d):
            cmd += ["--ro-bind", d, d]
    for d in python_roots():
        cmd += ["--ro-bind", d, d]
    probe = REPO / "grader_probe"
    cmd += ["--ro-bind", str(REPO / "simclr_core"), "/opt/simclr-grading/simclr_core",
            "--ro-bind", str(probe), "/opt/simclr-grading/grader_probe", *extra_binds,
            "--size", disk, "--tmpfs", str(workdir), "--chdir", str(workdir),
            "--clearenv",
            "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "--setenv", "HOME", "/tmp", "--setenv", "PYTHONPATH", "/opt/simclr-grading",
            "--setenv", "MPLBACKEND", "Agg", "--setenv", "OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"),
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for name in FORWARDED_ENV:
        if (env or {}).get(name):
            cmd += ["--setenv", name, str(env[name])]
    return cmd


def run_argv(inner: list[str], workdir: Path, env: dict, seconds: int = DEFAULT.run_seconds) -> list[str]:
    """The argv that runs the plain command ``inner`` (no Jupyter kernel) in the same sandbox, under the same
    limits, as a grading kernel: its folder is a fresh size-capped tmpfs mounted at the path ``workdir`` (nothing
    of the host's ``workdir`` is visible or written), of ``env`` only ``FORWARDED_ENV`` reaches it, and it is
    killed after ``seconds``. More bwrap options may be appended before the command when ``inner`` is empty."""
    return _sandbox_argv(workdir, env, [], seconds=seconds) + list(inner)


def disposable_copy(src: Path, dst: Path) -> list[str]:
    """Copy the regular files and folders of ``src`` into ``dst`` without following any link; what is not a
    regular file or folder (link, device, FIFO, socket) is left out and its path returned."""
    skipped = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in [*dirnames, *filenames]:
            st = os.lstat(Path(dirpath) / name)
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append(str(rel / name))
                continue
            fd = os.open(Path(dirpath) / name, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(dst / rel / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        dirnames[:] = [d for d in dirnames if stat.S_ISDIR(os.lstat(Path(dirpath) / d).st_mode)]
    return skipped


def bwrap_command(inner: list[str], workdir: Path, connection_file: str, ipc_dir: str,
                  env: dict[str, str] | None = None, source: Path | None = None) -> list[str]:
    """The argv of a grading kernel: ``run_argv`` plus the kernel's connection file and socket folder; with
    ``source`` (a disposable copy), its files are copied into the kernel's folder before the kernel starts."""
    binds = ["--ro-bind", connection_file, connection_file, "--bind", ipc_dir, ipc_dir]
    if source is not None:
        binds += ["--ro-bind", str(source), SUBMISSION_MOUNT]
        inner = [sys.executable, "-I", "-c", _COPY_THEN_EXEC, SUBMISSION_MOUNT, *inner]
    return _sandbox_argv(workdir, env, binds) + list(inner)


class MalformedKernelMessage(Exception):
    """The kernel sent a message that is not a signed Jupyter message seen for the first time, e.g. because the
    submission replaced ``json.dumps`` in it: then every message packs to the same text, so the second one
    repeats the first's signature, and its content is not JSON."""


class CheckedSession(Session):
    """A session whose every way of reading a bad message raises one error (``MalformedKernelMessage``), so a
    broken kernel is reported the same however its messages happen to interleave."""

    def deserialize(self, msg_list, content=True, copy=True):
        try:
            return super().deserialize(msg_list, content=content, copy=copy)
        except ValueError as e:  # a bad signature, a repeated one, not JSON, not UTF-8 (all ValueErrors)
            raise MalformedKernelMessage(f"{type(e).__name__}: {e}") from e


class CheckedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose clients read messages through ``CheckedSession``."""

    @default("session")
    def _checked_session(self):
        return CheckedSession(parent=self)


class SandboxKernelManager(CheckedKernelManager):
    """An AsyncKernelManager whose kernel runs under bwrap (see the module docstring).

    The kernel starts in a tmpfs holding a copy of the regular files of the folder nbgrader starts it in (the
    submission's autograded folder), which the sandbox never sees itself. Interrupts are sent as messages: a
    signal to bwrap's process group would end the sandbox, not the cell.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._tmp = tempfile.mkdtemp(prefix="simclr-grading-kernel-")
        self._ipc_dir = os.path.join(self._tmp, "ipc")
        os.mkdir(self._ipc_dir, 0o700)
        self.transport = "ipc"
        self.ip = os.path.join(self._ipc_dir, "kernel")

    def format_kernel_cmd(self, extra_arguments=None):
        inner = super().format_kernel_cmd(extra_arguments)
        inner[0] = sys.executable if Path(inner[0]).name.startswith("python") else inner[0]
        self.kernel_spec.interrupt_mode = "message"
        source = Path(self._tmp) / "submission"
        shutil.rmtree(source, ignore_errors=True)
        disposable_copy(Path(self._launch_cwd), source)
        return bwrap_command(inner, Path(self._tmp) / "work", self.connection_file, self._ipc_dir,
                             self._launch_env, source)

    async def _async_pre_start_kernel(self, **kw):
        self._launch_cwd = kw.get("cwd") or os.getcwd()
        self._launch_env = dict(kw.get("env") or {})
        kw["cwd"] = self._tmp  # bwrap itself starts outside the submission's folder
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._tmp, ignore_errors=True)
