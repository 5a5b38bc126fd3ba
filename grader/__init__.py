"""Trusted side of the autograder: runs in the nbgrader process, where no submission code ever runs.

``grader_probe`` (inside the sandboxed grading kernel) reports a submission's values; the preprocessor in
``grader.preprocessors`` compares them with the references of ``grader.reference`` using the checks of
``checks_ps12`` / ``checks_ps34`` and writes each graded cell's verdict as its only output.
"""

from .checks_ps12 import CHECKS as _PS12
from .checks_ps34 import CHECKS as _PS34

CHECKS = {**_PS12, **_PS34}
