"""nbgrader configuration for the SimCLR Workbook's problem sets (nbgrader 0.9).

Layout (all relative to this file's folder, the repository root):
  solutions/<assignment>/<assignment>.ipynb   instructor source: answers, hidden tests, mark schemes
  exercises/<assignment>/<assignment>.ipynb   student version, produced by `python scripts/course.py generate`
  grading/                                     git-ignored: gradebook.db, submitted/, autograded/, feedback/

See docs/instructors.md for the commands from source to grades.
"""

import os
import sys

c = get_config()  # noqa: F821 (provided by traitlets when this file is loaded)

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:  # the autograding pipeline below lives in this repository's grader/ package
    sys.path.insert(0, ROOT)
GRADING = os.path.join(ROOT, "grading")

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "simclr-workbook"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = os.path.join("grading", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("grading", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("grading", "feedback")
c.CourseDirectory.solution_directory = os.path.join("grading", "solution")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(GRADING, "gradebook.db")
# zip_collect: put the files/zips downloaded from the LMS in grading/downloaded/<assignment>/archive/. Each notebook
# must be named <student_id>__<notebook>.ipynb, e.g. alice__ps1_similarity_matrix.ipynb (two underscores).
c.ZipCollectApp.downloaded_directory = os.path.join("grading", "downloaded")
c.FileNameCollectorPlugin.named_regexp = r".*?(?P<student_id>[^/]+?)__(?P<file_id>[^/]+\.ipynb)$"

# Per-cell time limit while autograding/validating: an infinite loop in one answer is interrupted after this many
# seconds, that cell's tests fail, and the rest of the notebook is still graded.
c.Execute.timeout = 30
c.Execute.interrupt_on_timeout = True
# A student who deletes a test cell gets it back (and graded) instead of silently skipping it.
c.OverwriteCells.add_missing_cells = True

# Autograding (docs/instructors.md, "How grading works"): test cells restored with a warning only for cells really
# changed; each notebook runs in a bubblewrap sandbox (grader.sandbox) and a dead kernel is recorded, not fatal;
# every graded cell is then scored by the trusted checker (grader.judge.TrustedChecks) from values it obtains by
# running the answer cells again in a plain sandboxed process per check (grader.harness), never from what the kernel
# displayed; nbgrader's own scoring reads the verdicts it wrote. A dead
# kernel's notebook is flagged and its cells from the crash onwards wait for a manual grade (grader.status).
c.Autograde.sanitize_preprocessors = [
    "grader.guards.RefuseUnsafeFiles",  # no link or special file is copied (grader.guards)
    "grader.guards.StripGradingMetadata",  # a grading status comes only from the preprocessors below
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "grader.preprocessors.QuietOverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Feedback shows each check's verdict, never the hidden part of a test cell; what the student wrote is sanitized
# (grader.sanitize) and the page carries a Content-Security-Policy, so nothing in it runs when opened.
c.GenerateFeedback.preprocessors = [
    "grader.guards.RefuseUnsafeFiles",
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "grader.sanitize.SanitizeSubmission",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.exporter_class = "grader.sanitize.FeedbackExporter"
c.Autograde.autograde_preprocessors = [
    "grader.preprocessors.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "grader.judge.TrustedChecks",
    "nbgrader.preprocessors.LimitOutput",
    "grader.sanitize.SanitizeSubmission",  # nothing a submission wrote runs in the Formgrader or the feedback
    "nbgrader.preprocessors.SaveAutoGrades",
    "grader.status.FlagForReview",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# `nbgrader export`: nbgrader's CSV columns plus each submission's status ("missing", "kernel died in cell X, needs
# review", "needs manual grading (N cells)", "graded") and notes (edited or deleted test cells, time limits).
c.ExportApp.plugin_class = "grader.export.StatusCsvExportPlugin"
# Release notebooks carry no outputs; keep the release deterministic so regenerating gives the committed files.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# The problem sets go out as a zip and come back as files (docs/instructors.md), not through nbgrader's exchange; a
# course-local exchange folder keeps the Formgrader from reporting the default system one as missing or unwritable.
c.Exchange.root = os.path.join(GRADING, "exchange")

os.makedirs(c.Exchange.root, exist_ok=True)
