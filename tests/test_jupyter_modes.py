"""Student and instructor mode: what jupyter_config/<role>/ enables, and that the make targets use it.

The browser test (tests/test_formgrader_browser.py) drives both modes; these checks need no browser. The slow one
starts ``make lab`` / ``make notebook`` as a student does and reads the terminal: the URL printed opens
00_start_here, a kernel answers (over IPC), and nothing in the log is a warning the student cannot act on.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NBGRADER_SERVER = ("formgrader", "validate_assignment", "assignment_list", "course_list")
VALIDATE_BUTTON = "simclr_core.teaching.validate_button"
NBGRADER_LAB = ("menu", "formgrader", "create-assignment", "validate-assignment", "assignment-list", "course-list")
ENABLED = {
    "student": {"validate_assignment", "validate-assignment"},
    "instructor": {"formgrader", "validate_assignment", "menu", "create-assignment", "validate-assignment"},
}


def enabled(role: str) -> set[str]:
    folder = REPO / "jupyter_config" / role
    server = json.loads((folder / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    lab = json.loads((folder / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert set(server) - {"grader.formgrader_csp", "notebook_shim", VALIDATE_BUTTON} == \
        {f"nbgrader.server_extensions.{n}" for n in NBGRADER_SERVER}, "every nbgrader server part"
    assert server["notebook_shim"] is False  # Notebook 6 extensions: none here, and its settings scan prints a warning
    # the Formgrader's submission views get a Content-Security-Policy wherever the Formgrader runs
    assert server.get("grader.formgrader_csp", False) == server["nbgrader.server_extensions.formgrader"]
    on = {n for n in NBGRADER_SERVER if server[f"nbgrader.server_extensions.{n}"]}
    # the Validate button's server part is this workbook's, which says what the visible tests cover (nbgrader's would
    # answer first, and its answer reads "passes all the tests"): tests/test_validate_button.py
    assert server[VALIDATE_BUTTON] is True and "validate_assignment" not in on
    on.add("validate_assignment")
    # a plugin missing from disabledExtensions is enabled; list them all, so that the mode never depends on defaults
    assert set(lab) == {f"@jupyter/nbgrader:{n}" for n in NBGRADER_LAB if n != "validate-assignment"}
    return on | {n for n in NBGRADER_LAB if not lab.get(f"@jupyter/nbgrader:{n}", False)}


@pytest.mark.parametrize("role", sorted(ENABLED))
def test_each_mode_enables_exactly_its_nbgrader_parts(role):
    assert enabled(role) == ENABLED[role]


def _dry_run(*args) -> str:
    if shutil.which("make") is None:
        pytest.skip("no make")
    proc = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("target, role, app", [("lab", "student", "lab"), ("notebook", "student", "notebook"),
                                               ("instructor", "instructor", "lab")])
def test_make_targets_start_jupyter_in_their_mode(target, role, app):
    out = _dry_run(target)  # -n: prints the commands, runs none (not even the environment's set-up)
    assert f'JUPYTER_CONFIG_PATH="{REPO}/jupyter_config/{role}' in out, out
    assert f'"$venv/bin/jupyter" {app} ' in out and 'export PATH="$venv/bin:$PATH"' in out, out


def test_a_role_can_be_chosen_and_an_unknown_one_is_refused():
    assert f"{REPO}/jupyter_config/instructor" in _dry_run("notebook", "ROLE=instructor")
    proc = subprocess.run(["make", "lab", "ROLE=teacher"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ROLE must be student or instructor" in proc.stderr


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_generated_problem_set_carries_the_metadata_a_kernel_writes(tmp_path):
    """JupyterLab marks a notebook modified when the kernel's kernelspec / language_info differ from the stored ones;
    the problem sets' source holds a partial language_info, and generating the student version completes it."""
    course, reference = _script("course"), _script("normalize_notebooks")
    nb = tmp_path / "ps.ipynb"
    source = json.loads((REPO / "solutions" / "ps1_similarity_matrix" / "ps1_similarity_matrix.ipynb").read_text())
    source["metadata"]["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}  # as nbgrader's sources have it
    nb.write_text(json.dumps(source))
    course.normalise(nb)
    metadata = json.loads(nb.read_text())["metadata"]
    assert metadata["language_info"] == reference.LANGUAGE_INFO and metadata["kernelspec"] == reference.KERNELSPEC


# what a student cannot act on: Python's warnings, a logger's WARNING, Jupyter's [W ...] lines
UNACTIONABLE = re.compile(r"\w+Warning:|\bWARNING\b|^\[W \d|without encryption", re.MULTILINE)


async def _run_in_kernel(ws_url: str, code: str, timeout: float = 60) -> str:
    """The stdout of ``code`` run in a kernel through the server's websocket (the way the browser talks to it)."""
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(ws_url)
    msg_id, out = uuid.uuid4().hex, []
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex, "username": "test",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
    }))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(await asyncio.wait_for(ws.read_message(), timeout=deadline - time.monotonic()))
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            ws.close()
            return "".join(out)
    raise TimeoutError(f"no reply to {code!r} within {timeout} s")


