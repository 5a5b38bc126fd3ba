"""Answer side of the autograder: evaluate a submission's answers and give the VALUES, never a verdict.

``grader_probe.runner`` runs a notebook's answer cells in a plain Python process inside the grading sandbox and
then calls ``RECIPES[check](namespace)``: it reads the student's variables and calls her functions on the inputs
of ``grader_probe.inputs``. Nothing here decides a grade: the trusted checker (``grader``), in the nbgrader
process, validates these values and compares them with its own references. A submission that tampers with this
module can therefore only change its values (to be right it must compute the right ones).

Numbers travel as ``float.hex`` strings: exact, and NaN / infinity survive JSON. Problem sets 1-3 also give the
student id their numbers came from (``VARIANT.student``, see ``simclr_core.teaching.variants``): the checker
grades against the id nbgrader grades the notebook as, and uses this one only to explain a mismatch. Error
messages name the function and the position of a test input, never the input itself.
"""

from __future__ import annotations

from . import inputs as I

def _tensor(x):
    import torch

    return torch.tensor(x, dtype=torch.float64)


def number(v):
    """A Python float for a float, int, numpy scalar or one-element tensor/array; TypeError otherwise."""
    if isinstance(v, bool):
        raise TypeError("is a bool, expected a number")
    item = getattr(v, "item", None)
    size = getattr(v, "size", None)
    numel = getattr(v, "numel", None)
    count = numel() if callable(numel) else (size if isinstance(size, int) else None)
    if callable(item) and count is not None:
        if count != 1:
            raise TypeError(f"holds {count} numbers, expected one")
        v = item()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise TypeError(f"is a {type(v).__name__}, expected a number")


def _enc(x):
    if isinstance(x, float):
        return x.hex()
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    if isinstance(x, (list, tuple)):
        return [_enc(e) for e in x]
    if isinstance(x, dict):
        return {k: _enc(v) for k, v in x.items()}
    raise TypeError(type(x).__name__)


def _numbers(seq):
    return [number(v) for v in list(seq)]


def _ints(seq):
    out = []
    for v in list(seq):
        f = number(v)
        if f != int(f):
            raise TypeError(f"holds {f!r}, expected whole numbers")
        out.append(int(f))
    return out


def _value(ns, name, fn=number):
    """{"v": encoded value} or {"error": why}; the error names the variable."""
    try:
        return {"v": _enc(fn(ns[name]))}
    except KeyError:
        return {"error": f"{name} is not defined"}
    except Exception as e:  # noqa: BLE001 (anything a submission raises is reported, not propagated)
        return {"error": f"{name} {e}" if isinstance(e, TypeError) else f"{name}: {type(e).__name__}: {e}"}


def _raised(fname: str, e: BaseException, k: int, n: int) -> str:
    """What a function that raised on hidden test input k of n is told: the exception's type and the input's
    position, never its message (the function's own code writes it, and could quote the hidden input)."""
    return (f"{fname} raised {type(e).__name__} on test input {k + 1} of {n} (its message is not shown: it could "
            f"quote the hidden input; the visible tests in the notebook show the messages on their inputs)")


def _calls(ns, fname, cases, call, convert):
    """Evaluate ns[fname] on each case: {"v": [encoded result, ...]} or {"error": first failure}."""
    f = ns.get(fname)
    if not callable(f):
        return {"error": f"{fname} is not defined"}
    out = []
    for k, case in enumerate(cases):
        try:
            out.append(convert(call(f, case)))
        except NotImplementedError:
            return {"error": f"{fname} raises NotImplementedError (not written yet)"}
        except Exception as e:  # noqa: BLE001
            return {"error": _raised(fname, e, k, len(cases))}
    return {"v": _enc(out)}


def _nt_xent(ns, with_grads):
    import torch

    f = ns.get("nt_xent_vectorised")
    if not callable(f):
        return {"error": "nt_xent_vectorised is not defined"}
    out = []
    for N, D, tau, seed in I.NT_XENT_CASES:
        a, b = I.nt_xent_inputs(N, D, seed)
        a0, b0 = a.clone(), b.clone()
        a.requires_grad_(with_grads)
        b.requires_grad_(with_grads)
        try:
            loss = f(a, b, tau)
            shape = list(loss.shape) if torch.is_tensor(loss) else None
            row = {"loss": number(loss), "shape": shape}
            if with_grads:
                ga, gb = torch.autograd.grad(loss, (a, b))
                row["grad"] = [float(x) for x in torch.cat([ga.flatten(), gb.flatten()]).double().tolist()]
                row["unchanged"] = int(torch.equal(a.detach(), a0) and torch.equal(b.detach(), b0))
        except NotImplementedError:
            return {"error": "nt_xent_vectorised raises NotImplementedError (not written yet)"}
        except Exception as e:  # noqa: BLE001
            return {"error": _raised("nt_xent_vectorised", e, len(out), len(I.NT_XENT_CASES))}
        out.append(row)
    return {"v": _enc(out)}


