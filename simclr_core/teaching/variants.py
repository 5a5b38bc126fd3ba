"""Each student's own numbers for problem sets 1-3, derived from her student id.

Every student gets a different similarity matrix, temperatures and batch size, so a neighbour's numeric answers
are wrong for her. The map is deterministic and pure Python (SHA-256 of the id seeds ``random.Random``), so the
same id gives the same numbers in the student's kernel, in the grading sandbox and in the trusted checker, on
every machine. The worked notebooks (notebooks/01-03) keep the exercise sheet's own numbers (``sheet``).

In most matrices every anchor's positive is its most similar view, as on the sheet. One student in ``HARD_SHARE``
gets a *hard negative* instead: anchor z_3 is more similar to a negative than to its positive z_4, so her L_34
is above log 2 at any tau and the numbers show what a hard negative does to the loss.

    VARIANT = my_variant(STUDENT_ID)        # in a problem set: the typed id, else $SIMCLR_STUDENT_ID / $JUPYTERHUB_USER
    VARIANT.S, VARIANT.positives, VARIANT.tau, VARIANT.tau_high, VARIANT.N_bound
    print(VARIANT.text("ps1_similarity_matrix"))

Changing anything below changes every student's numbers: never do it while a course is running.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from dataclasses import dataclass
from functools import lru_cache

SALT = "simclr-workbook/variants/v1"
N_PAIRS = 3  # 2N = 6 embeddings, as on the sheet
POSITIVES = (1, 0, 3, 2, 5, 4)  # rows (2k, 2k + 1) are the two views of image k
POSITIVE_GRID = tuple(round(0.60 + 0.05 * k, 2) for k in range(6))  # 0.60 ... 0.85
NEGATIVE_GRID = tuple(round(-0.10 + 0.05 * k, 2) for k in range(11))  # -0.10 ... 0.40
TAUS = (0.1, 0.15, 0.2, 0.25, 0.3)  # problem set 1's tau, problem set 2's low temperature
TAUS_HIGH = (0.8, 1.0, 1.5, 2.0)  # problem set 2's high temperature
# problem set 3.2(a): a batch size, any multiple of 8 from 64 to 4096 (505 of them), so that a neighbour's max_bound
# = log(2N - 1) is right for almost no one else; neighbouring sizes' bounds differ by >= 2e-4 relative
N_BOUNDS = tuple(range(64, 4097, 8))
MIN_EIGENVALUE = 0.1  # well-conditioned: the Gram matrix (ones on the diagonal) has eigenvalues >= this
# One student in HARD_SHARE (chosen by a hash of her id, apart from the draw of her numbers, so that the others keep
# theirs) gets a hard negative: anchor z_3 (Q1.2's L_34) is more similar to z_5 or z_6 than to its positive z_4, by
# one of HARD_MARGINS. Not z_1: problem set 2 follows z_1's share across temperatures, and its model answer (the
# share falls as tau rises) holds only when z_1's positive is its most similar view.
HARD_SHARE = 3
HARD_ANCHOR = 2
HARD_NEGATIVES = (4, 5)
HARD_MARGINS = (0.05, 0.1, 0.15)
ENV_VARS = ("SIMCLR_STUDENT_ID", "JUPYTERHUB_USER")  # read, in this order, when no id is typed
MAX_ID_LENGTH = 100
ASSIGNMENTS = ("ps1_similarity_matrix", "ps2_temperature", "ps3_batch_size")
NO_ID = ('no student id: type yours in the cell above, STUDENT_ID = "your id" (exactly as your instructor '
         'registered it), and run it again · 没有学号:请在上面的单元格中填写 STUDENT_ID = "你的学号" '
         '后重新运行')


@dataclass(frozen=True)
class Variant:
    """One student's numbers. ``S`` is (2N, 2N) with NaN ("-") on the diagonal, 0-based like the code."""
    student: str
    S: tuple[tuple[float, ...], ...]
    positives: tuple[int, ...]
    tau: float
    tau_high: float
    N_bound: int

    def hard_negatives(self) -> list[tuple[int, int]]:
        """(anchor i, negative k) with s_ik > s_ij, j the anchor's positive: a negative harder than the positive."""
        n = len(self.S)
        return [(i, k) for i in range(n) for k in range(n)
                if k not in (i, self.positives[i]) and self.S[i][k] > self.S[i][self.positives[i]]]

    def matrix(self) -> list[list[float]]:
        """``S`` as nested lists (what ``torch.tensor`` and the checker take)."""
        return [list(row) for row in self.S]

    def text(self, assignment: str | None = None) -> str:
        """The numbers a problem set uses, as printed in the notebook (all of them when ``assignment`` is None)."""
        if assignment is not None and assignment not in ASSIGNMENTS:
            raise ValueError(f"unknown problem set {assignment!r}; variants exist for {list(ASSIGNMENTS)}")
        lines = [f"Your numbers · 你的题目数据 (student id {self.student!r}):"]
        if assignment in (None, "ps1_similarity_matrix", "ps2_temperature"):
            n = len(self.S)
            lines.append("S = " + " ".join(f"{'z' + str(k + 1):>5}" for k in range(n)))
            for i, row in enumerate(self.S):
                cells = ("-" if i == k else f"{x:.2f}" for k, x in enumerate(row))
                lines.append(f"{'z' + str(i + 1):>3} " + " ".join(f"{c:>5}" for c in cells))
            lines.append("positive pairs · 正样本对: (z1, z2), (z3, z4), (z5, z6)")
        if assignment in (None, "ps1_similarity_matrix"):
            lines.append(f"tau = {self.tau:g}")
        if assignment in (None, "ps2_temperature"):
            lines.append(f"tau_low = {self.tau:g}, tau_high = {self.tau_high:g}")
        if assignment in (None, "ps3_batch_size"):
            lines.append(f"N_bound = {self.N_bound}")
        return "\n".join(lines)