@pytest.mark.slow
def _first_page(url: str, proc, log_path, seconds: float = 60) -> str:
    """The page at ``url``, asked again while the server is not yet answering (a busy machine can print the URL
    a moment before the port takes connections)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.read().decode()
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"{url}: {e}; terminal:\n{log_path.read_text()[-3000:]}") from None
            time.sleep(0.5)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target, page, opens", [
    ("lab", "/lab/tree/notebooks/00_start_here.ipynb", '"treePath": "notebooks/00_start_here.ipynb"'),  # JupyterLab opens treePath
    ("notebook", "/notebooks/notebooks/00_start_here.ipynb", '"appNamespace": "notebook"'),  # Notebook's view of /notebooks/<path>
])
def test_make_lab_prints_a_url_that_opens_start_here_and_keeps_the_terminal_quiet(target, page, opens, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    from .browser_helpers import free_port

    port, log_path = free_port(), tmp_path / "terminal.log"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_PLATFORM_DIRS="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["make", "--no-print-directory", target, f"LAB_ARGS=--no-browser --port={port} --ip=127.0.0.1"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, url = time.monotonic() + 90, None
        while url is None:
            assert proc.poll() is None and time.monotonic() < deadline, f"no URL printed; terminal:\n{log_path.read_text()[-3000:]}"
            found = re.findall(rf"http://127\.0\.0\.1:{port}\S*token=\w+", log_path.read_text())
            url = found[-1] if found else time.sleep(0.5)
        parts = urllib.parse.urlsplit(url)
        assert parts.path == page, url  # the URL a student copies from the terminal opens the first notebook
        html = _first_page(url, proc, log_path)
        assert opens in html, f"the page does not open the notebook ({opens} not in its page config)"
        token = urllib.parse.parse_qs(parts.query)["token"][0]
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
        with urllib.request.urlopen(urllib.request.Request(f"{base}/api/contents", headers=auth), timeout=30) as r:
            names = [c["name"] for c in json.load(r)["content"]]
        assert "notebooks" in names and not [n for n in names if n.endswith(".egg-info")], names
        body = json.dumps({"path": "notebooks/00_start_here.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}})
        request = urllib.request.Request(f"{base}/api/sessions", data=body.encode(), method="POST",
                                         headers={**auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            kernel_id = json.load(r)["kernel"]["id"]
        ws_url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}&token={token}"
        assert asyncio.run(_run_in_kernel(ws_url, "print(6 * 7)")) == "42\n"
        connection = json.loads((tmp_path / "runtime" / f"kernel-{kernel_id}.json").read_text())
        assert connection["transport"] == "tcp" and connection.get("curve_publickey"), "the kernel's traffic is not encrypted"
        time.sleep(2)  # the kernel's own start-up messages reach the terminal
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    # up to the stop: stopping the process group also ends JupyterLab's background `npm prefix -g`, which it reports
    terminal = log_path.read_text().split("received signal 15")[0]
    assert not UNACTIONABLE.search(terminal), f"a warning in the terminal: {UNACTIONABLE.search(terminal).group(0)!r}\n{terminal[-4000:]}"


@pytest.mark.parametrize("role", ["student", "instructor"])
def test_the_validate_button_runs_its_kernel_encrypted_too(monkeypatch, role):
    """nbgrader's Validate button runs the notebook in a kernel of its own, configured from the nbgrader config files
    on JUPYTER_CONFIG_PATH (as its server extension loads them): each mode's asks for CurveZMQ encryption, so
    pressing Validate (a student's notebook, or an instructor's source) prints no warning about plain TCP."""
    pytest.importorskip("nbgrader")
    from nbgrader.apps import NbGrader
    from jupyter_core.paths import jupyter_config_path

    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(REPO / "jupyter_config" / role))
    app = NbGrader()
    app.config_file_paths.append([str(REPO), *jupyter_config_path()])  # what ValidateAssignmentHandler.load_config does
    app.load_config_file()
    assert app.config.KernelManager.transport_encryption == "auto"
