"""The Validate button never says a notebook "passes all the tests": it says what the visible tests cover.

Every point is decided at grading, by checks that are not in the notebook, so nbgrader's own success sentence is
false here. ``simclr_core.teaching.validate_button`` answers the button in both modes (jupyter_config/<role>/).
``dialog(answer)`` reads an answer as nbgrader's frontend renders it (@jupyter/nbgrader's "Validation Results":
a bare success becomes "Success! Your notebook passes all the tests."), so nbgrader's answer, served when the
extension is off, fails these tests. A real student-mode server is asked as the button asks (the version check,
then ``POST assignments/validate?path=...``) about ps1 answered right and ps1 blank; in headless Chromium the
button is clicked and the dialog read, which shows that the fixed sentence of the answer's branch is hidden.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from simclr_core.teaching.validate_button import honest
from simclr_core.teaching.visible_checks import Points, graded_cells, points

from . import submissions
from .browser_helpers import REPO, chromium, jupyterlab_server, require_browser

PS = "ps1_similarity_matrix"
RELEASED = REPO / "exercises" / PS / f"{PS}.ipynb"
SUCCESS = "passes all the tests"
COUNTS = ("8 of the 11 autograded points", "All 11 autograded points are decided at grading",
          "3 of them have no visible test")


def _text(fragment: str) -> str:
    """An HTML fragment as text (style elements dropped): what innerHTML shows."""
    return html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", fragment, flags=re.S)))


def dialog(answer: dict) -> str:
    """The text of nbgrader's "Validation Results" dialog for ``answer``, branch by branch as its frontend has it."""
    if answer.get("success") is not True:
        return f"There was an error running the validate command:\n{answer.get('value')}"
    value = answer["value"] if isinstance(answer["value"], dict) else json.loads(answer["value"])
    if "type_changed" in value:
        return "\n".join(f"The following {c['old_type']} cell has changed to a {c['new_type']} cell, but it should "
                         f"not have!\n{c['source']}" for c in value["type_changed"])
    if "changed" in value:
        return "\n".join(f"The source of the following cell has changed, but it should not have!\n{c['source']}"
                         for c in value["changed"])
    if "passed" in value:
        raise AssertionError("the frontend throws on a 'passed' answer (it loops over 'changed'): no dialog opens")
    if "failed" in value:
        return "\n".join(f"The following cell failed:\n{c['source']}\n{_text(c['error'])}" for c in value["failed"])
    return "Success! Your notebook passes all the tests."


def _tally(path: Path) -> Points:
    return points(graded_cells(nbformat.read(path, as_version=4)))


def test_the_counts_are_those_of_the_problem_set():
    assert _tally(RELEASED) == Points(visible=8, hidden=3, manual=0)
    assert _tally(REPO / "exercises" / "ps4_applications" / "ps4_applications.ipynb").manual == 15


def test_no_answer_shape_reads_as_passing_all_the_tests():
    p = Points(visible=8, hidden=3, manual=2)
    assert dialog({"success": True, "value": {}}) == f"Success! Your notebook {SUCCESS}."  # nbgrader's answer
    passing = dialog({"success": True, "value": honest({}, p)})
    assert SUCCESS not in passing and "The visible tests pass" in passing
    assert "8 of the 11 autograded points" in passing and "2 points are graded by hand" in passing
    failed = {"failed": [{"source": "assert x", "error": "<span>AssertionError</span>"},
                         {"source": "assert y <b>", "error": "NameError: &lt;b&gt;"}]}
    answer = honest(failed, p)
    assert answer["failed"][1:] == failed["failed"]  # nbgrader's listing, after the summary
    failing = dialog({"success": True, "value": answer})
    assert "2 cells failed, listed below" in failing and "8 of the 11 autograded points" in failing
    assert failing.count("The following cell failed:") == 3 and "NameError: <b>" in failing
    changed = {"changed": [{"source": "assert x"}]}
    assert honest(changed, p) == changed  # nbgrader's listing of an edited test cell, as it is
    assert "There was an error" in dialog({"success": False, "value": "Traceback"})


def test_both_modes_serve_the_button_from_this_extension():
    for role in ("student", "instructor"):
        config = json.loads((REPO / "jupyter_config" / role / "jupyter_server_config.json").read_text())
        on = config["ServerApp"]["jpserver_extensions"]
        # nbgrader's extension would answer first (extensions load alphabetically, tornado takes the first route)
        assert on["simclr_core.teaching.validate_button"] is True, role
        assert on["nbgrader.server_extensions.validate_assignment"] is False, role


