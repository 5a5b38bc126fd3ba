"""Autograding through the real nbgrader commands, in the bubblewrap sandbox: each kind of submission gets the
score and the message it deserves (tests/submissions.py builds them, tests/grade_kinds.py runs nbgrader).

One `nbgrader autograde` call per problem set grades all of its submissions. Each submission is graded as the
student id of its kind, with that student's own numbers; the copying kinds hand in the numbers of the student
"correct" and score 0 on every numeric answer (their code answers still count). The values are obtained by running
the answer cells again outside the kernel (grader.harness), so what a cell did to the kernel (emptied later cells,
killed it) costs only that cell's own answers.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest

from . import grade_kinds as G

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap`")]
A1 = "ps1_similarity_matrix"
PS1 = {
    # kind: (score of 11, text the feedback must show)
    "correct": (11, "PASS  L_batch is right"),
    "blank": (0, "NotImplementedError"),
    "self_in_denominator": (9.5, "the denominator includes k = i, the self-similarity"),
    "no_tau": (9.5, "the similarities are not divided by the temperature tau"),
    "negatives_only": (9.5, "the denominator holds only the negatives"),
    "log10": (10, "it uses log base 10"),
    # the sheet's reading of Q1.3 (3 pairs, one way): full marks, and the feedback gives the 2N-anchor mean
    "one_way_mean": (11, "is right for the exercise sheet's reading, the mean over the N pairs taken one way"),
    # the neighbour's numeric answers under her own id: 0 for 1.1, 1.2 and L_batch (4 points); 1.3's and 1.4's
    # functions are her own work and score
    "copied_numbers": (7, "is wrong; check the formula above"),
    "copied_notebook": (7, "it is the answer for the numbers of student id 'correct', the STUDENT_ID in this "
                           "notebook, but the notebook is graded as 'copied_notebook'"),
    "forbidden_library": (6, "do not call simclr_core.nn.loss.nt_xent"),
    "patched_comparators": (0, "numerator_12 = 0.5 is wrong"),
    "blanked_later_cells": (9, "cell q1_1_answer raised NameError: name 'get_ipython' is not defined"),
    "numpy_and_tensor_types": (11, "PASS  L_12 is right"),
    "edited_test": (9, "not divided by the temperature"),
    "deleted_test": (9, "not divided by the temperature"),
    "infinite_loop": (10, "was stopped at the time limit"),
    "kernel_crash": (10, "cell q1_2_answer ended its process, so it was skipped"),
    "escape_attempts": (9, "numerator_12 is not defined"),
}
OTHERS = ["correct", "patched_comparators"]
AUTO_POINTS = {"ps2_temperature": 6, "ps3_batch_size": 6, "ps4_applications": 5}  # the rest is graded by hand
# copied numeric answers of the student "correct": ps2 loses share_low and share_high (2 of the 3 parts of 2 points)
# and L_batch_high (1 point); ps3 loses max_bound (1 of the 2 parts of 2 points)
COPIED = {"ps2_temperature": (6 - 4 / 3 - 1, ["share_low", "share_high", "L_batch_high"]),
          "ps3_batch_size": (6 - 1, ["max_bound"])}


@pytest.fixture(scope="module")
def course(graded_course):
    """ps1's kinds in the session's graded courses (tests/conftest.py)."""
    root, procs, res = graded_course["kinds"]
    return root, procs[A1], res[A1]


def test_the_shared_course_grades_every_kind_of_this_file():
    assert set(PS1) == set(G.TESTED_KINDS[A1])
    for a in AUTO_POINTS:
        assert set(G.TESTED_KINDS[a]) == {*OTHERS, *(["copied_numbers"] if a in COPIED else [])}


def _text(msgs):
    return "\n".join(msgs.values())


@pytest.mark.parametrize("kind", sorted(PS1))
def test_each_kind_of_submission_gets_its_score_and_message(course, kind):
    _, proc, res = course
    score, mx, msgs = res[kind]
    want, text = PS1[kind]
    assert mx == 11
    assert score == pytest.approx(want), (kind, score, msgs)
    assert text in _text(msgs), (kind, msgs)


def test_nothing_fails_to_be_graded_and_only_the_edited_cell_warns(course):
    root, proc, _ = course
    log = proc.stdout + proc.stderr
    assert "There was an error processing" not in log, log[-3000:]
    assert log.count("Attribute 'checksum' for cell") == 1, "only the one test cell really edited may warn"
    def status(kind):  # without the per-cell verdict records, which tests/test_class_report.py checks
        meta = nbformat.read(root / "grading" / "autograded" / kind / A1 / f"{A1}.ipynb", 4).metadata
        return {k: v for k, v in meta.get("simclr_grading", {}).items() if k != "verdicts"}
    assert status("edited_test") == {"edited_tests": ["q1_1_terms"]}
    assert status("deleted_test") == {"missing_tests": ["q1_1_terms"]}
    assert status("kernel_crash") == {"kernel_died_in": "q1_2_answer",
                                      "grading_skipped_cells": {"q1_2_answer": "ended its process"}}
    assert status("correct") == {}
    # for the instructor, not in the feedback: whose numbers the copied answers are for
    numeric = {"q1_1_terms": ["correct"], "q1_1_loss": ["correct"], "q1_2": ["correct"], "q1_3_batch": ["correct"]}
    assert status("copied_numbers") == {"answers_for_other_students": numeric}
    assert status("copied_notebook") == {"answers_for_other_students": numeric, "student_id_typed": "correct"}


def test_copied_answers_are_checked_against_the_graded_id_not_the_typed_one(course):
    _, _, res = course
    # her own typed id is named; a roster member's numbers are not (the feedback reveals no other student)
    why = {"copied_numbers": "(on your numbers, student id 'copied_numbers')",
           "copied_notebook": "the STUDENT_ID in this notebook, but the notebook is graded as 'copied_notebook'"}
    for kind, text in why.items():
        msgs = res[kind][2]
        for gid, name in [("q1_1_terms", "denominator_12"), ("q1_1_loss", "L_12"), ("q1_2", "L_34"),
                          ("q1_3_batch", "L_batch")]:
            line = next(l for l in msgs[gid].splitlines() if l.startswith(f"FAIL  {name} = "))
            assert text in line and "another student" not in line, (kind, gid, msgs[gid])
        assert "FAIL" not in msgs["q1_3_anchor"] + msgs["q1_4_visible"] + msgs["q1_4_hidden"], (kind, msgs)


def test_the_sandbox_hides_the_course_and_the_network(course):
    root, _, _ = course
    nb = nbformat.read(root / "grading" / "autograded" / "escape_attempts" / A1 / f"{A1}.ipynb", 4)
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "gradebook found: [] []" in out and "solutions found: []" in out, out
    assert "wrote into: []" in out and "network reachable" not in out and "network blocked" in out, out
    assert not list((root / "grading").rglob("planted.txt"))


def test_hidden_tests_and_references_stay_out_of_the_feedback(course):
    root, _, _ = course
    fb = G.nbgrader("generate_feedback", A1, "--student=no_tau", cwd=root)
    assert fb.returncode == 0, fb.stderr[-2000:]
    html = (root / "grading" / "feedback" / "no_tau" / A1 / f"{A1}.html").read_text(encoding="utf-8")
    assert "not divided by the temperature" in html
    assert "9.5 / 11.0" in html
    for secret in ("BEGIN HIDDEN TESTS", "grader.reference", "0x1."):  # no hidden source, no reported values
        assert secret not in html, secret


@pytest.mark.parametrize("a", ["ps2_temperature", "ps3_batch_size", "ps4_applications"])
def test_other_problem_sets_score_right_answers_only(graded_course, a):
    _, procs, results = graded_course["attacks"]  # ps2-ps4 of both tables are graded there
    proc, res = procs[a], results[a]
    assert "Attribute 'checksum'" not in proc.stdout + proc.stderr, "no test cell was changed: no checksum warning"
    assert res["correct"][0] == AUTO_POINTS[a], (res["correct"], proc.stderr[-2000:])
    assert "FAIL" not in _text(res["correct"][2])
    # no value passes
    passes = [l for l in _text(res["patched_comparators"][2]).splitlines() if l.startswith("PASS")]
    assert not passes, passes
    assert res["patched_comparators"][0] <= 0.2, res["patched_comparators"]
    if a in COPIED:  # a neighbour's numbers score 0 on the numeric answers, each failure saying why
        want, names = COPIED[a]
        score, _, msgs = res["copied_numbers"]
        assert score == pytest.approx(want, abs=0.01), (score, msgs)
        for name in names:
            line = next(l for l in _text(msgs).splitlines() if l.startswith(f"FAIL  {name} = "))
            assert "student id 'copied_numbers')" in line and "another student" not in line, (name, msgs)
