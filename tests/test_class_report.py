"""The class report (grader.report): what a verdict records, how the status metadata keeps it, and the counts,
ordering and anonymity of the report, on fabricated records; ``CLASS`` and ``check_class`` are the really graded
class of tests/test_grading_class.py (graded once there for both)."""

from __future__ import annotations

import html
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import judge, report, status
from grader import reference as R
from grader.harness import CheckRun
from grader.verdict import Verdict, cases, scalar

from . import grade_kinds as G

NO_TAU, SELF = R.MISTAKES["no_tau"], R.MISTAKES["self"]
ONE_WAY = R.BATCH_MISTAKES["one_way"]


def _hex(x: float) -> dict:
    return {"v": float(x).hex()}


# ------------------------------------------------------------------------------------------- the verdict's record
def test_a_named_mistake_is_recorded_by_its_sentence_and_the_feedback_is_unchanged():
    v = Verdict()
    scalar(v, {"x": _hex(2.0)}, "x", {None: 1.0, NO_TAU: 2.0}, "hint")
    assert v.mistakes == [NO_TAU]
    assert v.message == f"FAIL  x = 2 is wrong: {NO_TAU}"
    assert v.record() == {"fraction": 0.0, "mistakes": [NO_TAU], "accepted": [], "blank": False, "copied": False,
                          "stopped": False, "review": False}


def test_another_students_numbers_are_copied_not_a_mistake():
    v = Verdict()
    typed = "it is the answer for the numbers of student id 'bob', the STUDENT_ID in this notebook"
    scalar(v, {"x": _hex(3.0)}, "x", {None: 1.0, NO_TAU: 2.0}, "hint", others=[("bob", typed, 3.0)])
    scalar(v, {"y": _hex(5.0)}, "y", {None: 1.0}, "hint", others=[("carol", None, 5.0)])
    assert v.mistakes == [] and v.record()["copied"] and v.copied_from == {"bob", "carol"}


def test_cases_record_only_the_mistakes_the_feedback_states():
    named = Verdict()
    cases(named, {"f": {"v": [(2.0).hex(), (4.0).hex()]}}, "f", [{None: 1.0, NO_TAU: 2.0}, {None: 3.0, SELF: 4.0}], "hint")
    assert named.mistakes == sorted([NO_TAU, SELF])
    unnamed = Verdict()  # a named mistake, then a value no mistake explains: the feedback names none
    cases(unnamed, {"f": {"v": [(2.0).hex(), (9.0).hex()]}}, "f", [{None: 1.0, NO_TAU: 2.0}, {None: 3.0, SELF: 4.0}], "hint")
    assert unnamed.mistakes == [] and "which is wrong; hint" in unnamed.message


def _nb(*cells):
    """A notebook of code cells (grade id, kind): kind "answer" or "test"."""
    nb = nbformat.v4.new_notebook()
    for gid, kind in cells:
        meta = {"grade_id": gid, "solution": kind == "answer", "grade": kind == "test", "locked": kind == "test",
                "points": 1}
        nb.cells.append(nbformat.v4.new_code_cell("pass", metadata={"nbgrader": meta}))
    return nb


def test_each_graded_cell_belongs_to_the_answer_above_it():
    nb = _nb(("student_id", "answer"), ("a1", "answer"), ("t1", "test"), ("t2", "test"), ("a2", "answer"),
             ("t3", "test"))
    assert judge._answer_cells(nb) == {"t1": "a1", "t2": "a1", "t3": "a2"}


def _marked(fraction: float, errors=None, untouched=False, skipped=None, meta=None, values=True) -> Verdict:
    v = Verdict()
    v.add(fraction >= 1.0, "x")
    run = CheckRun(values={} if values else None, cell_errors=errors or {})
    return judge._mark(v, run, "a1", untouched, skipped or {}, meta or {})


def test_blank_stopped_and_review_are_marked_from_the_run_not_from_text_shown():
    assert _marked(0.0, errors={"a1": "NotImplementedError: "}).blank
    assert _marked(0.0, untouched=True).blank  # a function whose body raises when called
    assert not _marked(0.0, errors={"a2": "NotImplementedError: "}).blank  # another question's answer
    assert not _marked(1.0, untouched=True).blank
    assert _marked(0.0, skipped={"a1": "was stopped at the time limit"}).stopped
    assert _marked(0.0, meta={"limits": {"memory": ["a1"]}}).stopped
    assert _marked(0.0, meta={"timed_out": ["a1"]}).stopped and not _marked(0.0, meta={"timed_out": ["b"]}).stopped
    assert _marked(0.0, values=False).review and not _marked(0.0).review


