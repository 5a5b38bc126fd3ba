"""Each student's problem: the numbers of her variant (``simclr_core.teaching.variants``) and their model answers.

The checks compare a submission with ``problem(assignment, student)``, where ``student`` is the id nbgrader grades
it under (its ``submitted/<student_id>/`` folder), never the id typed in the notebook. ``others`` lists the
variants a wrong value is also compared with (the typed id's, the other students'), so that the feedback can say
that a value is someone else's answer. ``model_answers`` is what ``python scripts/course.py variant`` prints.
"""

from __future__ import annotations

import math
from typing import Callable

from simclr_core.teaching.variants import ASSIGNMENTS, normalise_id, variant

from . import reference as R

VARIANT_ASSIGNMENTS = ASSIGNMENTS  # problem set 4 has no numbers to copy: its values come from functions


def problem(assignment: str, student: str) -> dict:
    """The parameters of ``assignment`` as posed to ``student`` (ValueError for an empty or malformed id)."""
    if assignment not in VARIANT_ASSIGNMENTS:
        return {"student": student, "others": []}
    v = variant(student)
    return {"student": v.student, "S": v.matrix(), "positives": list(v.positives), "tau": v.tau,
            "tau_low": v.tau, "tau_high": v.tau_high, "N_bound": v.N_bound, "others": []}


def other_variants(assignment: str, student: str, typed: str | None, roster) -> list[tuple[str, str, dict]]:
    """(student id, why, that student's problem) for the id typed in the notebook when it is not ``student``'s
    (``why`` tells her so), then for every other id of ``roster`` (``why`` None: the feedback must not reveal
    who is on the roster). Ids that are not valid student ids are skipped."""
    if assignment not in VARIANT_ASSIGNMENTS:
        return []
    me = normalise_id(student)
    out, seen = [], {me.casefold()}
    if typed is not None:
        try:
            typed = normalise_id(typed)
        except ValueError:
            typed = None
    if typed is not None and typed.casefold() not in seen:
        out.append((typed, f"it is the answer for the numbers of student id {typed!r}, the STUDENT_ID in this "
                           f"notebook, but the notebook is graded as {me!r}: type your own id and compute again",
                    problem(assignment, typed)))
        seen.add(typed.casefold())
    for sid in sorted(roster):
        try:
            sid = normalise_id(sid)
        except ValueError:
            continue
        if sid.casefold() not in seen:
            seen.add(sid.casefold())
            out.append((sid, None, problem(assignment, sid)))  # recorded for the instructor, never shown
    return out


def others(p: dict, answer: Callable[[dict], float]) -> list[tuple[str, str | None, float]]:
    """(student id, why, ``answer`` of that student's problem) for each variant of ``p["others"]``."""
    return [(sid, why, answer(q)) for sid, why, q in p.get("others", [])]


def model_answers(assignment: str, student: str) -> dict[str, object]:
    """The values each graded number of ``assignment`` must have for ``student`` (plain floats)."""
    if assignment not in VARIANT_ASSIGNMENTS:
        raise ValueError(f"{assignment!r} has no per-student numbers; variants exist for {list(VARIANT_ASSIGNMENTS)}")
    p = problem(assignment, student)
    S, pos = p["S"], p["positives"]
    if assignment == "ps1_similarity_matrix":
        tau = p["tau"]
        return {"numerator_12": R.numerator(S, 0, 1, tau), "denominator_12": R.denominator(S, 0, 1, tau),
                "L_12": R.anchor_loss(S, 0, 1, tau), "L_34": R.anchor_loss(S, 2, 3, tau),
                "anchor_losses(S, positives, tau)": R.anchor_losses(S, pos, tau),
                "L_batch": R.batch_loss(S, pos, tau),
                "L_batch, the sheet's one-way reading (also full marks)": R.batch_loss(S, pos, tau, combine="one_way")}
    if assignment == "ps2_temperature":
        lo, hi = p["tau_low"], p["tau_high"]
        return {"denominator_terms(S, 0, tau_low)": R.denominator_terms(S, 0, lo),
                "denominator_terms(S, 0, tau_high)": R.denominator_terms(S, 0, hi),
                "share_low": R.share(S, 0, 1, lo), "share_high": R.share(S, 0, 1, hi),
                "L_batch at tau_low (for 2.1(d))": R.batch_loss(S, pos, lo),
                "L_batch_high": R.batch_loss(S, pos, hi), "loss_limit": math.log(len(S) - 1)}
    n = p["N_bound"]
    return {"max_bound": math.log(2 * n - 1), "loss_N1": 0.0, "grad_norm_N1": 0.0}


def describe(student: str, assignments=VARIANT_ASSIGNMENTS) -> str:
    """A student's numbers and model answers, as ``python scripts/course.py variant`` prints them."""
    lines = []
    for a in assignments:
        if a not in VARIANT_ASSIGNMENTS:
            raise ValueError(f"unknown problem set {a!r}; variants exist for {list(VARIANT_ASSIGNMENTS)}")
        v = variant(student)
        lines += [f"== {a}", v.text(a)]
        if a in ("ps1_similarity_matrix", "ps2_temperature"):
            lines += [f"hard negative: s_{i + 1}{k + 1} = {v.S[i][k]:.2f} > s_{i + 1}{v.positives[i] + 1} = "
                      f"{v.S[i][v.positives[i]]:.2f} (anchor z{i + 1})" for i, k in v.hard_negatives()]
        lines.append("model answers:")
        for name, value in model_answers(a, student).items():
            shown = f"[{', '.join(f'{x:.6g}' for x in value)}]" if isinstance(value, list) else f"{value:.6g}"
            lines.append(f"  {name} = {shown}")
    return "\n".join(lines)
