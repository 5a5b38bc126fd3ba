"""Student and instructor mode: what jupyter_config/<role>/ enables, and that the make targets use it.

The browser test (tests/test_formgrader_browser.py) drives both modes; these checks are fast and need no browser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NBGRADER_SERVER = ("formgrader", "validate_assignment", "assignment_list", "course_list")
NBGRADER_LAB = ("menu", "formgrader", "create-assignment", "validate-assignment", "assignment-list", "course-list")
ENABLED = {
    "student": {"validate_assignment", "validate-assignment"},
    "instructor": {"formgrader", "validate_assignment", "menu", "create-assignment", "validate-assignment"},
}


def enabled(role: str) -> set[str]:
    folder = REPO / "jupyter_config" / role
    server = json.loads((folder / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    lab = json.loads((folder / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert set(server) == {f"nbgrader.server_extensions.{n}" for n in NBGRADER_SERVER}, "every nbgrader server part"
    on = {n for n in NBGRADER_SERVER if server[f"nbgrader.server_extensions.{n}"]}
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