@pytest.fixture(scope="module")
def student_server(tmp_path_factory):
    """A JupyterLab in student mode serving a folder with ps1 answered right (right.ipynb) and ps1 blank."""
    tmp = tmp_path_factory.mktemp("validate_button")
    root = tmp / "root"
    (root / PS).mkdir(parents=True)
    nbformat.write(submissions.solved(REPO, PS), root / PS / "right.ipynb")
    shutil.copy(RELEASED, root / PS / "blank.ipynb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(REPO))  # the kernels import this checkout's simclr_core
        with jupyterlab_server(root, tmp, config_path=REPO / "jupyter_config" / "student") as (base, token):
            yield base, token, tmp


def _ask(base: str, token: str, url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"{base}/{url}", method=method, data=b"" if method == "POST" else None,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=600) as r:
        return json.load(r)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_student_mode_button_says_what_the_visible_tests_cover(student_server):
    base, token, _ = student_server
    import nbgrader

    assert _ask(base, token, f"nbgrader_version?version={nbgrader.__version__}") == {"success": True}
    with pytest.raises(urllib.error.HTTPError) as outside:  # nbgrader's check of the path is kept
        _ask(base, token, "assignments/validate?path=../outside.ipynb", "POST")
    assert outside.value.code == 403
    right = _ask(base, token, f"assignments/validate?path={PS}/right.ipynb", "POST")
    shown = dialog(right)
    assert SUCCESS not in shown.lower(), shown
    assert "The visible tests pass" in shown and all(c in shown for c in COUNTS), shown
    assert "failed" not in _text(right["value"]["failed"][0]["error"]).lower()  # only the summary is in the box

    blank = _ask(base, token, f"assignments/validate?path={PS}/blank.ipynb", "POST")
    shown = dialog(blank)
    assert SUCCESS not in shown.lower() and "The visible tests pass" not in shown, shown
    summary, *listing = blank["value"]["failed"]
    assert len(listing) >= 5 and "NotImplementedError" in shown, shown  # nbgrader's listing
    assert f"{len(listing)} cells failed, listed below" in _text(summary["error"]), shown
    assert all(c in _text(summary["error"]) for c in COUNTS), shown


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(600)
def test_the_dialog_a_student_reads(student_server):
    require_browser()
    from selenium.webdriver.common.by import By

    from .test_browser import wait_for

    base, token, tmp = student_server

    def validate(name: str, page: str = "lab/tree") -> str:
        """Open ``name`` in JupyterLab (``lab/tree``, reset: no other notebook reopened) or Notebook 7
        (``notebooks``), press Validate and read the dialog."""
        driver.get(f"{base}/{page}/{PS}/{name}?reset&token={token}")
        shown = lambda css: [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
        wait_for(lambda: shown(".validate-button"), 60, "the Validate button", driver)[0].click()
        box = wait_for(lambda: [d for d in shown(".jp-Dialog") if "Validation Results" in d.text], 300,
                       "the dialog", driver)[0]
        text = box.text  # what is displayed, hidden elements left out
        driver.save_screenshot(str(tmp / f"validate_{page.split('/')[0]}_{name}.png"))
        box.find_element(By.CSS_SELECTOR, ".jp-mod-accept").click()
        wait_for(lambda: not shown(".jp-Dialog"), 30, "the dialog to close", driver)
        return text

    t0 = time.monotonic()
    with chromium(tmp) as driver:
        right, blank = validate("right.ipynb"), validate("blank.ipynb")
        notebook7 = validate("right.ipynb", "notebooks")
    print(f"dialogs after {time.monotonic() - t0:.1f} s:\n{right}\n----\n{blank[:900]}")
    assert SUCCESS not in right.lower() and "The following cell failed" not in right, right
    assert "The visible tests pass" in right and all(c in right for c in COUNTS), right
    assert notebook7 == right, notebook7
    assert "The following cell failed:" in blank and "NotImplementedError" in blank, blank
    first = blank.split("The following cell failed:")[0]  # the summary, above nbgrader's listing
    assert "cells failed, listed below" in first and all(c in first for c in COUNTS), blank
    assert SUCCESS not in blank.lower(), blank