# ------------------------------------------------------------------------------------------- the status metadata
GOOD = {"fraction": 0.5, "mistakes": [NO_TAU], "accepted": [], "blank": False, "copied": True, "stopped": False,
        "review": False}


@pytest.mark.parametrize("bad", [{**GOOD, "fraction": "0.5"}, {**GOOD, "fraction": 1.5}, {**GOOD, "fraction": math.nan},
                                 {**GOOD, "fraction": True}, {**GOOD, "mistakes": NO_TAU},
                                 {**GOOD, "mistakes": [1]}, {**GOOD, "mistakes": ["x" * 601]},
                                 {**GOOD, "mistakes": ["m"] * 21}, {**GOOD, "blank": 1}, {**GOOD, "extra": 1},
                                 {**GOOD, "accepted": [2]}, {**GOOD, "accepted": "one way"},
                                 {k: v for k, v in GOOD.items() if k != "review"}, [GOOD], None])
def test_a_malformed_verdict_record_is_left_out_and_the_others_kept(bad):
    meta = status.clean_meta({"verdicts": {"q1": GOOD, "q2": bad, "x" * 101: GOOD, "q3": {**GOOD, "fraction": 1}}})
    assert meta["verdicts"] == {"q1": GOOD, "q3": {**GOOD, "fraction": 1.0}}
    assert "verdicts" not in status.clean_meta({"verdicts": [GOOD]})
    older = {k: v for k, v in GOOD.items() if k != "accepted"}  # a record written before "accepted" existed
    assert status.clean_meta({"verdicts": {"q1": older}})["verdicts"] == {"q1": GOOD}


# ------------------------------------------------------------------------------------------- the report's counts
def _record(**kw) -> dict:
    return {"fraction": 0.0, "mistakes": [], "blank": False, "copied": False, "stopped": False, "review": False,
            **kw}


def _fabricated(gid="q1", sentence=NO_TAU) -> report.ProblemSet:
    """Two questions graded for six students: a named mistake twice, a blank, a copy, a stop, one to review."""
    q1, q2 = report.Question(gid, 2.0, True), report.Question("q2", 1.0, True)
    report.add_grade(q1, "ann", 2.0, False, _record(fraction=1.0))
    report.add_grade(q1, "ben", 1.0, False, _record(fraction=0.5, mistakes=[sentence]))
    report.add_grade(q1, "cat", 0.0, False, _record(mistakes=[sentence]))
    report.add_grade(q1, "dan", 0.0, False, _record(blank=True))
    report.add_grade(q1, "eve", 0.0, False, _record(copied=True))
    report.add_grade(q1, "fay", 0.0, True, _record(review=True))  # waits for a manual grade
    for s in ("ann", "ben", "cat", "dan", "eve"):
        report.add_grade(q2, s, 0.0 if s == "cat" else 1.0, False, _record(stopped=s == "cat"))
    return report.ProblemSet("ps_x", "ps_x: 6 students, 6 submitted, 0 missing", [q2, q1], ["fay"])


def test_counts_distribution_and_points_lost_by_cause():
    ps = _fabricated()
    q2, q1 = ps.questions
    assert q1.distribution() == (1, 1, 3) and q2.distribution() == (4, 0, 1)
    assert q1.mistakes == {NO_TAU: ["ben", "cat"]}
    assert {f: len(w) for f, w in q1.flags.items()} == {"blank": 1, "stopped": 0, "review": 1, "copied": 1,
                                                        "by hand": 0}
    assert q1.lost_by == {"blank": 2.0, "stopped": 0.0, "review": 0.0, "mistake": 3.0, "copied": 2.0, "other": 0.0}
    assert q2.lost_by["stopped"] == 1.0 and q2.lost == 1.0
    assert [q.gid for q in ps.by_loss()] == ["q1", "q2"]


def test_a_blank_answer_is_not_a_named_mistake():
    q = report.Question("q", 1.0, True)
    report.add_grade(q, "dan", 0.0, False, _record(blank=True))
    assert q.mistakes == {} and q.lost_by["blank"] == 1.0 and q.lost_by["mistake"] == 0.0
    assert report.cause(_record(blank=True, mistakes=[NO_TAU])) == "blank"
    assert report.cause(_record(mistakes=[NO_TAU], copied=True)) == "mistake"


STUDENTS = ("ann", "ben", "cat", "dan", "eve", "fay")


def test_the_report_names_no_student_unless_asked():
    ps = _fabricated()
    for shown in (report.text(ps), report.page([ps])):
        assert not any(s in shown for s in STUDENTS), shown
    assert f"q1: 2 x {NO_TAU}" in report.text(ps)
    assert f"{NO_TAU} (ben, cat)" in report.text(ps, names=True)
    named = report.page([ps], names=True)
    assert "ben, cat" in named and "needs review: fay" in named


