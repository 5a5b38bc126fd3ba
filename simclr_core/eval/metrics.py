"""Evaluating frozen representations: kNN accuracy and the linear probe.

- ``knn_accuracy``: the weighted kNN classifier of Wu et al. 2018 (InstDisc, arXiv:1805.01978), used by
  most SimCLR reproductions as a cheap monitor: cosine similarity to the k nearest training features,
  each votes for its class with weight exp(sim / t) (k = 200, t = 0.1).
- ``linear_probe``: the paper's linear evaluation protocol (Chen et al. 2020, Sec. 2.3 / B.5): a linear
  classifier (multinomial logistic regression) on frozen features. Here features are standardised with
  the training mean/std and the classifier is fit full-batch with L-BFGS (exact optimum of a convex
  problem, no learning rate to tune; seconds for 50k x 512 on a CPU).
- ``compare_representations``: the same protocol for several representations (SimCLR, random init, raw pixels).

Features come from ``simclr_core.eval.features``.

Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks

__all__ = ["knn_accuracy", "knn_predict", "linear_probe", "compare_representations", "ProbeScores", "format_probe_table"]


def _check_feats(name_f, feats, name_y, labels):
    if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
        raise ValueError(f"{name_f} must be a (N, d) tensor, got {getattr(feats, 'shape', type(feats).__name__)}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (feats.shape[0],):
        raise ValueError(f"{name_y} must be a ({feats.shape[0]},) tensor of class indices, got {getattr(labels, 'shape', type(labels).__name__)}")
    if feats.shape[0] < 1:
        raise ValueError(f"{name_f} is empty")
    if not torch.isfinite(feats).all():
        raise ValueError(f"{name_f} holds non-finite values (NaN or inf): the encoder that made them has diverged")
    if labels.is_floating_point() or labels.dtype == torch.bool or (labels < 0).any():
        raise ValueError(f"{name_y} must be integer class indices >= 0, got dtype {labels.dtype}, min {labels.min().item()}")


@torch.no_grad()
def knn_predict(train_feats, train_labels, test_feats, k: int = 200, t: float = 0.1, num_classes: int | None = None,
                chunk: int = 1024) -> torch.Tensor:
    """Predicted class of each test feature: weighted vote of its k nearest (cosine) training features."""
    checks.positive_int("k", k)
    checks.positive_float("t (temperature)", t)
    C = int(train_labels.max()) + 1 if num_classes is None else num_classes
    k = min(k, train_feats.shape[0])
    bank = F.normalize(train_feats.float(), dim=1)  # (N_train, d)
    preds = []
    for i in range(0, test_feats.shape[0], chunk):
        q = F.normalize(test_feats[i:i + chunk].float().to(bank.device), dim=1)  # (b, d)
        sim = q @ bank.T  # (b, N_train) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)  # (b, k)
        w = ((top_sim - top_sim[:, :1]) / t).exp()  # (b, k) exp(sim / t), shifted by the row's max: no overflow
        votes = torch.zeros(q.shape[0], C, device=bank.device)  # (b, C)
        votes.scatter_add_(1, train_labels.to(bank.device)[top_idx], w)
        preds.append(votes.argmax(1).cpu())
    return torch.cat(preds)  # (N_test,)


def knn_accuracy(train_feats, train_labels, test_feats, test_labels, k: int = 200, t: float = 0.1) -> float:
    """Top-1 accuracy (fraction) of the weighted kNN classifier (Wu et al. 2018; k = 200, t = 0.1)."""
    _check_feats("train_feats", train_feats, "train_labels", train_labels)
    _check_feats("test_feats", test_feats, "test_labels", test_labels)
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    C = int(max(train_labels.max(), test_labels.max())) + 1
    pred = knn_predict(train_feats, train_labels, test_feats, k=k, t=t, num_classes=C)
    return float((pred == test_labels.cpu()).float().mean())


def linear_probe(train_feats, train_labels, test_feats, test_labels, weight_decay: float = 1e-4,
                 max_iter: int = 200, device=None, return_model: bool = False):
    """Top-1 test accuracy (fraction) of multinomial logistic regression on standardised frozen features.

    Minimises  mean_i CE(W x_i + b, y_i) + weight_decay/2 * ||W||^2  over the whole training set with
    L-BFGS (strong Wolfe line search), x standardised with the training mean and std.
    """
    _check_feats("train_feats", train_feats, "train_labels", train_labels)
    _check_feats("test_feats", test_feats, "test_labels", test_labels)
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_feats.shape[1]} vs {test_feats.shape[1]}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    checks.positive_int("max_iter", max_iter)
    device = torch.device(device) if device is not None else train_feats.device
    X = train_feats.float().to(device)
    mu, sd = X.mean(0, keepdim=True), X.std(0, keepdim=True).clamp_min(1e-6)  # (1, d)
    X = (X - mu) / sd  # (N, d) standardised
    y = train_labels.to(device)
    C = int(max(train_labels.max(), test_labels.max())) + 1
    clf = nn.Linear(X.shape[1], C).to(device)
    nn.init.zeros_(clf.weight)
    nn.init.zeros_(clf.bias)
    opt = torch.optim.LBFGS(clf.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(clf(X), y) + 0.5 * weight_decay * clf.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        Xt = (test_feats.float().to(device) - mu) / sd  # (N_test, d)
        acc = float((clf(Xt).argmax(1).cpu() == test_labels.cpu()).float().mean())
    if return_model:
        return acc, clf, (mu, sd)
    return acc


@dataclass
class ProbeScores:
    name: str
    knn: float
    linear: float
    dim: int
    seconds: float


def compare_representations(features: dict, train_labels, test_labels, k: int = 200, t: float = 0.1,
                            weight_decay: float = 1e-4) -> list[ProbeScores]:
    """The same kNN + linear-probe protocol for each entry ``name -> (train_feats, test_feats)``."""
    rows = []
    for name, (ftr, fte) in features.items():
        t0 = time.perf_counter()
        knn = knn_accuracy(ftr, train_labels, fte, test_labels, k=k, t=t)
        lin = linear_probe(ftr, train_labels, fte, test_labels, weight_decay=weight_decay)
        rows.append(ProbeScores(name, knn, lin, ftr.shape[1], time.perf_counter() - t0))
    return rows


def format_probe_table(result: dict) -> str:
    steps = f" ({result['steps_trained']} steps)" if result.get("steps_trained") else ""
    lines = [f"{result['dataset']}, {result['encoder']}, {result['epochs_trained']} epochs{steps}; "
             f"{result['n_train']} train / {result['n_test']} test images",
             f"{'representation':<14} {'dim':>6} {'kNN top-1':>10} {'linear top-1':>13}"]
    for r in result["results"]:
        lines.append(f"{r['name']:<14} {r['dim']:>6} {100 * r['knn']:>9.2f}% {100 * r['linear']:>12.2f}%")
    return "\n".join(lines)
