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
* Hostile submissions (tests/hostile_views.py: script payloads in a Markdown and a code answer): logged in as the
  instructor, neither the Formgrader's page of a sanitized submission nor that of one autograded without sanitizing
  runs any payload, the grades stay, the answer's text, math and plot are shown, and a student's HTML file is served
  sandboxed; nor does the feedback HTML opened as a file. Without grader.formgrader_csp and grader.sanitize every
  payload runs, rewrites all grades and reads the solutions (the tests can fail).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from . import grade_kinds as G
from . import submissions
from .browser_helpers import chromium, jupyterlab_server, require_browser
from . import hostile_views as HV
from .hostile_views import HOSTILE, RAW, hostile, unsanitized
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
    for who in HOSTILE:  # the same answers, carrying script payloads (test_submission_views_run_no_script)
        out = root / "grading" / "submitted" / who / A / f"{A}.ipynb"
        out.parent.mkdir(parents=True)
        nbformat.write(hostile(answered(root)), out)
    # the submissions run without a sandbox (the sandbox is tested elsewhere); this test is about the browser
    proc = G.nbgrader("autograde", A, "--create", "--SandboxedExecute.sandbox=False", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    unsanitized(root, RAW)
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
        with _gradebook(root) as gb:
            mine = gb.find_submission_notebook(A, A, STUDENT).id
        link = wait_for(lambda: [a for a in driver.find_elements(By.CSS_SELECTOR, f"#main-table a[href*='/submissions/{mine}']")
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
                                   and "The visible tests pass" in d.text], 120, "the Validate dialog", driver)
        assert "Validation Results" in dialog[0].text, dialog[0].text
        assert "passes all the tests" not in dialog[0].text, dialog[0].text  # tests/test_validate_button.py
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


# ------------------------------------------------------------------------------ submissions that carry script
MARKERS_JS = """
var out = {};
for (var i = 0; i < localStorage.length; i++) {
  var k = localStorage.key(i); if (k.indexOf('xss-') === 0) out[k] = localStorage.getItem(k); }
for (var a of document.documentElement.attributes) if (a.name.indexOf('data-xss-') === 0) out[a.name] = a.value;
return out;"""


# elements of the rendered notebook that could run script: handlers, script/frame/object/SVG elements, script URLs
ACTIVE_JS = """
var found = [];
document.querySelectorAll('#notebook-container *').forEach(function (el) {
  var tag = el.tagName.toLowerCase();
  if (['script', 'iframe', 'object', 'embed', 'svg', 'form', 'base', 'meta'].indexOf(tag) >= 0) found.push(tag);
  for (var a of el.attributes) {
    var v = a.value.replace(/\\s/g, '').toLowerCase();
    if (a.name.indexOf('on') === 0 || v.indexOf('javascript:') === 0) found.push(tag + ' ' + a.name);
  }
});
return found;"""


def _markers(driver) -> dict:
    """What the payloads left behind on this page (and, through localStorage, on this origin)."""
    try:
        return driver.execute_script(MARKERS_JS)
    except Exception:  # file:// pages may refuse localStorage
        return driver.execute_script("var o={}; for (var a of document.documentElement.attributes) "
                                     "if (a.name.indexOf('data-xss-')===0) o[a.name]=a.value; return o;")


def _grades(root: Path, who: str) -> dict:
    with _gradebook(root) as gb:
        return {g.name: (g.manual_score, g.extra_credit) for g in gb.find_submission_notebook(A, A, who).grades}


def _submission_id(root: Path, who: str) -> str:
    with _gradebook(root) as gb:
        return gb.find_submission_notebook(A, A, who).id


def _log_in(driver, base: str, token: str) -> None:
    """Log in as an instructor does (JupyterLab with the token sets the login cookie), so that pages opened later
    carry the session a payload would abuse."""
    driver.get(f"{base}/lab?token={token}")
    wait_for(lambda: "_xsrf" in driver.execute_script("return document.cookie"), 30, "the login and _xsrf cookies", driver)


def _open_and_click(driver, url: str, ready_css: str) -> dict:
    """Open ``url``, click the payload's javascript: link, give every payload time to run; return the markers."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ready_css), 60, f"{ready_css} on {url}", driver)
    for link in driver.find_elements(By.PARTIAL_LINK_TEXT, "see my notes"):
        try:
            link.click()
        except Exception:
            pass
    time.sleep(3)  # the payload's requests (grades, solutions) are asynchronous
    marks = _markers(driver)
    try:
        driver.execute_script("localStorage.clear()")  # the next page of this origin starts clean
    except Exception:
        pass
    return marks


def _answer_and_plot_shown(driver) -> None:
    from selenium.webdriver.common.by import By

    text = _visible_text(driver)
    assert HV.ANSWER_TEXT in text and r"\tau" in text, "the answer's text and math are shown"
    imgs = driver.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']")
    widths = [driver.execute_script("return arguments[0].naturalWidth", i) for i in imgs]
    assert any(w >= 100 for w in widths), f"the answer's plot is shown (PNG widths {widths})"


def _config_without_policy(tmp: Path) -> Path:
    """Instructor mode as nbgrader ships it: the Formgrader without grader.formgrader_csp."""
    folder = tmp / "instructor-without-policy"
    shutil.copytree(REPO / "jupyter_config" / "instructor", folder, ignore=shutil.ignore_patterns("*.py"))
    cfg = json.loads((folder / "jupyter_server_config.json").read_text())
    del cfg["ServerApp"]["jpserver_extensions"]["grader.formgrader_csp"]
    cfg["ServerApp"]["log_level"] = "DEBUG"  # successful API requests are logged too (the payload's PUTs)
    (folder / "jupyter_server_config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.timeout(300)
def test_submission_views_run_no_script(course, tmp_path):
    """Instructor mode: no payload runs in the Formgrader, neither from a sanitized notebook (mallory) nor from one
    autograded without sanitizing (eve: the export-time cleaning and the policy hold); grades stay as they were;
    the answer's text, math and plot are shown; the student's files are served sandboxed."""
    root, _ = course
    before = {w: _grades(root, w) for w in HOSTILE}
    with jupyterlab_server(root, tmp_path, config_path=REPO / "jupyter_config" / "instructor") as (base, token), \
            chromium(tmp_path) as driver:
        page = f"{base}/formgrader/submissions/{_submission_id(root, RAW)}/?token={token}"
        with urllib.request.urlopen(page, timeout=30) as r:
            policy = r.headers["Content-Security-Policy"]
        scripts = policy.split("script-src", 1)[1].split(";", 1)[0]
        assert "'unsafe-inline'" not in scripts and "*" not in scripts and "'self'" not in scripts, policy
        (root / "grading" / "autograded" / RAW / A / "notes.html").write_text(f"<script>{HV.attack('file')}</script>")
        files = f"{base}/formgrader/submissions/{_submission_id(root, RAW)}/notes.html?token={token}"
        with urllib.request.urlopen(files, timeout=30) as r:
            assert r.headers["Content-Security-Policy"].startswith("sandbox;"), r.headers
        _log_in(driver, base, token)
        for who in HOSTILE:
            url = f"{base}/formgrader/submissions/{_submission_id(root, who)}/"
            marks = _open_and_click(driver, url, "input.score")
            assert marks == {}, f"{who}'s submission ran script in the Formgrader: {marks}"
            _answer_and_plot_shown(driver)
            active = driver.execute_script(ACTIVE_JS)
            assert active == [], f"{who}: active markup in the rendered submission: {active}"
        assert _open_and_click(driver, files.split("?")[0], "body") == {}, "a submitted HTML file ran script"
        print(f"Formgrader policy: {policy}")
    assert {w: _grades(root, w) for w in HOSTILE} == before, "the grades changed"


@pytest.mark.timeout(300)
def test_without_sanitizing_the_payloads_run(course, tmp_path):
    """The test above can fail: in instructor mode without the policy, eve's unsanitized notebook runs the payloads
    (grades rewritten, solutions fetched); mallory's, sanitized when autograded, still runs nothing."""
    root, _ = course
    before = _grades(root, RAW)
    with jupyterlab_server(root, tmp_path, config_path=_config_without_policy(tmp_path)) as (base, token), \
            chromium(tmp_path) as driver:
        _log_in(driver, base, token)
        url = f"{base}/formgrader/submissions/{_submission_id(root, 'mallory')}/"
        assert _open_and_click(driver, url, "input.score") == {}, "the sanitized notebook alone runs nothing"
        url = f"{base}/formgrader/submissions/{_submission_id(root, RAW)}/"
        marks = _open_and_click(driver, url, "input.score")
    ran = sorted({k.removeprefix("data-").removeprefix("xss-") for k in marks} - {"solutions"})
    after = _grades(root, RAW)
    requests = [line for line in (tmp_path / "jupyterlab.log").read_text().splitlines()
                if "/formgrader/api/grade" in line or "/api/contents/solutions" in line]
    print(f"without sanitizing: payloads that ran {ran}; solutions fetched with HTTP {marks.get('xss-solutions')}; "
          f"grades {before} -> {after}", *requests[-12:], sep="\n  ")
    assert set(HV.LABELS) <= set(ran), marks  # every payload is live here
    assert after != before and any(extra == 9 for _, extra in after.values()), (before, after)
    assert marks.get("xss-solutions") == "200", "the payload read the solutions through the contents API"
    with _gradebook(root) as gb:  # put eve's grades back for the other tests of this module
        for g in gb.find_submission_notebook(A, A, RAW).grades:
            g.manual_score, g.extra_credit = before[g.name]
        gb.db.commit()


@pytest.mark.timeout(300)
def test_feedback_html_runs_no_script(course, tmp_path):
    """`nbgrader generate_feedback`: opened as a file, neither feedback runs a payload (sanitized, a policy in its
    head), and the answer's text and plot are there; the same notebook exported without them runs the payloads."""
    root, _ = course
    feedback = {who: root / "grading" / "feedback" / who / A / f"{A}.html" for who in HOSTILE}
    # as nbgrader makes feedback out of the box: its own exporter, no sanitizing
    plain = ["--GenerateFeedback.exporter_class=nbconvert.exporters.HTMLExporter",
             "--GenerateFeedback.preprocessors=nbgrader.preprocessors.GetGrades",
             "--GenerateFeedback.preprocessors=nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
    proc = G.nbgrader("generate_feedback", A, "--force", "--student", RAW, *plain, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copy(feedback[RAW], tmp_path / "unsanitized.html")
    proc = G.nbgrader("generate_feedback", A, "--force", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with chromium(tmp_path) as driver:
        before = _open_and_click(driver, (tmp_path / "unsanitized.html").as_uri(), "body")
        for who in HOSTILE:
            assert '<meta http-equiv="Content-Security-Policy"' in feedback[who].read_text()
            assert _open_and_click(driver, feedback[who].as_uri(), "body") == {}, f"{who}'s feedback ran script"
            _answer_and_plot_shown(driver)
    print(f"feedback without sanitizing: payloads that ran {sorted(before)}")
    # every payload but the JavaScript output, which nbgrader's feedback template does not render
    assert {f"data-xss-{label}" for label in HV.LABELS if label != "js-output"} <= set(before), before
