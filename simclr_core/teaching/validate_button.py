"""The Validate button, honest about what it checks: a Jupyter server extension that answers the button's request.

Every point of a problem set is decided when the notebook is graded, by checks that are not in the notebook; the
visible tests check types and consistency only (``teaching.visible_checks``). nbgrader's own answer to the button
makes its frontend say "Success! Your notebook passes all the tests." whenever the visible tests pass, which here
is false. This extension serves the button's two URLs in place of nbgrader's ``validate_assignment`` extension:

* ``nbgrader_version``: nbgrader's own handler (the button asks it before validating);
* ``assignments/validate``: nbgrader's handler (the same checks of the path, the same Validator run with the
  settings it reads), its answer given the summary of what the visible tests cover.

The Jupyter settings of both modes (``jupyter_config/<role>/jupyter_server_config.json``) disable nbgrader's
extension and enable this one: with both enabled nbgrader's would answer, as extensions load in alphabetical order
and tornado takes the first route that matches (loading this one then logs an error). In the instructor's mode the
button validates the source notebooks, whose points the same grading checks decide, so it answers the same way.

What the frontend shows (``@jupyter/nbgrader``, the function that opens "Validation Results") depends only on the
shape of the answer, and every branch has a fixed sentence:

* ``{"success": false, "value": text}``: "There was an error running the validate command:" and the text;
* ``value.type_changed`` / ``value.changed``: per cell, that it "has changed, but it should not have!";
* ``value.failed``: per cell, "The following cell failed:", its source as text and its ``error`` as HTML;
* ``value.passed``: the frontend throws (it loops over ``value.changed``), so no dialog opens;
* anything else: "Success! Your notebook passes all the tests."

No branch shows the server's text alone, and only ``failed`` takes HTML. So the answer is a ``failed`` list whose
first entry is the summary: its ``error`` holds the summary and a ``<style>`` that hides that entry's fixed
sentence and empty source box, so the student reads the summary alone there (the error branch would instead tell
her that the command broke). When the visible tests pass, that entry is the whole answer; when a cell fails,
nbgrader's listing follows it, each failure under its own sentence. The style lives in the dialog and is removed
with it (tests/test_validate_button.py reads the dialog in headless Chromium, JupyterLab and Notebook 7). A
changed cell or an error is passed on as nbgrader has it. Text from the notebook reaches the HTML only as nbgrader
escapes it; the summary is escaped here.
"""

from __future__ import annotations

import html
from pathlib import Path

import nbformat
from jupyter_server.utils import url_path_join
from nbgrader.server_extensions.validate_assignment.handlers import NbGraderVersionHandler, ValidateAssignmentHandler

from .visible_checks import Points, decided_at_grading, graded_cells, points

NBGRADERS = "nbgrader.server_extensions.validate_assignment"
# the failed branch builds, per entry: <div><p>fixed sentence</p></div>, <div><pre>source</pre></div>, <div><pre>error
# (innerHTML)</pre></div>, all children of #validation-message; the first two belong to the summary's entry
HIDE_FIXED_TEXT = "<style>#validation-message > div:nth-child(-n+2) { display: none; }</style>"
SUMMARY_STYLE = ("white-space: normal; margin: 0; font-family: var(--jp-ui-font-family); "
                 "font-size: var(--jp-ui-font-size1);")


def passing_summary(p: Points) -> str:
    """What the student reads when every visible test passes."""
    if not (p.autograded or p.manual):
        return "This notebook has no graded cells: nothing in it is graded."
    if not p.visible:
        return f"This notebook has no visible tests. {decided_at_grading(p)}"
    return (f"The visible tests pass. They check the format of {p.visible:g} of the {p.autograded:g} autograded "
            f"points (types and consistency, not your values). {decided_at_grading(p)}")


def failing_summary(p: Points, failed: int) -> str:
    """What the student reads above the list of failed cells."""
    return (f"{failed} cell{'s' if failed > 1 else ''} failed, listed below. The visible tests check the format of "
            f"{p.visible:g} of the {p.autograded:g} autograded points (types and consistency, not your values). "
            f"{decided_at_grading(p)}")


def _summary(text: str) -> dict:
    """A ``failed`` entry that shows only ``text`` (see the module's docstring); it must come first."""
    paragraph = f'<p class="simclr-validate-summary" style="{SUMMARY_STYLE}">{html.escape(text)}</p>'
    return {"source": "", "error": HIDE_FIXED_TEXT + paragraph}


def honest(result: dict, p: Points) -> dict:
    """nbgrader's Validator result for the button, the summary of what the visible tests cover put first."""
    if result.get("type_changed") or result.get("changed"):
        return result
    if result.get("failed"):
        return {**result, "failed": [_summary(failing_summary(p, len(result["failed"]))), *result["failed"]]}
    return {"failed": [_summary(passing_summary(p))]}


class HonestValidateHandler(ValidateAssignmentHandler):
    """nbgrader's handler of ``POST assignments/validate`` (path in the query or a JSON body), its answer made
    honest by ``honest``."""

    def validate_notebook(self, path):
        answer = super().validate_notebook(path)  # refuses a path outside the server's root
        if answer.get("success") is not True or not isinstance(answer.get("value"), dict):
            return answer
        nb = nbformat.read(Path(self.root_dir).resolve() / path, as_version=4)
        return {**answer, "value": honest(answer["value"], points(graded_cells(nb)))}


def _jupyter_server_extension_points():
    return [{"module": "simclr_core.teaching.validate_button"}]


def _load_jupyter_server_extension(serverapp):
    if serverapp.jpserver_extensions.get(NBGRADERS):
        serverapp.log.error(f"{NBGRADERS} is enabled too and answers the Validate button first: disable it "
                            "(jpserver_extensions) to get the summary of what the visible tests check")
    web_app = serverapp.web_app
    web_app.settings["root_dir"] = serverapp.root_dir  # where nbgrader's handler looks for it
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, "assignments/validate"), HonestValidateHandler),
                                 (url_path_join(base_url, "nbgrader_version"), NbGraderVersionHandler)])
