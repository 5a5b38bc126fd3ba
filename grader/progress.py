"""What ``make grade`` prints while it grades: one line per submission as it finishes, a progress bar with the time
left (on stderr, when it is a terminal), and at the end the count of each outcome and the slowest submissions."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

from .status import Row, fmt_number

SLOWEST = 5


def outcome(row: Row) -> str:
    """The kind of a status for the counts: "graded", "needs manual grading", "needs review" (whatever the
    reason), or the status itself."""
    if row.needs_review:
        return "needs review"
    if row.manual_cells:
        return "needs manual grading"
    return row.status


def _score(row: Row) -> str:
    return f"{fmt_number(row.score)} / {fmt_number(row.max_score)}"


@dataclass
class Progress:
    """Counts what finished; ``finished`` prints its line, ``summary`` the totals of the run."""
    total: int
    width: int = 12
    rows: list[tuple[Row, float]] = field(default_factory=list)
    bar: tqdm | None = None

    def __post_init__(self):
        if self.total:
            self.bar = tqdm(total=self.total, unit="submission", file=sys.stderr, disable=None, smoothing=0.1,
                            dynamic_ncols=True)

    def finished(self, row: Row, seconds: float) -> None:
        self.rows.append((row, seconds))
        status = "; ".join([row.status, *row.notes[:1]])
        line = (f"[{len(self.rows):>{len(str(self.total))}}/{self.total}] {row.student:<{self.width}}  "
                f"{row.assignment}  {_score(row):>11}  {seconds:6.1f} s  {status}")
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def summary(self, wall: float) -> str:
        """The run in a few lines: submissions per minute, the count per outcome, the slowest submissions."""
        self.close()
        if not self.rows:
            return "graded 0 submissions: nothing new or changed"
        n = len(self.rows)
        counts = Counter(outcome(r) for r, _ in self.rows)
        lines = [f"graded {n} submission{'s' if n != 1 else ''} in {wall:.0f} s ({60 * n / max(wall, 1e-9):.1f} "
                 f"per minute): " + ", ".join(f"{c} {k}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1]))]
        slow = sorted(self.rows, key=lambda rs: -rs[1])[:SLOWEST]
        lines.append("slowest: " + ", ".join(f"{r.student} {r.assignment} {s:.0f} s" for r, s in slow))
        return "\n".join(lines)