def _loss_and_grad(ns):
    """loss_and_grad_norm on fresh leaf tensors: its two numbers and the gradient its backward pass left in z1."""
    import torch

    f = ns.get("loss_and_grad_norm")
    if not callable(f):
        return {"error": "loss_and_grad_norm is not defined"}
    out = []
    for k, (N, D, tau, seed) in enumerate(I.GRAD_CASES):
        a, b = (x.requires_grad_(True) for x in I.nt_xent_inputs(N, D, seed))
        try:
            loss, norm = f(a, b, tau)
            grad = a.grad
            row = {"loss": number(loss), "norm": number(norm),
                   "grad": [] if grad is None else [float(x) for x in grad.detach().double().flatten().tolist()]}
        except NotImplementedError:
            return {"error": "loss_and_grad_norm raises NotImplementedError (not written yet)"}
        except Exception as e:  # noqa: BLE001
            return {"error": _raised("loss_and_grad_norm", e, k, len(I.GRAD_CASES))}
        out.append(row)
    return {"v": _enc(out)}


def _probe_matrix():
    return I.symmetric_matrix(6, 21)


RECIPES = {
    # problem set 1
    "q1_1_terms": lambda ns: {n: _value(ns, n) for n in ("numerator_12", "denominator_12")},
    "q1_1_loss": lambda ns: {"L_12": _value(ns, "L_12")},
    "q1_2": lambda ns: {"L_34": _value(ns, "L_34")},
    "q1_3_anchor": lambda ns: {"anchor_losses": _calls(
        ns, "anchor_losses", I.ANCHOR_CASES,
        lambda f, c: f(_tensor(I.anchor_case(c[0], c[1], c[3])[0]), I.anchor_case(c[0], c[1], c[3])[1], c[2]),
        _numbers)},
    "q1_3_batch": lambda ns: {"L_batch": _value(ns, "L_batch")},
    "q1_4_visible": lambda ns: {"nt_xent_vectorised": _nt_xent(ns, with_grads=False)},
    "q1_4_hidden": lambda ns: {"nt_xent_vectorised": _nt_xent(ns, with_grads=True)},
    # problem set 2
    "q2_1_terms": lambda ns: {"denominator_terms": _calls(
        ns, "denominator_terms", [(i, t) for t in I.TERMS_TAUS for i in range(6)],
        lambda f, c: f(_tensor(_probe_matrix()), c[0], c[1]), _numbers)},
    "q2_1_share": lambda ns: {"share_low": _value(ns, "share_low"), "share_high": _value(ns, "share_high"),
                              "positive_share": _calls(
                                  ns, "positive_share", list(range(6)),
                                  lambda f, i: f(_tensor(_probe_matrix()), i, i ^ 1, I.SHARE_TAU), number)},
    "q2_1_loss": lambda ns: {"L_batch_high": _value(ns, "L_batch_high")},
    "q2_2_ratio": lambda ns: {"ratio": _calls(ns, "ratio", I.RATIO_CASES, lambda f, c: f(*c), number)},
    "q2_2_limit": lambda ns: {"loss_limit": _value(ns, "loss_limit")},
    # problem set 3
    "q3_1a": lambda ns: {"loss_N1": _value(ns, "loss_N1"), "grad_norm_N1": _value(ns, "grad_norm_N1"),
                         "loss_and_grad_norm": _loss_and_grad(ns)},
    "q3_1b_counts": lambda ns: {f: _calls(ns, f, I.COUNT_NS, lambda g, n: g(n), lambda x: _ints([x])[0])
                                for f in ("num_candidates", "num_negatives")},
    "q3_1b_collapse": lambda ns: {"collapsed_loss": _calls(ns, "collapsed_loss", I.COLLAPSE_NS,
                                                           lambda f, n: f(n), number)},
    "q3_2a": lambda ns: {"mi_bound": _calls(ns, "mi_bound", I.MI_CASES, lambda f, c: f(*c), number),
                         "max_bound": _value(ns, "max_bound")},
    # problem set 4
    "q4_2b_queue": lambda ns: {"queue_after": _calls(ns, "queue_after", I.QUEUE_CASES,
                                                     lambda f, c: f([list(b) for b in c[0]], c[1]), _ints)},
    "q4_2b_negatives": lambda ns: {"negatives_per_anchor": _calls(
        ns, "negatives_per_anchor", I.NEGATIVE_CASES, lambda f, c: f(*c), lambda x: _ints([x])[0])},
    "q5_1_alignment": lambda ns: {"alignment": _calls(ns, "alignment", I.alignment_inputs(),
                                                      lambda f, c: f(*c), number)},
    "q5_2_erank": lambda ns: {"effective_rank": _calls(ns, "effective_rank", I.erank_inputs(),
                                                       lambda f, z: f(z), number)},
    "q6_2_knn": lambda ns: {"knn_predict": _calls(ns, "knn_predict", I.knn_inputs(),
                                                  lambda f, c: f(*c), _ints)},
}


def variant_id(ns) -> str | None:
    """The student id of the notebook's numbers (``VARIANT.student``), None when there is no variant."""
    try:
        sid = getattr(ns.get("VARIANT"), "student", None)
    except Exception:  # noqa: BLE001
        return None
    return sid[:100] if isinstance(sid, str) else None
