"""The class report: per problem set and question, how the class did and which mistakes it made.

    python -m grader.report PS [PS...] [--names] [--root COURSE] [--html FILE]

For each question (graded cell): the score distribution (full, partial, zero marks), how many students made each
named mistake (its sentence, as the feedback states it), left the answer blank, were stopped (a time or sandbox
limit, or a cell that ended its process), need review or handed in another student's numbers; then the questions
ordered by the points the class lost on them, with a bar chart of those points split by cause. The counts come
from the gradebook (scores, cells waiting for a manual grade), from the record ``grader.judge`` writes per graded
cell (``clean_meta``'s "verdicts") and from ``grader.status`` (who needs review); no text of a submission and no
display text is read. Student ids appear only with ``--names``, so that the page can go on a projector.

The page (``grading/reports/<PS>.html``, ``<PS>-names.html`` with ``--names``, unless ``--html``) is self-contained, escapes every string and allows no
script (its Content-Security-Policy).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from . import status, status_meta
from .guards import write_atomic

# why points were lost, in the order a loss is attributed to one of them (the chart's bars add up to the loss)
CAUSES = {"blank": "left blank", "stopped": "stopped (limit or crash)", "review": "needs review",
          "mistake": "a named mistake", "copied": "another student's numbers", "other": "other wrong answers"}
COLOURS = {"blank": "#9e9e9e", "stopped": "#8e44ad", "review": "#e67e22", "mistake": "#c0392b",
           "copied": "#2980b9", "other": "#f1c40f"}
FLAGS = ("blank", "stopped", "review", "copied", "by hand")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = ("body{font:18px/1.4 sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:right}td.t,th.t{text-align:left}"
         "img{max-width:100%}")


@dataclass
class Question:
    gid: str
    points: float
    auto: bool  # scored by the trusted checks (a code cell), not by hand
    scores: list[float] = field(default_factory=list)
    mistakes: dict[str, list[str]] = field(default_factory=dict)  # sentence -> students
    accepted: dict[str, list[str]] = field(default_factory=dict)  # another reading accepted as right -> students
    flags: dict[str, list[str]] = field(default_factory=lambda: {f: [] for f in FLAGS})  # flag -> students
    lost_by: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))

    @property
    def lost(self) -> float:
        return sum(self.lost_by.values())

    def distribution(self) -> tuple[int, int, int]:
        """Students with full, partial and zero marks."""
        full = sum(s >= self.points - 1e-9 for s in self.scores)
        zero = sum(s <= 1e-9 for s in self.scores)
        return full, len(self.scores) - full - zero, zero


@dataclass
class ProblemSet:
    assignment: str
    headline: str
    questions: list[Question]
    review: list[str]  # students whose submission needs review (grader.status)

    def by_loss(self) -> list[Question]:
        return sorted((q for q in self.questions if q.lost > 0), key=lambda q: (-q.lost, q.gid))


def cause(record: dict) -> str:
    """The one cause a lost point is put down to (the first of ``CAUSES`` the cell's record shows)."""
    for c in ("blank", "stopped", "review"):
        if record.get(c):
            return c
    if record.get("mistakes"):
        return "mistake"
    return "copied" if record.get("copied") else "other"


def add_grade(q: Question, student: str, score: float, pending: bool, record: dict | None) -> None:
    """Count one student's grade of ``q``: ``pending`` when it waits for a manual grade, ``record`` the cell's
    verdict record (None when there is none)."""
    if pending:
        q.flags["review" if q.auto else "by hand"].append(student)
        return
    record = record or {}
    q.scores.append(score)
    for why in record.get("mistakes", []):
        q.mistakes.setdefault(why, []).append(student)
    for why in record.get("accepted", []):
        q.accepted.setdefault(why, []).append(student)
    for flag in FLAGS:
        if record.get(flag):
            q.flags[flag].append(student)
    if score < q.points:
        q.lost_by[cause(record)] += q.points - score


def _order(coursedir, assignment: str) -> list[str]:
    """Grade ids in the order of the problem set's source notebooks."""
    folder = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    ids = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            cells = nbformat.read(path, as_version=4).cells
        except Exception:  # noqa: BLE001 (no order from an unreadable source: the names' order)
            continue
        ids += [c.metadata.get("nbgrader", {}).get("grade_id") for c in cells]
    return [i for i in ids if isinstance(i, str)]


def collect(gb: Gradebook, coursedir, assignment: str) -> ProblemSet:
    """The counts of one problem set (MissingEntry when the gradebook does not know it)."""
    a = gb.find_assignment(assignment)
    order = _order(coursedir, assignment)
    cells = sorted((c for nb in a.notebooks for c in nb.grade_cells),
                   key=lambda c: (order.index(c.name) if c.name in order else len(order), c.name))
    qs = {c.name: Question(c.name, float(c.max_score), c.cell_type == "code") for c in cells}
    for sub in sorted(a.submissions, key=lambda s: s.student.id):
        for nb in sub.notebooks:
            folder = coursedir.format_path(coursedir.autograded_directory, sub.student.id, assignment)
            meta = status_meta.read_meta(Path(folder) / f"{nb.name}.ipynb") or {}
            for g in nb.grades:
                if g.name in qs:
                    add_grade(qs[g.name], sub.student.id, float(g.score or 0.0), bool(g.needs_manual_grade),
                              meta.get("verdicts", {}).get(g.name))
    rs = status.rows(gb, coursedir, assignment)
    return ProblemSet(assignment, status.headline(assignment, rs), list(qs.values()),
                      [r.student for r in rs if r.needs_review])


def _who(students: list[str], names: bool) -> str:
    return f" ({', '.join(sorted(students))})" if names and students else ""


def _counts(q: Question) -> list[str]:
    full, partial, zero = q.distribution()
    return [q.gid, f"{q.points:g}", str(full), str(partial), str(zero),
            *(str(len(q.flags[f])) for f in FLAGS), f"{q.lost:g}"]


HEAD = ["question", "points", "full", "partial", "zero", *FLAGS, "points lost"]


def _loss_line(q: Question) -> str:
    parts = [f"{CAUSES[c]} {v:g}" for c, v in q.lost_by.items() if v > 0]
    return f"{q.gid}: {q.lost:g} point{'' if q.lost == 1 else 's'} lost ({', '.join(parts)})"


def text(ps: ProblemSet, names: bool = False) -> str:
    """The report of one problem set as plain text."""
    rows = [HEAD] + [_counts(q) for q in ps.questions]
    width = [max(len(r[k]) for r in rows) for k in range(len(HEAD))]
    out = [ps.headline, ""] + ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in
                                         enumerate(zip(r, width))) for r in rows]
    for q in ps.questions:
        for why, who in sorted(q.mistakes.items(), key=lambda m: (-len(m[1]), m[0])):
            out.append(f"{q.gid}: {len(who)} x {why}{_who(who, names)}")
        for why, who in sorted(q.accepted.items(), key=lambda m: (-len(m[1]), m[0])):
            out.append(f"{q.gid}: {len(who)} x accepted as right: {why}{_who(who, names)}")
        for f in FLAGS:
            if names and q.flags[f]:
                out.append(f"{q.gid}: {f}{_who(q.flags[f], True)}")
    out += ["", "questions by points lost:"] + [f"  {_loss_line(q)}" for q in ps.by_loss()]
    if names and ps.review:
        out.append(f"needs review: {', '.join(ps.review)}")
    return "\n".join(out)


