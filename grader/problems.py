"""The numbers of each problem set that the checks compare against: the sheet's, for every student."""

from __future__ import annotations

PS_MATRIX = [
    [float("nan"), 0.80, 0.30, 0.10, 0.20, 0.05],
    [0.80, float("nan"), 0.25, 0.15, 0.10, 0.00],
    [0.30, 0.25, float("nan"), 0.70, 0.05, 0.20],
    [0.10, 0.15, 0.70, float("nan"), 0.35, 0.10],
    [0.20, 0.10, 0.05, 0.35, float("nan"), 0.85],
    [0.05, 0.00, 0.20, 0.10, 0.85, float("nan")],
]  # (2N, 2N) = (6, 6) of problem sets 1 and 2, NaN = "-" on the diagonal
ADJACENT = [1, 0, 3, 2, 5, 4]


def problem(assignment: str, student: str) -> dict:
    """The parameters of ``assignment`` as posed to ``student``."""
    return {"S": PS_MATRIX, "positives": ADJACENT, "tau": 0.2, "tau_low": 0.2, "tau_high": 1.0, "N_bound": 256}
