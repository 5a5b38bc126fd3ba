"""Checks of problem sets 1 and 2 (the similarity matrix, InfoNCE, the temperature).

Each check takes the values a graded cell reported and the student's problem (``grader.problems``: her variant's
numbers) and returns a Verdict. Reference values are computed here, in the nbgrader process, and never shown: the
messages name the quantity, the student's own value and, when it matches one, the mistake that produces it on her
numbers. A value that is another student's answer is recorded in the verdict for the instructor only.
"""

from __future__ import annotations

import math

from grader_probe import inputs as I

from . import reference as R
from .problems import others
from .verdict import Missing, Verdict, cases, scalar, show, value

HINT_LOSS = "check the formula above: -log(exp(s_ij/tau) / sum over k != i of exp(s_ik/tau))"


def _yours(hint: str, p) -> str:
    return f"{hint} (on your numbers, student id {p['student']!r})"


# ------------------------------------------------------------------------------------------- problem set 1
def q1_1_terms(values, p) -> Verdict:
    v = Verdict()
    S, tau = p["S"], p["tau"]
    scalar(v, values, "numerator_12", {None: R.numerator(S, 0, 1, tau),
                                      R.MISTAKES["no_tau"]: R.numerator(S, 0, 1, tau, "no_tau")},
           _yours("the numerator is exp(s_12 / tau)", p))  # exp(s_12 / tau) takes few values: not compared with others
    scalar(v, values, "denominator_12", R.denominator_candidates(S, 0, 1, tau),
           _yours("the denominator is the sum of exp(s_1k / tau) over k != 1", p),
           others=others(p, lambda q: R.denominator(q["S"], 0, 1, q["tau"])))
    return v


def q1_1_loss(values, p) -> Verdict:
    v = Verdict()
    scalar(v, values, "L_12", R.loss_candidates(p["S"], 0, 1, p["tau"]), _yours(HINT_LOSS, p),
           others=others(p, lambda q: R.anchor_loss(q["S"], 0, 1, q["tau"])))
    return v


def q1_2(values, p) -> Verdict:
    v = Verdict()
    cands = R.loss_candidates(p["S"], 2, 3, p["tau"])
    cands["it is L_12 (anchor z_1), not L_34 (anchor z_3)"] = R.anchor_loss(p["S"], 0, 1, p["tau"])
    scalar(v, values, "L_34", cands, _yours(HINT_LOSS, p),
           others=others(p, lambda q: R.anchor_loss(q["S"], 2, 3, q["tau"])))
    return v


def _anchor_candidates(k):
    n, pairing, tau, seed = I.ANCHOR_CASES[k]
    S, pos = I.anchor_case(n, pairing, seed)
    cands = {None: R.anchor_losses(S, pos, tau)}
    cands.update({why: R.anchor_losses(S, pos, tau, m) for m, why in R.MISTAKES.items()})
    other = I.adjacent(n) if pairing == "halves" else I.halves(n)
    if other != pos:
        cands["it ignores the `positives` argument (a fixed pairing instead of positives[i])"] = \
            R.anchor_losses(S, other, tau)
    return cands


def q1_3_anchor(values, p) -> Verdict:
    v = Verdict()
    cases(v, values, "anchor_losses", [_anchor_candidates(k) for k in range(len(I.ANCHOR_CASES))],
          HINT_LOSS, rel=1e-6, abs_tol=1e-12)
    return v


def _batch_loss_check(values, p, name: str, tau: str, what: str) -> Verdict:
    """The batch loss ``name`` at the temperature ``p[tau]``, with its named mistakes and other students' answers."""
    v = Verdict()
    scalar(v, values, name, R.batch_candidates(p["S"], p["positives"], p[tau]), _yours(what, p),
           others=others(p, lambda q: R.batch_loss(q["S"], q["positives"], q[tau])))
    return v


SHEET_READINGS = ("one_way",)  # Q1.3 as the sheet poses it: "combine the losses of the 3 positive pairs"


def _sheet_readings(S, positives, tau) -> list[tuple[str, float, str]]:
    """(sentence, value, feedback) of each reading of Q1.3 the sheet allows besides SimCLR's 2N-anchor mean; the
    feedback gives the 2N-anchor value, so that a student who read the sheet's hint learns the paper's convention."""
    simclr = R.batch_loss(S, positives, tau)
    return [(why, x, f"{why}. SimCLR's batch loss averages over all 2N = {len(S)} anchors, both (i, j) and (j, i) "
                     f"(Chen et al. 2020, Algorithm 1), so that each pair's loss counts from both of its views: on "
                     f"your numbers that mean is {show(simclr)}")
            for why, x in R.batch_readings(S, positives, tau, SHEET_READINGS).items()]