def chart(ps: ProblemSet) -> str | None:
    """A horizontal bar per question (most points lost on top), split by cause, as a data: URL of an SVG image;
    None when no point was lost. The Figure API only: no pyplot state."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    qs = ps.by_loss()[::-1]
    if not qs:
        return None
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "class-report", "font.size": 12}):
        fig = Figure(figsize=(8, 2.0 + 0.45 * len(qs)), layout="constrained")
        ax = fig.add_subplot()
        left = [0.0] * len(qs)
        for c, label in CAUSES.items():
            widths = [q.lost_by[c] for q in qs]
            if any(widths):
                ax.barh([q.gid for q in qs], widths, left=left, label=label, color=COLOURS[c])
                left = [a + b for a, b in zip(left, widths)]
        ax.set_xlabel("points lost, summed over the class")
        ax.set_title(f"{ps.assignment}: points lost per question")
        fig.legend(loc="outside lower center", ncols=3, fontsize=10)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode()).decode()


def _table(head: list[str], rows: list[list[str]], words: tuple = ("question",)) -> str:
    """A table whose columns named in ``words`` hold text (left-aligned), the others numbers."""
    def row(cells, tag):
        return "<tr>" + "".join(f"<{tag}{' class=t' if h in words else ''}>{html.escape(c)}</{tag}>"
                                for h, c in zip(head, cells)) + "</tr>"
    return "<table>" + row(head, "th") + "".join(row(r, "td") for r in rows) + "</table>"


def section(ps: ProblemSet, names: bool = False) -> str:
    """One problem set's part of the page; every string escaped."""
    e = html.escape
    out = [f"<h2>{e(ps.assignment)}</h2>", f"<p>{e(ps.headline)}</p>",
           _table(HEAD, [_counts(q) for q in ps.questions])]
    for title, kind, what in (("Named mistakes", "mistakes", "mistake"),
                              ("Other readings accepted as right", "accepted", "reading")):
        rows = [[q.gid, str(len(who)), why] + ([", ".join(sorted(who))] if names else [])
                for q in ps.questions for why, who in sorted(getattr(q, kind).items(), key=lambda m: (-len(m[1]), m[0]))]
        head = ["question", "students", what] + (["who"] if names else [])
        if rows or kind == "mistakes":
            out.append(f"<h3>{title}</h3>" + (_table(head, rows, ("question", what, "who")) if rows else "<p>none</p>"))
    url = chart(ps)
    out.append("<h3>Questions by points lost</h3>")
    out.append(f'<img alt="points lost per question, by cause" src="{e(url)}">' if url else "<p>no point lost</p>")
    out.append("<ol>" + "".join(f"<li>{e(_loss_line(q))}</li>" for q in ps.by_loss()) + "</ol>")
    if names:
        flagged = [[q.gid, f, ", ".join(sorted(q.flags[f]))] for q in ps.questions for f in FLAGS if q.flags[f]]
        out.append(_table(["question", "flag", "who"], flagged, ("question", "flag", "who")) if flagged else "")
        out.append(f"<p>needs review: {e(', '.join(ps.review) or 'no one')}</p>")
    return "\n".join(out)


