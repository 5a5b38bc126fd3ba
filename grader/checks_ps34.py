"""Checks of problem sets 3 (batch size and negatives) and 4 (applications); see ``checks_ps12`` for the contract."""

from __future__ import annotations

import math

from grader_probe import inputs as I

from .problems import others
from . import reference as R
from .verdict import Missing, Verdict, cases, scalar, value


# ------------------------------------------------------------------------------------------- problem set 3
def _grad_rows(values) -> list:
    rows = value(values, "loss_and_grad_norm")
    if not isinstance(rows, list) or len(rows) != len(I.GRAD_CASES) or not all(isinstance(r, dict) for r in rows):
        raise Missing("loss_and_grad_norm did not give one result per test input")
    return rows


def _nt_xent_grad(k: int):
    """NT-Xent, the norm of its gradient with respect to z1 and that gradient, on test input k (float64 lists)."""
    import torch

    from .checks_ps12 import nt_loss

    N, D, tau, seed = I.GRAD_CASES[k]
    a, b = (x.double().requires_grad_(True) for x in I.nt_xent_inputs(N, D, seed))
    loss = nt_loss(a, b, tau)
    (g,) = torch.autograd.grad(loss, a)
    return float(loss.detach()), float(g.double().norm()), g.double().flatten().tolist()


def q3_1a(values, p) -> Verdict:
    v = Verdict()
    scalar(v, values, "loss_N1", {None: 0.0}, "with N = 1 the only candidate is the positive", abs_tol=1e-6,
           weight=0.5)
    scalar(v, values, "grad_norm_N1", {None: 0.0}, "a constant loss has a zero gradient", abs_tol=1e-6, weight=0.5)
    try:
        rows = _grad_rows(values)
    except Missing as e:
        v.add(False, str(e))
        v.add(False, "no gradient to check: loss_and_grad_norm gave no results")
        return v
    wrong, no_grad, bad_grad = [], [], []
    for k, r in enumerate(rows):
        loss, norm, grad = _nt_xent_grad(k)
        got = tuple(float(x) if isinstance(x, (int, float)) else float("nan") for x in (r.get("loss"), r.get("norm")))
        if not (R.close(got[0], loss, 1e-4, 1e-6) and R.close(got[1], norm, 1e-4, 1e-6)):
            wrong.append(k + 1)
        g = r.get("grad")
        if not g:  # [] when z1.grad is None
            no_grad.append(k + 1)
        elif not isinstance(g, list) or not R.all_close([float(x) for x in g], grad, 1e-4, 1e-6):
            bad_grad.append(k + 1)
    n = len(rows)
    v.add(not wrong, "loss_and_grad_norm returns NT-Xent and the norm of its gradient" + (
        f" on all {n} test inputs" if not wrong else f"; it does not on test input {wrong[0]} of {n}: use "
        f"nt_xent(z1, z2, temperature=tau) and the norm of z1.grad"))
    if no_grad:
        v.add(False, f"z1.grad is None after loss_and_grad_norm (test input {no_grad[0]} of {n}): call "
                     f"loss.backward()")
    elif bad_grad:
        v.add(False, f"z1.grad is not the gradient of the loss on test input {bad_grad[0]} of {n}: let "
                     f"loss.backward() compute it, do not set it by hand")
    else:
        v.add(True, "loss.backward() filled z1.grad with the gradient of the loss")
    return v


def q3_1b_counts(values, p) -> Verdict:
    v = Verdict()
    cases(v, values, "num_candidates", [{None: 2 * n - 1, "it counts k = i too (2N)": 2 * n,
                                         "it counts only the negatives (2N - 2)": 2 * n - 2} for n in I.COUNT_NS],
          "the denominator runs over the 2N - 1 other views")
    cases(v, values, "num_negatives", [{None: 2 * n - 2, "it counts the positive as a negative (2N - 1)": 2 * n - 1,
                                        "it counts the N - 1 other images, not their 2(N - 1) views": n - 1}
                                       for n in I.COUNT_NS],
          "every view except the anchor and its positive is a negative")
    return v


def q3_1b_collapse(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: math.log(2 * n - 1), "log(2N): it counts k = i among the candidates": math.log(2 * n),
              "it uses log base 10": math.log10(2 * n - 1)} for n in I.COLLAPSE_NS]
    cases(v, values, "collapsed_loss", wants, "with identical embeddings every candidate gets the same share",
          rel=1e-6, abs_tol=1e-9)
    return v