def q1_3_batch(values, p) -> Verdict:
    """The batch loss of Q1.3: SimCLR's mean over the 2N anchors, or the sheet's mean over the N pairs taken one
    way (full marks: the sheet asks to combine "the losses of the 3 positive pairs" and its hint averages them)."""
    v = Verdict()
    S, pos, tau = p["S"], p["positives"], p["tau"]
    theirs = others(p, lambda q: R.batch_loss(q["S"], q["positives"], q["tau"])) + others(
        p, lambda q: R.batch_loss(q["S"], q["positives"], q["tau"], combine="one_way"))
    scalar(v, values, "L_batch", R.batch_candidates(S, pos, tau, SHEET_READINGS),
           _yours("the batch loss is the mean of the per-anchor losses", p), others=theirs,
           accepted=_sheet_readings(S, pos, tau))
    return v


def nt_loss(a, b, tau, mistake=None):
    """NT-Xent of (a, b) as a float64 tensor (differentiable), or one named mistake of it; the checker's own
    implementation, so that a reference never depends on the library the students use."""
    import torch
    import torch.nn.functional as F

    N = a.shape[0]
    z = torch.cat([a, b]).double()
    if mistake != "no_normalise":
        z = F.normalize(z, dim=1)
    t = 1.0 if mistake == "no_tau" else tau
    logits = z @ z.T / t
    if mistake != "self":
        logits = logits.masked_fill(torch.eye(2 * N, dtype=torch.bool), float("-inf"))
    labels = torch.cat([torch.arange(N, 2 * N), torch.arange(N)])
    if mistake == "adjacent":
        labels = torch.arange(2 * N) ^ 1
    return F.cross_entropy(logits, labels, reduction="sum" if mistake == "sum" else "mean")


def _nt_reference(a, b, tau, mistake=None) -> float:
    return float(nt_loss(a, b, tau, mistake).detach())


NT_MISTAKES = {
    "self": "the diagonal is not masked, so k = i (self-similarity) stays in the denominator",
    "no_normalise": "the rows are not L2-normalised, so the logits are dot products, not cosine similarities",
    "no_tau": "the logits are not divided by tau",
    "adjacent": "row k is paired with row k ^ 1 (adjacent rows); with rows [z1, z2] row k pairs with row k + N",
    "sum": "it returns the sum over the 2N anchors, not the mean",
}


def _nt_candidates(k):
    N, D, tau, seed = I.NT_XENT_CASES[k]
    a, b = I.nt_xent_inputs(N, D, seed)
    cands = {None: _nt_reference(a, b, tau)}
    for m, why in NT_MISTAKES.items():
        if m == "adjacent" and N == 1:
            continue  # with one pair, adjacent and halves pairings coincide
        cands[why] = _nt_reference(a, b, tau, m)
    return cands


def _nt_rows(values):
    rows = value(values, "nt_xent_vectorised")
    if not isinstance(rows, list) or len(rows) != len(I.NT_XENT_CASES) or not all(isinstance(r, dict) for r in rows):
        raise Missing("nt_xent_vectorised did not report one result per test input")
    return rows


def _nt_values(v, values, first: int):
    try:
        rows = _nt_rows(values)
    except Missing as e:
        v.add(False, str(e))
        return None
    losses = {"nt_xent_vectorised": {"v": [float(r["loss"]).hex() for r in rows[:first]]}}
    cases(v, losses, "nt_xent_vectorised", [_nt_candidates(k) for k in range(first)],
          "compare with the steps above", rel=1e-5, abs_tol=1e-6)
    return rows


def q1_4_visible(values, p) -> Verdict:
    v = Verdict()
    rows = _nt_values(v, values, first=2)
    if rows is not None:
        shapes = [r.get("shape") for r in rows]
        v.add(all(s == [] for s in shapes), "returns a 0-d (scalar) tensor"
              + ("" if all(s == [] for s in shapes) else f"; got shapes {shapes[:2]}"), weight=0.5)
    return v


