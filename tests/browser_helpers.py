"""Helpers for the real-browser tests: a throwaway JupyterLab server and a headless Chromium.

- ``jupyterlab_server(notebook_dir, tmp)``: starts ``python -m jupyterlab`` on a free localhost port with a
  random token, its own config/runtime/settings/workspace folders under ``tmp`` (nothing of the user's
  JupyterLab state is read or written), news and update checks off, notebook windowing off (so every
  cell is in the DOM), the environment's bin on PATH and, optionally, a mode folder (``jupyter_config/student``
  or ``instructor``) first on JUPYTER_CONFIG_PATH; yields the base URL and token, and stops the server (by its
  own pid) afterwards.
- ``voila_server(notebook_dir, tmp)``: Voila on a folder (the lecture pages), the same way; yields the base URL.
- ``chromium(tmp)``: Debian's /usr/bin/chromium driven through /usr/bin/chromedriver, headless, with a
  temporary profile; Selenium Manager is never asked to download anything (explicit driver path,
  explicit browser binary, SE_OFFLINE=true).
- ``require_browser()``: skip when Chromium/chromedriver/selenium are missing, but fail when CI=true.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
    "--window-size=1400,1100",
)
# no host name but 127.0.0.1 resolves: a page that still needs another host (a CDN) shows it at once
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"

# JupyterLab user settings for a quiet, fully rendered notebook.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def require_browser() -> None:
    """Skip (or, with CI=true, fail) when the browser stack is not installed."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package")
    if missing:
        msg = f"browser test needs {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {msg}")
        pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(cmd: list[str], cwd: Path, env: dict, log_path: Path, ready_url: str, name: str, timeout: float):
    """Start ``cmd`` as its own process group, wait until ``ready_url`` answers 200, and stop it (by its pid) afterwards."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer on {ready_url} within {timeout} s")
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started (its own session)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _jupyter_env(tmp: Path) -> dict:
    """Config/runtime/data folders under ``tmp``: nothing of the user's Jupyter state is read or written."""
    return dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
                JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), JUPYTER_PLATFORM_DIRS="1", MPLBACKEND="Agg")


@contextmanager
def jupyterlab_server(notebook_dir: Path, tmp: Path, timeout: float = 60.0, config_path: Path | None = None):
    """Run JupyterLab serving ``notebook_dir``; yields (base_url, token). ``config_path``: a Jupyter config folder
    put first on JUPYTER_CONFIG_PATH (the workbook's student or instructor mode, ``jupyter_config/<role>``)."""
    port, token = free_port(), secrets.token_hex(16)
    settings = tmp / "lab-settings"
    for rel, value in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebook_dir}",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'lab-workspaces'}",
        "--LabApp.news_url=", "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--allow-root")
    env = _jupyter_env(tmp)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # as make lab: nbgrader calls alembic
    if config_path is not None:
        env["JUPYTER_CONFIG_PATH"] = str(config_path)
    base = f"http://127.0.0.1:{port}"
    with _server(cmd, notebook_dir, env, tmp / "jupyterlab.log", f"{base}/api/status?token={token}", "JupyterLab", timeout):
        yield base, token


@contextmanager
def voila_server(notebook_dir: Path, tmp: Path, timeout: float = 60.0, extra_args: tuple[str, ...] = ()):
    """Run Voila on the folder ``notebook_dir`` (as ``make lecture`` does); yields the base URL.

    The kernels import ``simclr_core`` from this checkout (PYTHONPATH), whichever checkout the shared virtual
    environment's editable install points at. Tracebacks are shown on the page, so that a failing cell is seen.
    """
    port = free_port()
    env = _jupyter_env(tmp)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    if (notebook_dir / "config").is_dir():  # the lecture's Voila settings, as make lecture puts them first
        env["JUPYTER_CONFIG_PATH"] = str(notebook_dir / "config")
    cmd = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
           "--show_tracebacks=True", *extra_args, str(notebook_dir)]
    base = f"http://127.0.0.1:{port}"
    with _server(cmd, notebook_dir, env, tmp / "voila.log", f"{base}/", "Voila", timeout):
        yield base


@contextmanager
def chromium(tmp: Path, extra_flags: tuple[str, ...] = ()):
    """A headless Chromium WebDriver with a throwaway profile (and ``extra_flags`` for Chromium)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp / 'chromium-profile'}")
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager must never download a driver or browser
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER), log_output=str(tmp / "chromedriver.log")), options=options)
    finally:
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous
    try:
        yield driver
    finally:
        driver.quit()