def q3_2a(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: math.log(2 * n - 1) - L, "log(2N) - L counts k = i among the candidates": math.log(2 * n) - L,
              "it uses log base 10": math.log10(2 * n - 1) - L} for n, L in I.MI_CASES]
    cases(v, values, "mi_bound", wants, "the bound is log(2N - 1) - L", rel=1e-9)
    n = p["N_bound"]
    scalar(v, values, "max_bound", {
        None: math.log(2 * n - 1), "it uses log base 10": math.log10(2 * n - 1),
        "log(2N) counts k = i; there are 2N - 1 candidates": math.log(2 * n),  # one sentence for the class report
    }, f"the loss is at least 0, so the bound is at most log(2N - 1) (on your N_bound, student id {p['student']!r})",
        rel=1e-6, others=others(p, lambda q: math.log(2 * q["N_bound"] - 1)))  # N_bound's neighbours: >= 2e-4 apart
    return v


# ------------------------------------------------------------------------------------------- problem set 4
def _queue(batches, K, mistake=None):
    flat = [x for b in batches for x in b]
    if mistake == "first":
        return flat[:K]
    kept = flat[max(0, len(flat) - K):]
    return kept[::-1] if mistake == "reversed" else kept


def q4_2b_queue(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: [float(x) for x in _queue(b, K)],
              "it returns the newest first; the order is oldest first": [float(x) for x in _queue(b, K, "reversed")],
              "it keeps the oldest K ids and drops the newest": [float(x) for x in _queue(b, K, "first")]}
             for b, K in I.QUEUE_CASES]
    got = {"queue_after": values.get("queue_after")}
    cases(v, got, "queue_after", wants, "keep the last K ids, oldest first")
    return v


def q4_2b_negatives(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: 2 * n - 2 + K, "it counts the positive as a negative (2N - 1 + K)": 2 * n - 1 + K,
              "it leaves out the queue's K keys": 2 * n - 2} for n, K in I.NEGATIVE_CASES]
    cases(v, values, "negatives_per_anchor", wants, "the negatives are 2N - 2 views of the batch plus K keys")
    return v


def _alignment(z1, z2, mistake=None):
    import torch.nn.functional as F

    u, w = (z1, z2) if mistake == "raw" else (F.normalize(z1, dim=1), F.normalize(z2, dim=1))
    d = (u - w).double().pow(2).sum(dim=1)
    return float(d.sqrt().mean() if mistake == "sqrt" else d.sum() if mistake == "sum" else d.mean())


def q5_1_alignment(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: _alignment(a, b), "the rows are not L2-normalised": _alignment(a, b, "raw"),
              "it averages the distance, not the squared distance": _alignment(a, b, "sqrt"),
              "it sums over the N pairs instead of averaging": _alignment(a, b, "sum")}
             for a, b in I.alignment_inputs()]
    cases(v, values, "alignment", wants, "mean over pairs of ||u_i - v_i||^2 with u, v L2-normalised",
          rel=1e-4, abs_tol=1e-6)
    return v


def _erank(z, mistake=None):
    import torch

    s = torch.linalg.svdvals(z.double())
    s = s * s if mistake == "energy" else s
    q = s / s.sum()
    q = q[q > 0]
    entropy = float(-(q * q.log()).sum())
    return entropy if mistake == "entropy" else math.exp(entropy)


def q5_2_erank(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: _erank(z), "it uses squared singular values (energies); p_k uses sigma_k": _erank(z, "energy"),
              "it returns the entropy; the effective rank is exp(entropy)": _erank(z, "entropy")}
             for z in I.erank_inputs()]
    cases(v, values, "effective_rank", wants, "erank = exp(-sum p_k log p_k), p_k = sigma_k / sum sigma",
          rel=1e-6, abs_tol=1e-9)
    return v


def _knn(tz, ty, qz, k, metric):
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(tz.numpy(), ty.numpy())
    return [float(x) for x in clf.predict(qz.numpy()).tolist()]


def q6_2_knn(values, p) -> Verdict:
    v = Verdict()
    wants = [{None: _knn(tz, ty, qz, k, "cosine"),
              "it uses Euclidean distance; the neighbours are the most cosine-similar": _knn(tz, ty, qz, k, "euclidean")}
             for tz, ty, qz, k in I.knn_inputs()]
    cases(v, values, "knn_predict", wants, "majority vote of the k most cosine-similar training embeddings",
          rel=0.0, abs_tol=0.0)
    return v


CHECKS = {f.__name__: f for f in (q3_1a, q3_1b_counts, q3_1b_collapse, q3_2a, q4_2b_queue, q4_2b_negatives,
                                  q5_1_alignment, q5_2_erank, q6_2_knn)}
