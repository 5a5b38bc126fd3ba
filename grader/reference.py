"""Reference answers and the common wrong answers, in plain Python float arithmetic.

Every function takes the similarity matrix as nested lists (NaN on the diagonal) and returns floats, so that the
checker depends on nothing a submission could have touched. ``MISTAKES`` names each wrong way of computing a
per-anchor loss; ``BATCH_MISTAKES`` the wrong ways of combining them. The feedback quotes these descriptions.
"""

from __future__ import annotations

import math

SELF_SIMILARITY = 1.0  # cosine similarity of a unit vector with itself: what "k = i" adds to a denominator

MISTAKES = {
    "self": "the denominator includes k = i, the self-similarity exp(1/tau) (the sum runs over k != i only)",
    "no_tau": "the similarities are not divided by the temperature tau",
    "negatives_only": "the denominator holds only the negatives; it must include the positive's own term "
                      "(all k != i)",
    "log10": "it uses log base 10; the loss uses the natural logarithm (math.log)",
}
BATCH_MISTAKES = {
    "one_way": "it is the mean over the N pairs taken one way (L_12, L_34, ...); SimCLR averages over all 2N "
               "anchors, both (i, j) and (j, i)",
    "sum": "it is the sum over the 2N anchors; the batch loss is their mean",
}
# Other legitimate readings of a question that asks for "the" batch loss without saying over which anchors: the
# exercise sheet's Q1.3 ("combine the losses of the 3 positive pairs"; hint: "each positive pair (i, j) yields a
# loss L_ij, and typically we average them over the batch") reads as the mean over the N pairs, one way.
BATCH_READINGS = {
    "one_way": "the exercise sheet's reading, the mean over the N pairs taken one way (L_12, L_34, ...)",
}


def numerator(S, i: int, j: int, tau: float, mistake: str | None = None) -> float:
    t = 1.0 if mistake == "no_tau" else tau
    return math.exp(S[i][j] / t)


def denominator(S, i: int, j: int, tau: float, mistake: str | None = None) -> float:
    t = 1.0 if mistake == "no_tau" else tau
    skip = {i, j} if mistake == "negatives_only" else {i}
    total = sum(math.exp(S[i][k] / t) for k in range(len(S)) if k not in skip)
    if mistake == "self":
        total += math.exp(SELF_SIMILARITY / t)
    return total


def anchor_loss(S, i: int, j: int, tau: float, mistake: str | None = None) -> float:
    """-log(exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)), or one of ``MISTAKES``."""
    den = denominator(S, i, j, tau, mistake)
    if den == 0.0:  # a negatives-only denominator of a batch with no negatives
        return math.inf
    ratio = numerator(S, i, j, tau, mistake) / den
    return -math.log10(ratio) if mistake == "log10" else -math.log(ratio)


def denominator_terms(S, i: int, tau: float, mistake: str | None = None) -> list[float]:
    """The 2N - 1 terms exp(s_ik / tau), k != i, in increasing k (or with the "self" / "no_tau" mistake)."""
    t = 1.0 if mistake == "no_tau" else tau
    out = [math.exp(S[i][k] / t) for k in range(len(S)) if k != i]
    if mistake == "self":
        out.insert(i, math.exp(SELF_SIMILARITY / t))
    return out


def share(S, i: int, j: int, tau: float, mistake: str | None = None) -> float:
    """The positive's share of the denominator, exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)."""
    return math.exp(-anchor_loss(S, i, j, tau, mistake))


def anchor_losses(S, positives, tau: float, mistake: str | None = None) -> list[float]:
    return [anchor_loss(S, i, positives[i], tau, mistake) for i in range(len(S))]


