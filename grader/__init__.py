"""Trusted side of the autograder: runs in the nbgrader process, where no submission code ever runs.

``grader.harness`` obtains a submission's values by running its answer cells again in a plain sandboxed process
per check (``grader_probe.runner``), without the library functions the problem set asks for; ``grader.judge``
compares them with the references of ``grader.reference`` using the checks of ``checks_ps12`` / ``checks_ps34``
and writes each graded cell's verdict as its only output.
"""

from .checks_ps12 import CHECKS as _PS12
from .checks_ps34 import CHECKS as _PS34

CHECKS = {**_PS12, **_PS34}
