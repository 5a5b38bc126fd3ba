"""The student and instructor modes of Jupyter in headless Chromium (`make lab` and `make instructor`).

A temporary copy of the course (tests/grade_kinds.make_course) gets a gradebook and one autograded submission of
ps2_temperature, whose code answers are right and whose two free-response answers wait for a grade by hand.

* Instructor mode (jupyter_config/instructor, what `make instructor` uses): JupyterLab's Nbgrader menu opens the
  Formgrader, which lists the four problem sets without an exchange warning; through Manual Grading the submission
  is opened, a grade and a comment are typed for a free-response answer, and nbgrader's Gradebook API finds both
  stored. The Create Assignment panel is there.
* Student mode (jupyter_config/student, what `make lab` and `make notebook` use): no Nbgrader menu, no Formgrader,
  no Create Assignment panel, no assignment list and no exchange error, in JupyterLab and in Notebook 7; the
  notebook's Validate button works.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from . import grade_kinds as G
from . import submissions
from .browser_helpers import chromium, jupyterlab_server, require_browser
from .test_browser import wait_for

REPO = Path(__file__).resolve().parent.parent
A = "ps2_temperature"
STUDENT = "kim"
FREE_TEXT = "A lower temperature sharpens the softmax, so the hardest negatives dominate the denominator."
ALL_ASSIGNMENTS = ["ps1_similarity_matrix", "ps2_temperature", "ps3_batch_size", "ps4_applications"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def answered(root: Path):
    """ps2 with every code answer right and every free-response answer written."""
    nb = submissions.solved(root, A)
    for c in nb.cells:
        g = c.metadata.get("nbgrader", {})
        if c.cell_type == "markdown" and g.get("solution"):
            c.source = FREE_TEXT
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    require_browser()
    root = G.make_course(tmp_path_factory.mktemp("formgrader") / "course")
    nb = answered(root)
    out = root / "grading" / "submitted" / STUDENT / A / f"{A}.ipynb"
    out.parent.mkdir(parents=True)
    nbformat.write(nb, out)
    (root / "work").mkdir()
    nbformat.write(nb, root / "work" / f"{A}.ipynb")  # the student's own copy, for the Validate button
    # the submission is trusted (built here), so it needs no sandbox; this test is about the browser
    proc = G.nbgrader("autograde", A, "--create", "--SandboxedExecute.sandbox=False", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manual = [c.metadata.nbgrader["grade_id"] for c in nb.cells if c.cell_type == "markdown"
              and c.metadata.get("nbgrader", {}).get("grade") and c.metadata.nbgrader.get("solution")]
    assert manual, "ps2 has free-response answers graded by hand"
    return root, manual[0]


def _gradebook(root: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}")


def _menu(driver, label: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel') and text()='{label}']")


def _visible_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


@pytest.mark.timeout(240)
def test_instructor_mode_formgrader_grades_a_free_response_answer(course, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root, gid = course
    with _gradebook(root) as gb:
        before = gb.find_submission(A, STUDENT).score
        assert gb.find_grade(gid, A, A, STUDENT).needs_manual_grade
    t0 = time.monotonic()
    with jupyterlab_server(root, tmp_path, config_path=REPO / "jupyter_config" / "instructor") as (base, token), \
            chromium(tmp_path) as driver:
        driver.get(f"{base}/lab?token={token}")
        wait_for(lambda: _menu(driver, "Nbgrader"), 60, "JupyterLab's Nbgrader menu", driver)[0].click()
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "li[data-command='nbgrader:open-formgrader']"), 10,
                 "the menu item Formgrader", driver).click()
        # the Create Assignment panel is in the right sidebar
        assert driver.find_elements(By.CSS_SELECTOR, "[data-id='nbgrader-create_assignemnt']"), "no Create Assignment"
        frame = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#formgrader-iframe iframe"), 30,
                         "the Formgrader panel", driver)
        driver.switch_to.frame(frame)
        rows = lambda: [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#main-table tr")]
        wait_for(lambda: all(any(a in r for r in rows()) for a in ALL_ASSIGNMENTS), 60,
                 "the Formgrader to list the four problem sets", driver)
        print(f"Formgrader lists {len(rows())} assignments after {time.monotonic() - t0:.1f} s")
        assert not driver.find_elements(By.ID, "warning-exchange"), "the Formgrader reports a missing exchange"

        # Manual Grading -> ps2_temperature -> its notebook -> the submission
        driver.find_element(By.LINK_TEXT, "Manual Grading").click()
        wait_for(lambda: driver.find_element(By.LINK_TEXT, A), 30, "ps2 under Manual Grading", driver).click()
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f"#main-table a[href$='/gradebook/{A}/{A}']"), 30,
                 "the notebook of ps2", driver).click()
        link = wait_for(lambda: [a for a in driver.find_elements(By.CSS_SELECTOR, "#main-table a[href*='/submissions/']")
                                 if a.is_displayed()], 30, "the autograded submission", driver)
        link[0].click()
        score = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f"input.score[id='{gid}']"), 60,
                         f"the score box of {gid}", driver)
        assert FREE_TEXT in _visible_text(driver), "the student's answer is shown"
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", score)
        last = {}

        def stored():
            with _gradebook(root) as gb:
                last["grade"] = gb.find_grade(gid, A, A, STUDENT).manual_score
                last["comment"] = gb.find_comment(gid, A, A, STUDENT).manual_comment
            return last

        # leaving a box saves it (tab: the next box). Offline, the page's keyboard shortcuts are off (it loads
        # MathJax from a CDN and stops setting them up without it); leaving the box works either way.
        score.click()
        score.send_keys("1", Keys.TAB)
        wait_for(lambda: stored()["grade"] == 1.0, 20, "the grade to reach the gradebook", driver)
        comment = driver.find_element(By.CSS_SELECTOR, f"textarea[id='{gid}-comment']")
        comment.click()
        comment.send_keys("Right idea; say which negatives.", Keys.TAB)
        wait_for(lambda: stored()["comment"] == "Right idea; say which negatives.", 20,
                 f"the comment to reach the gradebook (it holds {last})", driver)
        driver.save_screenshot(str(tmp_path / "formgrader_submission.png"))
    log = (tmp_path / "jupyterlab.log").read_text()
    assert "please contact your instructor" not in log and "Traceback" not in log, log[-3000:]  # no exchange errors
    with _gradebook(root) as gb:
        assert not gb.find_grade(gid, A, A, STUDENT).needs_manual_grade
        assert gb.find_submission(A, STUDENT).score == pytest.approx(before + 1.0)
    print(f"manual grade stored; whole test {time.monotonic() - t0:.1f} s; screenshot {tmp_path / 'formgrader_submission.png'}")


@pytest.mark.timeout(240)
def test_student_mode_has_validate_but_no_instructor_tools_or_exchange_errors(course, tmp_path):
    from selenium.webdriver.common.by import By

    root, _ = course
    t0 = time.monotonic()
    forbidden = ("Formgrader", "Create Assignment", "Assignment List", "Course List", "exchange")
    with jupyterlab_server(root, tmp_path, config_path=REPO / "jupyter_config" / "student") as (base, token), \
            chromium(tmp_path) as driver:
        for page in ("/formgrader", "/assignments", "/courses"):  # the instructor's and the exchange's server parts
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"{base}{page}?token={token}", timeout=10)
            assert e.value.code == 404, (page, e.value.code)

        driver.get(f"{base}/lab/tree/work/{A}.ipynb?token={token}")
        button = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".validate-button"), 60,
                          "the notebook's Validate button", driver)
        wait_for(lambda: _menu(driver, "Run"), 30, "the menu bar", driver)
        time.sleep(2)  # let every extension finish starting before the page is inspected
        assert not _menu(driver, "Nbgrader"), "students get no Nbgrader menu"
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-id='nbgrader-create_assignemnt']")
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-id*='nbgrader-assignment'], [data-id*='nbgrader-course']")
        text = _visible_text(driver)
        assert not [w for w in forbidden if w.lower() in text.lower()], text[:2000]

        button.click()
        dialog = wait_for(lambda: [d for d in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog") if d.is_displayed()
                                   and "Success" in d.text], 120, "the Validate dialog to report success", driver)
        assert "Validation Results" in dialog[0].text, dialog[0].text
        print(f"Validate in student mode: {dialog[0].text[:200]!r} after {time.monotonic() - t0:.1f} s")

        driver.get(f"{base}/tree/work?token={token}")  # Notebook 7's file browser, `make notebook`
        wait_for(lambda: A in _visible_text(driver), 60, "Notebook 7's file list", driver)
        time.sleep(2)
        assert not _menu(driver, "Nbgrader")
        text = _visible_text(driver)
        assert not [w for w in forbidden if w.lower() in text.lower()], text[:2000]
    log = (tmp_path / "jupyterlab.log").read_text()
    assert "exchange" not in log.lower() and "Traceback" not in log, log[-3000:]
    print(f"student mode checked in {time.monotonic() - t0:.1f} s")