def batch_loss(S, positives, tau: float, mistake: str | None = None, combine: str | None = None) -> float:
    """Mean per-anchor loss over all 2N anchors; ``combine`` is one of ``BATCH_MISTAKES`` or None."""
    losses = anchor_losses(S, positives, tau, mistake)
    if combine == "one_way":
        firsts = [i for i in range(len(S)) if i < positives[i]]
        return sum(losses[i] for i in firsts) / len(firsts)
    if combine == "sum":
        return sum(losses)
    return sum(losses) / len(losses)


def batch_candidates(S, positives, tau: float, readings=()) -> dict[str, float]:
    """The right batch loss (key None) and every named wrong one, keyed by their description. ``readings`` are
    the combinations of ``BATCH_READINGS`` the question accepts: they are no mistake (``batch_readings`` gives
    their values), and a per-anchor mistake made inside one is named as that mistake, in that reading."""
    out = {None: batch_loss(S, positives, tau)}
    for m, why in MISTAKES.items():
        out[why] = batch_loss(S, positives, tau, mistake=m)
    for c, why in BATCH_MISTAKES.items():
        if c not in readings:
            out[why] = batch_loss(S, positives, tau, combine=c)
        for m, why_m in MISTAKES.items():
            key = f"{why_m} (in {BATCH_READINGS[c]})" if c in readings else f"{why}; and {why_m}"
            out[key] = batch_loss(S, positives, tau, mistake=m, combine=c)
    return out


def batch_readings(S, positives, tau: float, readings) -> dict[str, float]:
    """The batch loss under each accepted reading of ``BATCH_READINGS``, keyed by its description."""
    return {BATCH_READINGS[c]: batch_loss(S, positives, tau, combine=c) for c in readings}


def loss_candidates(S, i: int, j: int, tau: float) -> dict[str, float]:
    out = {None: anchor_loss(S, i, j, tau)}
    out.update({why: anchor_loss(S, i, j, tau, m) for m, why in MISTAKES.items()})
    return out


def denominator_candidates(S, i: int, j: int, tau: float) -> dict[str, float]:
    out = {None: denominator(S, i, j, tau)}
    out.update({MISTAKES[m]: denominator(S, i, j, tau, m) for m in ("self", "no_tau", "negatives_only")})
    return out


def close(got: float, want: float, rel: float = 1e-3, abs_tol: float = 1e-9) -> bool:
    """|got - want| <= rel * |want| + abs_tol, False for NaN; plain arithmetic, no library comparison."""
    diff = got - want
    if diff != diff:  # NaN
        return got == want  # never true for NaN; inf == inf is a match
    return -(rel * abs(want) + abs_tol) <= diff <= rel * abs(want) + abs_tol


def all_close(got, want, rel: float = 1e-3, abs_tol: float = 1e-9) -> bool:
    return len(got) == len(want) and all(close(g, w, rel, abs_tol) for g, w in zip(got, want))


def _misfit(got, want, rel: float, abs_tol: float) -> float:
    """How far ``got`` is from ``want`` in units of the tolerance (the largest over a list's elements)."""
    if isinstance(got, list):
        return max((_misfit(g, w, rel, abs_tol) for g, w in zip(got, want)), default=0.0)
    diff = abs(got - want)
    return 0.0 if diff == 0.0 else diff / (rel * abs(want) + abs_tol)


def match(got, candidates: dict, rel: float = 1e-3, abs_tol: float = 1e-9):
    """(True, None) if got matches the right answer (key None), (False, description) for a named mistake,
    (False, None) for anything else. ``got`` and the candidates are floats or lists of floats. When two named
    mistakes happen to lie within the tolerance of each other on a student's numbers, the nearer one is named:
    a value computed with one of them is that one to many more digits than the tolerance."""
    same = all_close if isinstance(got, list) else close
    if same(got, candidates[None], rel, abs_tol):
        return True, None
    named = [why for why, value in candidates.items() if why is not None and same(got, value, rel, abs_tol)]
    if not named:
        return False, None
    return False, min(named, key=lambda why: _misfit(got, candidates[why], rel, abs_tol))