def page(sets: list[ProblemSet], names: bool = False) -> str:
    title = html.escape("class report: " + ", ".join(ps.assignment for ps in sets))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>\n"
            + "\n".join(section(ps, names) for ps in sets) + "\n</body></html>\n")


def _sets(coursedir, assignments: list[str]) -> tuple[list[ProblemSet], list[str]]:
    """The problem sets the gradebook knows, and the names it does not."""
    found, unknown = [], []
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for a in assignments:
            try:
                found.append(collect(gb, coursedir, a))
            except MissingEntry:
                unknown.append(a)
    return found, unknown


def write_reports(root: Path, assignments: list[str]) -> list[Path]:
    """grading/reports/<PS>.html without student names for each problem set the gradebook knows (for the summary
    of ``make grade``); returns the pages written."""
    coursedir = status.course_directory(Path(root).resolve())
    folder = status.grading_dir(coursedir) / "reports"
    return [write_atomic(folder / f"{ps.assignment}.html", page([ps])) for ps in _sets(coursedir, assignments)[0]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grader.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("assignments", nargs="+", help="problem sets, e.g. ps1_similarity_matrix")
    ap.add_argument("--names", action="store_true", help="name the students (not for a projector)")
    ap.add_argument("--root", default=".", help="the course root (the folder of nbgrader_config.py)")
    ap.add_argument("--html", help="one page with every problem set (default: grading/reports/<PS>.html each, "
                                   "<PS>-names.html with --names)")
    args = ap.parse_args(argv)
    coursedir = status.course_directory(Path(args.root).resolve())
    sets, unknown = _sets(coursedir, args.assignments)
    for a in unknown:
        print(f"{a}: the gradebook has no such problem set (grade it first: make grade PS={a})", file=sys.stderr)
    for i, ps in enumerate(sets):
        print(("\n" if i else "") + text(ps, args.names))
    if args.html:
        pages = [write_atomic(Path(args.html), page(sets, args.names))] if sets else []
    else:
        folder, tail = status.grading_dir(coursedir) / "reports", "-names" if args.names else ""
        pages = [write_atomic(folder / f"{ps.assignment}{tail}.html", page([ps], args.names)) for ps in sets]
    for p in pages:
        print(f"class report: {p}")
    return 2 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
