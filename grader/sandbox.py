"""Run a grading kernel inside bubblewrap (Debian package ``bubblewrap``, command ``bwrap``).

The submission's code sees, read-only, the operating system, the Python environment, ``simclr_core`` and the
kernel side of the grader (``grader_probe``); read-write, only its own folder. It does not see the rest of the
course (``solutions/``, the gradebook, the trusted checker, other students' submissions), the instructor's home
or the network (own network namespace), and it cannot write outside its folder (``/tmp`` is private and
discarded). The kernel talks to nbgrader over Unix sockets in a private directory, not TCP, because the
sandbox has no network. Of the grading process's environment only ``FORWARDED_ENV`` reaches the kernel (the id
being graded, which a notebook whose STUDENT_ID is left empty takes its numbers from).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

REPO = Path(__file__).resolve().parent.parent
READ_ONLY_SYSTEM = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]
FORWARDED_ENV = ("SIMCLR_STUDENT_ID",)


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


def _sandbox_argv(workdir: Path, env: dict[str, str] | None, extra_binds: list[str]) -> list[str]:
    """The bwrap options (everything before the command) that give ``workdir`` as the only writable folder and,
    of ``env``, only the variables of ``FORWARDED_ENV``; ``extra_binds``: more bwrap bind options."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise RuntimeError("sandboxed grading needs bubblewrap: `sudo apt-get install bubblewrap` "
                           "(or `make system`); to grade without a sandbox pass --SandboxedExecute.sandbox=False")
    workdir = Path(workdir).resolve()
    if workdir == REPO or workdir in REPO.parents:
        raise ValueError(f"refusing to sandbox {workdir}: it would expose the course folder {REPO}")
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for d in READ_ONLY_SYSTEM:
        if os.path.exists(d):
            cmd += ["--ro-bind", d, d]
    for d in python_roots():
        cmd += ["--ro-bind", d, d]
    probe = REPO / "grader_probe"
    cmd += ["--ro-bind", str(REPO / "simclr_core"), "/opt/simclr-grading/simclr_core",
            "--ro-bind", str(probe), "/opt/simclr-grading/grader_probe", *extra_binds,
            "--bind", str(workdir), str(workdir), "--chdir", str(workdir),
            "--clearenv",
            "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "--setenv", "HOME", "/tmp", "--setenv", "PYTHONPATH", "/opt/simclr-grading",
            "--setenv", "MPLBACKEND", "Agg", "--setenv", "OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"),
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for name in FORWARDED_ENV:
        if (env or {}).get(name):
            cmd += ["--setenv", name, str(env[name])]
    return cmd


def run_argv(inner: list[str], workdir: Path, env: dict) -> list[str]:
    """The argv that runs the plain command ``inner`` (no Jupyter kernel) in the same sandbox, with the same
    limits, as a grading kernel: ``workdir`` its only writable folder, of ``env`` only ``FORWARDED_ENV``."""
    return _sandbox_argv(workdir, env, []) + list(inner)


def bwrap_command(inner: list[str], workdir: Path, connection_file: str, ipc_dir: str,
                  env: dict[str, str] | None = None) -> list[str]:
    """The bwrap argv of a grading kernel: ``run_argv`` plus the kernel's connection file and socket folder."""
    binds = ["--ro-bind", connection_file, connection_file, "--bind", ipc_dir, ipc_dir]
    return _sandbox_argv(workdir, env, binds) + list(inner)


class SandboxKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel runs under bwrap (see the module docstring).

    The kernel's folder is the current directory at start (nbgrader starts it in the submission's folder).
    Interrupts are sent as messages: a signal to bwrap's process group would end the sandbox, not the cell.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ipc_dir = tempfile.mkdtemp(prefix="simclr-grading-ipc-")
        self.transport = "ipc"
        self.ip = os.path.join(self._ipc_dir, "kernel")

    def format_kernel_cmd(self, extra_arguments=None):
        inner = super().format_kernel_cmd(extra_arguments)
        inner[0] = sys.executable if Path(inner[0]).name.startswith("python") else inner[0]
        self.kernel_spec.interrupt_mode = "message"
        return bwrap_command(inner, Path(self._launch_cwd), self.connection_file, self._ipc_dir, self._launch_env)

    async def _async_pre_start_kernel(self, **kw):
        self._launch_cwd = kw.get("cwd") or os.getcwd()
        self._launch_env = dict(kw.get("env") or {})
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)
