"""Student and instructor mode: what jupyter_config/<role>/ enables, and that the make targets use it.

The browser test (tests/test_formgrader_browser.py) drives both modes; these checks are fast and need no browser.
"""

from __future__ import annotations

import importlib.util
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
    assert set(server) - {"grader.formgrader_csp"} == {f"nbgrader.server_extensions.{n}" for n in NBGRADER_SERVER}, \
        "every nbgrader server part"
    # the Formgrader's submission views get a Content-Security-Policy wherever the Formgrader runs
    assert server.get("grader.formgrader_csp", False) == server["nbgrader.server_extensions.formgrader"]
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
