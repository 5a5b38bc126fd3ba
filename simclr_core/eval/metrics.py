"""Evaluating frozen representations: kNN accuracy and the linear probe.

- ``knn_accuracy``: the weighted kNN classifier of Wu et al. 2018 (InstDisc, arXiv:1805.01978), used by
  most SimCLR reproductions as a cheap monitor: cosine similarity to the k nearest training features,
  each votes for its class with weight exp(sim / t) (k = 200, t = 0.1).
- ``linear_probe``: the paper's linear evaluation protocol (Chen et al. 2020, Sec. 2.3 / B.5): a linear
  classifier (multinomial logistic regression) on frozen features. Here features are standardised with
  the training mean/std and the classifier is fit full-batch with L-BFGS (a convex problem, no learning rate to
  tune), run until a stated tolerance; ``fit_linear_probe`` also says whether it got there (``LinearFit``).
- ``format_probe_table``: a probe.json as text.

These are the primitives: the settings every probe of the workbook uses are ``simclr_core.eval.probe``'s
``ProbeProtocol``. Features come from ``simclr_core.eval.features``.

Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks
from ..nn.ntxent import unit_rows

__all__ = ["knn_accuracy", "knn_predict", "linear_probe", "fit_linear_probe", "LinearFit", "format_probe_table"]


def _check_feats(name_f, feats, name_y, labels, num_classes: int | None = None) -> None:
    if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or feats.shape[1] < 1:
        raise ValueError(f"{name_f} must be a (N, d) tensor with d >= 1, got {getattr(feats, 'shape', type(feats).__name__)}")
    if feats.shape[0] < 1:
        raise ValueError(f"{name_f} is empty")
    if feats.is_complex():
        raise ValueError(f"{name_f} must hold real numbers, got dtype {feats.dtype}")
    if not torch.isfinite(feats).all():
        raise ValueError(f"{name_f} holds non-finite values (NaN or inf): the encoder that made them has diverged")
    checks.class_indices(name_y, labels, feats.shape[0], num_classes)


def _check_pair(train_feats, train_labels, test_feats, test_labels, num_classes) -> int:
    """Check both sets; return the number of classes (``num_classes``, or the largest label + 1)."""
    checks.optional(checks.positive_int, "num_classes", num_classes)
    _check_feats("train_feats", train_feats, "train_labels", train_labels, num_classes)
    _check_feats("test_feats", test_feats, "test_labels", test_labels, num_classes)
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    return num_classes if num_classes is not None else int(max(train_labels.max(), test_labels.max())) + 1


@torch.no_grad()
def knn_predict(train_feats, train_labels, test_feats, k: int = 200, t: float = 0.1, num_classes: int | None = None,
                chunk: int = 1024) -> torch.Tensor:
    """Predicted class of each test feature: weighted vote of its k nearest (cosine) training features.

    ``num_classes``: the number of classes (default: the largest train label + 1); labels must lie below it."""
    _check_feats("train_feats", train_feats, "train_labels", train_labels, num_classes)
    if not isinstance(test_feats, torch.Tensor) or test_feats.dim() != 2 or test_feats.shape[1] != train_feats.shape[1]:
        raise ValueError(f"test_feats must be a (N, {train_feats.shape[1]}) tensor, got "
                         f"{getattr(test_feats, 'shape', type(test_feats).__name__)}")
    if not torch.isfinite(test_feats).all():
        raise ValueError("test_feats holds non-finite values (NaN or inf): the encoder that made them has diverged")
    checks.positive_int("chunk", chunk)
    C = int(train_labels.max()) + 1 if num_classes is None else checks.positive_int("num_classes", num_classes)
    return _knn_predict(train_feats, train_labels, test_feats, k, t, C, chunk)


def _knn_predict(train_feats, train_labels, test_feats, k: int, t: float, C: int, chunk: int = 1024) -> torch.Tensor:
    checks.positive_int("k", k)
    checks.positive_float("t (temperature)", t)
    k = min(k, train_feats.shape[0])
    bank = unit_rows(train_feats).float()  # (N_train, d) cosine needs directions only: any scale is fine
    preds = []
    for i in range(0, test_feats.shape[0], chunk):
        q = unit_rows(test_feats[i:i + chunk].to(bank.device)).float()  # (b, d)
        sim = q @ bank.T  # (b, N_train) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)  # (b, k)
        w = ((top_sim - top_sim[:, :1]) / t).exp()  # (b, k) exp(sim / t), shifted by the row's max: no overflow
        votes = torch.zeros(q.shape[0], C, device=bank.device)  # (b, C)
        votes.scatter_add_(1, train_labels.to(bank.device)[top_idx], w)
        preds.append(votes.argmax(1).cpu())
    return torch.cat(preds)  # (N_test,)


def knn_accuracy(train_feats, train_labels, test_feats, test_labels, k: int = 200, t: float = 0.1,
                 num_classes: int | None = None) -> float:
    """Top-1 accuracy (fraction) of the weighted kNN classifier (Wu et al. 2018; k = 200, t = 0.1).

    ``num_classes``: the dataset's number of classes; a label at or above it is an error (default: the largest
    label + 1). Features may have any scale: only their directions count."""
    C = _check_pair(train_feats, train_labels, test_feats, test_labels, num_classes)
    pred = _knn_predict(train_feats, train_labels, test_feats, k, t, C)
    return float((pred == test_labels.cpu()).float().mean())


def _device(device, like: torch.Tensor) -> torch.device:
    if device is None:
        return like.device
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from None


@dataclass(frozen=True)
class LinearFit:
    """A linear probe's test accuracy and how its optimisation ended.

    ``iterations``: L-BFGS iterations run; ``grad_max``: the largest |entry| of the objective's gradient at the
    returned weights; ``stopped_by``: 'gradient' (``grad_max`` <= ``tolerance_grad``), 'change' (an iteration moved
    the objective or the weights by less than ``tolerance_change``), or 'cap' (``max_iter`` iterations or the
    line searches' evaluation budget ran out first); ``converged``: stopped by a tolerance, not by the cap."""

    accuracy: float
    iterations: int
    loss: float
    grad_max: float
    stopped_by: str

    @property
    def converged(self) -> bool:
        return self.stopped_by != "cap"


# the defaults are eval.probe.PROTOCOL's (tests/test_probe_protocol.py), so a direct call stops where every probe does
def linear_probe(train_feats, train_labels, test_feats, test_labels, weight_decay: float = 1e-4,
                 max_iter: int = 1000, device=None, return_model: bool = False, num_classes: int | None = None,
                 tolerance_grad: float = 1e-4, tolerance_change: float = 1e-9):
    """Top-1 test accuracy (fraction) of multinomial logistic regression on standardised frozen features.

    Minimises  mean_i CE(W x_i + b, y_i) + weight_decay/2 * ||W||^2  over the whole training set with
    L-BFGS (strong Wolfe line search), x standardised with the training mean and std, until the largest
    |gradient entry| is at most ``tolerance_grad``, an iteration changes the objective or the weights by less than
    ``tolerance_change``, or ``max_iter`` iterations have run (``fit_linear_probe`` says which). The features are
    first divided by the largest |training feature|, which the standardisation undoes, so any scale a float holds
    works; with one training image every feature is constant and the probe predicts that image's class.
    ``return_model``: also return the classifier and the (mu, sd) it expects, for features divided by the
    returned scale: ``(acc, clf, (mu, sd, scale))``.
    """
    fit, clf, norm = _fit(train_feats, train_labels, test_feats, test_labels, weight_decay, max_iter, device,
                          num_classes, tolerance_grad, tolerance_change)
    return (fit.accuracy, clf, norm) if return_model else fit.accuracy


def fit_linear_probe(train_feats, train_labels, test_feats, test_labels, weight_decay: float = 1e-4,
                     max_iter: int = 1000, device=None, num_classes: int | None = None, tolerance_grad: float = 1e-4,
                     tolerance_change: float = 1e-9) -> LinearFit:
    """``linear_probe`` that also says how the optimisation ended (``LinearFit``)."""
    return _fit(train_feats, train_labels, test_feats, test_labels, weight_decay, max_iter, device, num_classes,
                tolerance_grad, tolerance_change)[0]


def _fit(train_feats, train_labels, test_feats, test_labels, weight_decay, max_iter, device, num_classes,
         tolerance_grad, tolerance_change):
    C = _check_pair(train_feats, train_labels, test_feats, test_labels, num_classes)
    weight_decay = checks.nonnegative_float("weight_decay", weight_decay)
    checks.positive_int("max_iter", max_iter)
    tolerance_grad = checks.positive_float("tolerance_grad", tolerance_grad)
    tolerance_change = checks.positive_float("tolerance_change", tolerance_change)
    device = _device(device, train_feats)
    wide = torch.float64 if device.type != "mps" else torch.float32  # mps has no float64
    X = train_feats.to(device, wide)  # (N, d)
    scale = float(X.abs().max()) or 1.0  # finite: checked above
    X = (X / scale).float()  # (N, d) largest |entry| 1
    mu = X.mean(0, keepdim=True)  # (1, d)
    sd = X.std(0, keepdim=True, correction=1 if X.shape[0] > 1 else 0).clamp_min(1e-6)  # (1, d)
    X = (X - mu) / sd  # (N, d) standardised
    y = train_labels.to(device)
    clf = nn.Linear(X.shape[1], C).to(device)
    nn.init.zeros_(clf.weight)
    nn.init.zeros_(clf.bias)
    max_eval = 4 * max_iter  # line searches rarely need more than a few evaluations: the cap is max_iter
    opt = torch.optim.LBFGS(clf.parameters(), lr=1.0, max_iter=max_iter, max_eval=max_eval, history_size=20,
                            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(clf(X), y) + 0.5 * weight_decay * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
        loss = float(closure().detach())  # the objective and its gradient at the weights returned
    grad_max = max(float(p.grad.abs().max()) for p in clf.parameters())
    state = opt.state[clf.weight]
    iterations, evals = int(state.get("n_iter", 0)), int(state.get("func_evals", 0))
    stopped_by = ("gradient" if grad_max <= tolerance_grad else
                  "cap" if iterations >= max_iter or evals >= max_eval else "change")
    with torch.no_grad():
        Xt = (test_feats.to(device, wide) / scale - mu.to(wide)) / sd.to(wide)  # (N_test, d)
        logits = Xt @ clf.weight.to(wide).T + clf.bias.to(wide)  # (N_test, C)
        acc = float((logits.argmax(1).cpu() == test_labels.cpu()).float().mean())
    return LinearFit(acc, iterations, loss, grad_max, stopped_by), clf, (mu, sd, scale)


def format_probe_table(result: dict) -> str:
    steps = f" ({result['steps_trained']} steps)" if result.get("steps_trained") else ""
    lines = [f"{result['dataset']}, {result['encoder']}, {result['epochs_trained']} epochs{steps}; "
             f"{result['n_train']} train / {result['n_test']} test images",
             f"{'representation':<14} {'dim':>6} {'kNN top-1':>10} {'linear top-1':>13}"]
    for r in result["results"]:
        lines.append(f"{r['name']:<14} {r['dim']:>6} {100 * r['knn']:>9.2f}% {100 * r['linear']:>12.2f}%")
    return "\n".join(lines)