def q1_4_hidden(values, p) -> Verdict:
    import torch

    v = Verdict()
    rows = _nt_values(v, values, first=len(I.NT_XENT_CASES))
    if rows is None:
        return v
    bad = []
    for (N, D, tau, seed), r in zip(I.NT_XENT_CASES, rows):
        a, b = (x.double().requires_grad_(True) for x in I.nt_xent_inputs(N, D, seed))
        ga, gb = torch.autograd.grad(nt_loss(a, b, tau), (a, b))
        want = torch.cat([ga.flatten(), gb.flatten()]).double().tolist()
        got = r.get("grad")
        if not isinstance(got, list) or not R.all_close([float(g) for g in got], want, rel=1e-4, abs_tol=1e-6):
            bad.append(str(len(bad) + 1))
    v.add(not bad, "its gradients match NT-Xent's" + (f"; they do not on {len(bad)} of the "
                                                      f"{len(I.NT_XENT_CASES)} test inputs" if bad else ""))
    kept = all(r.get("unchanged") == 1 for r in rows)
    v.add(kept, "leaves its inputs unchanged" if kept else "it modifies its inputs z1 / z2 in place", weight=0.5)
    return v


# ------------------------------------------------------------------------------------------- problem set 2
def q2_1_terms(values, p) -> Verdict:
    v = Verdict()
    S = I.symmetric_matrix(6, 21)
    grid = [(i, t) for t in I.TERMS_TAUS for i in range(6)]
    wants = [{None: R.denominator_terms(S, i, t), R.MISTAKES["no_tau"]: R.denominator_terms(S, i, t, "no_tau"),
              R.MISTAKES["self"]: R.denominator_terms(S, i, t, "self")} for i, t in grid]
    cases(v, values, "denominator_terms", wants, "the terms are exp(s_ik / tau) for every k != i, in order", rel=1e-6)
    return v


def _share_candidates(S, i, j, tau):
    return {None: R.share(S, i, j, tau),
            **{why: R.share(S, i, j, tau, m) for m, why in R.MISTAKES.items() if m != "log10"},
            "it is the loss -log(share), not the share itself": R.anchor_loss(S, i, j, tau)}


def q2_1_share(values, p) -> Verdict:
    v = Verdict()
    S = p["S"]
    for name, t in (("share_low", "tau_low"), ("share_high", "tau_high")):
        scalar(v, values, name, _share_candidates(S, 0, 1, p[t]), _yours(f"share = exp(s_12/{t}) / denominator", p),
               others=others(p, lambda q: R.share(q["S"], 0, 1, q[t])))
    M = I.symmetric_matrix(6, 21)
    cases(v, values, "positive_share", [_share_candidates(M, i, i ^ 1, I.SHARE_TAU) for i in range(6)],
          "share = exp(s_ij/tau) / sum over k != i of exp(s_ik/tau)", rel=1e-6)
    return v


def q2_1_loss(values, p) -> Verdict:
    return _batch_loss_check(values, p, "L_batch_high", "tau_high",
                             "the batch loss at tau_high is the mean of the 2N per-anchor losses")


def q2_2_ratio(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: math.exp((sp - sn) / t), "the gap is not divided by tau": math.exp(sp - sn),
              "it is the inverse ratio, negative over positive": math.exp((sn - sp) / t)}
             for sp, sn, t in I.RATIO_CASES]
    cases(v, values, "ratio", wants, "ratio = exp((s_pos - s_neg) / tau)", rel=1e-9)
    return v


def q2_2_limit(values, p) -> Verdict:
    v = Verdict()
    n = len(p["S"])
    scalar(v, values, "loss_limit", {
        None: math.log(n - 1),
        R.MISTAKES["log10"]: math.log10(n - 1),
        f"log(2N) counts k = i among the candidates; there are 2N - 1 = {n - 1}": math.log(n),
        f"log(2N - 2) counts only the negatives; the positive is a candidate too (2N - 1 = {n - 1})": math.log(n - 2),
        "as tau -> infinity every candidate gets the same share, so the loss does not go to 0": 0.0,
    }, "as tau -> infinity all 2N - 1 candidates become equally likely")
    return v


CHECKS = {f.__name__: f for f in (q1_1_terms, q1_1_loss, q1_2, q1_3_anchor, q1_3_batch, q1_4_visible, q1_4_hidden,
                                  q2_1_terms, q2_1_share, q2_1_loss, q2_2_ratio, q2_2_limit)}