def normalise_id(student: object) -> str:
    """The id without surrounding spaces; ValueError for a non-string, an empty or an overlong id."""
    if not isinstance(student, str):
        raise ValueError(f'a student id is a string, e.g. STUDENT_ID = "alice"; got {type(student).__name__}')
    sid = student.strip()
    if not sid:
        raise ValueError(NO_ID)
    if len(sid) > MAX_ID_LENGTH or not sid.isprintable():
        raise ValueError(f"a student id has at most {MAX_ID_LENGTH} printable characters; got {sid[:40]!r}")
    return sid


def _pick(rng: random.Random, grid: tuple):
    return grid[min(int(rng.random() * len(grid)), len(grid) - 1)]


def eigenvalues(sym: list[list[float]]) -> list[float]:
    """The eigenvalues of a small symmetric matrix, ascending (cyclic Jacobi rotations, pure Python)."""
    a = [list(map(float, row)) for row in sym]
    n = len(a)
    for _ in range(100):
        if sum(a[i][k] ** 2 for i in range(n) for k in range(n) if i != k) < 1e-24:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                if a[p][q] == 0.0:
                    continue
                theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q])
                t = math.copysign(1.0, theta) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(n):  # A <- A J, then A <- J^T A: a[p][q] becomes 0
                    a[k][p], a[k][q] = c * a[k][p] - s * a[k][q], s * a[k][p] + c * a[k][q]
                for k in range(n):
                    a[p][k], a[q][k] = c * a[p][k] - s * a[q][k], s * a[p][k] + c * a[q][k]
    return sorted(a[i][i] for i in range(n))


def _plant_hard_negative(rng: random.Random, m: list[list[float]]) -> bool:
    """Make one negative k of anchor ``HARD_ANCHOR`` more similar than its positive, by a margin of the grid; False
    when the anchor, its positive and k, or k, its positive and the anchor, cannot be well-conditioned (a cheap
    early rejection: a principal submatrix's smallest eigenvalue bounds the whole matrix's from above)."""
    i = HARD_ANCHOR
    k = _pick(rng, HARD_NEGATIVES)
    m[i][k] = m[k][i] = round(m[i][POSITIVES[i]] + _pick(rng, HARD_MARGINS), 2)
    for rows in ((i, POSITIVES[i], k), (i, k, POSITIVES[k])):
        sub = [[1.0 if a == b else m[a][b] for b in rows] for a in rows]
        if eigenvalues(sub)[0] < MIN_EIGENVALUE:
            return False
    return True


def _matrix(rng: random.Random, hard: bool = False) -> list[list[float]]:
    n = 2 * N_PAIRS
    while True:  # rejection sampling: about eight draws on average (more with a hard negative)
        m = [[math.nan] * n for _ in range(n)]
        for i in range(n):
            for k in range(i + 1, n):
                m[i][k] = m[k][i] = _pick(rng, POSITIVE_GRID if POSITIVES[i] == k else NEGATIVE_GRID)
        if hard and not _plant_hard_negative(rng, m):
            continue
        gram = [[1.0 if i == k else m[i][k] for k in range(n)] for i in range(n)]
        if eigenvalues(gram)[0] >= MIN_EIGENVALUE:
            return m


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def has_hard_negative(student: str) -> bool:
    """Whether ``student``'s matrix has a hard negative: a hash of the id, independent of her other numbers."""
    return _seed(f"{SALT}:hard-negative:{normalise_id(student).casefold()}") % HARD_SHARE == 0


@lru_cache(maxsize=4096)
def _variant(key: str, shown: str) -> Variant:
    rng = random.Random(_seed(f"{SALT}:{key}"))
    m = _matrix(rng, hard=has_hard_negative(key))
    return Variant(student=shown, S=tuple(tuple(r) for r in m), positives=POSITIVES, tau=_pick(rng, TAUS),
                   tau_high=_pick(rng, TAUS_HIGH), N_bound=_pick(rng, N_BOUNDS))


def variant(student: str) -> Variant:
    """The numbers of ``student``. Surrounding spaces and letter case do not matter ("Alice " is "alice")."""
    sid = normalise_id(student)
    return _variant(sid.casefold(), sid)


def same_student(a: str, b: str) -> bool:
    """Whether two ids give the same variant."""
    return normalise_id(a).casefold() == normalise_id(b).casefold()


def student_id(typed: object = None, environ: dict | None = None) -> str:
    """The id a notebook's numbers come from: the typed ``STUDENT_ID``, else the first of ``ENV_VARS`` that is set
    (the grading sandbox sets SIMCLR_STUDENT_ID to the id it grades; JupyterHub sets JUPYTERHUB_USER)."""
    if typed is not None and not (isinstance(typed, str) and not typed.strip()):
        return normalise_id(typed)
    env = os.environ if environ is None else environ
    for name in ENV_VARS:
        if env.get(name, "").strip():
            return normalise_id(env[name])
    raise ValueError(NO_ID)


def my_variant(typed: object = None, environ: dict | None = None) -> Variant:
    """The variant of this notebook's student (see ``student_id``); ValueError with what to do when there is none."""
    return variant(student_id(typed, environ))