def test_every_string_on_the_page_is_escaped_and_nothing_runs():
    evil = "<script>alert(1)</script>"
    page = report.page([_fabricated(gid=evil, sentence=evil + " & <b>")])
    assert "<script" not in page and html.escape(evil) in page and html.escape(evil + " & <b>") in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert 'src="data:image/svg+xml;base64,' in page and "http" not in page.split("<body>")[1]


def test_no_points_lost_means_no_chart():
    q = report.Question("q", 1.0, True)
    report.add_grade(q, "ann", 1.0, False, _record(fraction=1.0))
    ps = report.ProblemSet("ps", "ps: 1 student", [q], [])
    assert report.chart(ps) is None and "no point lost" in report.page([ps])


def test_a_page_is_replaced_whole(tmp_path):
    path = report.write_atomic(tmp_path / "r" / "p.html", "one")
    report.write_atomic(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["p.html"]


# ------------------------------------------------------------------------------------------- a class really graded
A1 = "ps1_similarity_matrix"
# student id -> kind (tests/submissions.py); ids with "-", which base64 never holds, so the page's image cannot
# hold one by chance
CLASS = {"stu-1": "no_tau", "stu-2": "no_tau", "stu-3": "self_in_denominator", "stu-4": "one_way_mean",
         "stu-5": "blank", "stu-6": "correct", "stu-7": "correct"}
# question -> (full, partial, zero), {sentence: students}, students blank, points lost; with the release's points
WANT = {
    "q1_1_terms": ((3, 3, 1), {NO_TAU: ["stu-1", "stu-2"], SELF: ["stu-3"]}, ["stu-5"], 2.5),
    "q1_1_loss": ((3, 0, 4), {SELF: ["stu-3"]}, ["stu-5"], 4.0),  # no_tau's L_12 mixes tau in and out: unnamed
    "q1_2": ((6, 0, 1), {}, ["stu-5"], 1.0),
    "q1_3_anchor": ((6, 0, 1), {}, ["stu-5"], 2.0),
    # stu-4 took the sheet's one-way reading of Q1.3: full marks and an accepted reading, not a named mistake
    "q1_3_batch": ((6, 0, 1), {}, ["stu-5"], 1.0),
    "q1_4_visible": ((6, 0, 1), {}, ["stu-5"], 2.0),
    "q1_4_hidden": ((6, 0, 1), {}, ["stu-5"], 3.0),
}
BY_LOSS = ["q1_1_loss", "q1_4_hidden", "q1_1_terms", "q1_3_anchor", "q1_4_visible", "q1_2", "q1_3_batch"]


def _run(*args, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args, "--root", str(root)], cwd=root, env=G.env(),
                          capture_output=True, text=True, timeout=900)


def check_class(root: Path) -> None:
    """The report of the graded class ``CLASS`` has the counts of ``WANT``, in ``BY_LOSS`` order."""
    coursedir = status.course_directory(root)
    ps = report._sets(coursedir, [A1])[0][0]
    got = {q.gid: (q.distribution(), q.mistakes, q.flags["blank"], q.lost) for q in ps.questions}
    assert got == WANT
    assert all(not q.flags[f] for q in ps.questions for f in ("stopped", "review", "copied", "by hand"))
    assert [q.gid for q in ps.by_loss()] == BY_LOSS and ps.review == []
    accepted = {q.gid: q.accepted for q in ps.questions if q.accepted}
    assert accepted == {"q1_3_batch": {R.BATCH_READINGS["one_way"]: ["stu-4"]}}  # counted, and not as a mistake


def main(argv) -> int:
    """``python -m tests.test_class_report COURSE``: ``check_class`` on a course already graded (for mutations)."""
    check_class(Path(argv[0]).resolve())
    print("the class report has the known counts")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def test_an_accepted_reading_is_counted_apart_from_the_mistakes():
    q = report.Question("q1_3_batch", 1.0, True)
    report.add_grade(q, "ann", 1.0, False, _record(fraction=1.0, accepted=["the sheet's reading"]))
    report.add_grade(q, "ben", 0.0, False, _record(mistakes=[NO_TAU]))
    ps = report.ProblemSet("ps_x", "ps_x: 2 students, 2 submitted, 0 missing", [q], [])
    assert q.accepted == {"the sheet's reading": ["ann"]} and q.mistakes == {NO_TAU: ["ben"]}
    assert q.lost_by["mistake"] == 1.0 and q.lost == 1.0  # the accepted reading lost nothing
    shown = report.text(ps)
    assert "q1_3_batch: 1 x accepted as right: the sheet's reading" in shown and "ann" not in shown
    page = report.section(ps)
    assert "Other readings accepted as right" in page and "the sheet&#x27;s reading" in page and "ann" not in page
