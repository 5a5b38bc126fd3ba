"""The one evaluation protocol of the workbook: every probe of a frozen representation goes through ``probe``.

Callers: ``simclr probe`` (``train.probe.probe_run``), the experiments of notebooks 06-09
(``experiments.common.probe_of``, ``experiments.stats.baselines``, ``experiments.vs_supervised``),
``benchmarks/bench_fashion_mnist.py`` and notebook 05. One definition means that the same encoder on the same
images gets the same numbers whichever of them asks (``tests/test_probe_protocol.py``).

- ``ProbeProtocol``: every setting of the protocol, each with its reason; ``PROTOCOL`` is the default one.
- ``probe_precision``: where and how features are taken, decided by ``simclr_core.precision`` from the device
  and the protocol alone, never by how a caller prepared its model.
- ``features``: h = f(x) of un-augmented images at the protocol's image size (``encoder=None``: raw pixels).
- ``probe_features`` / ``probe``: kNN (``metrics.knn_accuracy``) and the linear probe run to convergence
  (``metrics.fit_linear_probe``) on features / on an encoder and two ``ImageDataset``s.
- ``probe_table``: the same for several representations (the rows of probe.json and of the benchmark).
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks
from ..precision import Precision, precision_for, resolve_device
from .features import extract_features, raw_pixel_features
from .metrics import LinearFit, fit_linear_probe, knn_accuracy

__all__ = ["ProbeProtocol", "PROTOCOL", "ProbeResult", "METRICS", "probe_precision", "at_size", "features",
           "probe_features", "probe", "probe_table"]

METRICS = ("knn", "linear")


@dataclass(frozen=True)
class ProbeProtocol:
    """How a frozen representation is evaluated. The defaults are the protocol of every number in the workbook."""

    knn_k: int = 200  # Wu et al. 2018's weighted kNN, as most SimCLR reproductions monitor it; at most the train set
    knn_t: float = 0.1  # its vote temperature: exp(cos / 0.1)
    weight_decay: float = 1e-4  # L2 on W in mean CE + wd/2 ||W||^2 (sklearn's C = 1 / (wd * n))
    # stopping rule of the linear probe (L-BFGS, strong Wolfe): converged when the largest |gradient entry| of the
    # objective is <= tolerance_grad (or an iteration changes it or the weights by < tolerance_change); max_iter
    # only caps a run that does not converge, and the result says so. On the shipped encoder's 1024-d features
    # (10,000 images) 1e-4 takes about 250 iterations and gives the same accuracy as 1e-5 (about 700).
    max_iter: int = 1000
    tolerance_grad: float = 1e-4
    tolerance_change: float = 1e-9
    image_size: int | None = None  # None: the images' own size (Fashion-MNIST 28 px), whatever size a model trained at
    amp: bool = False  # float32 features: the same numbers on every CPU (bf16 autocast depends on the CPU's kind)
    batch_size: int = 512  # images per forward pass: fixed so that float rounding is the same on every path

    def __post_init__(self):
        checks.positive_int("knn_k", self.knn_k)
        checks.positive_float("knn_t", self.knn_t)
        checks.nonnegative_float("weight_decay", self.weight_decay)
        checks.positive_int("max_iter", self.max_iter)
        checks.positive_float("tolerance_grad", self.tolerance_grad)
        checks.positive_float("tolerance_change", self.tolerance_change)
        checks.optional(checks.positive_int, "image_size", self.image_size)
        checks.positive_int("batch_size", self.batch_size)
        if not isinstance(self.amp, bool):
            raise ValueError(f"amp must be True or False, got {self.amp!r}")

    def describe(self) -> dict:
        """The protocol as a JSON-able dict, with its stopping rule in words (what results record)."""
        return {**asdict(self), "stopping_rule": (
            f"L-BFGS (strong Wolfe) from zero weights until max|grad| <= {self.tolerance_grad:g} or an iteration "
            f"changes the objective or the weights by < {self.tolerance_change:g}; capped at {self.max_iter} "
            f"iterations (reported as not converged)"),
            "features": f"h of un-augmented images at {self.image_size or 'their own'} px, "
                        f"{'autocast' if self.amp else 'float32'}"}


PROTOCOL = ProbeProtocol()


@dataclass(frozen=True)
class ProbeResult:
    """kNN and linear-probe top-1 (fractions; None when not measured), the linear fit, feature width, seconds."""

    knn: float | None
    linear: float | None
    fit: LinearFit | None
    dim: int
    seconds: float

    def scores(self) -> dict:
        """{"knn", "linear"}: the accuracies measured."""
        return {m: getattr(self, m) for m in METRICS if getattr(self, m) is not None}

    def row(self, name: str) -> dict:
        """One row of a probe table (probe.json, the benchmark's results)."""
        out = {"name": name, "knn": self.knn, "linear": self.linear, "dim": self.dim, "seconds": self.seconds}
        if self.fit is not None:
            out.update(linear_iterations=self.fit.iterations, linear_converged=self.fit.converged)
        return out


def probe_precision(precision: Precision | str | torch.device, protocol: ProbeProtocol = PROTOCOL) -> Precision:
    """The policy features are taken with: the device of ``precision`` (a ``Precision`` or a device name), with
    autocast only when the protocol asks for it (``precision.precision_for``)."""
    device = precision.device if isinstance(precision, Precision) else resolve_device(precision)
    return precision_for(device, amp=protocol.amp)


def at_size(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 images (N, C, H, W) resized to (N, C, size, size) (bilinear, antialiased); as they are for None or
    their own size."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)  # (N, C, size, size)


def features(encoder: nn.Module | None, images: torch.Tensor, precision, protocol: ProbeProtocol = PROTOCOL,
             normalize=None) -> torch.Tensor:
    """(N, d) float32 features on the CPU of uint8 images (N, C, H, W) at the protocol's image size: h = f(x) of a
    copy of ``encoder`` in the protocol's precision (the caller's module is left as it is), or raw pixels for
    ``encoder=None``. ``normalize``: the (mean, std) the encoder's training standardised its views with, or None."""
    images = at_size(images, protocol.image_size)
    if encoder is None:
        return raw_pixel_features(images)
    prec = probe_precision(precision, protocol)
    enc = prec.prepare(copy.deepcopy(encoder))
    mean, std = normalize if normalize is not None else (None, None)
    return extract_features(enc, images, protocol.batch_size, prec, mean, std)


def probe_features(train_feats, train_labels, test_feats, test_labels, precision, protocol: ProbeProtocol = PROTOCOL,
                   metrics=METRICS, num_classes: int | None = None) -> ProbeResult:
    """kNN (k, t of the protocol) and/or the linear probe (run to the protocol's stopping rule, on the device of
    ``precision``) on frozen features (N, d) with their labels."""
    for m in metrics:
        checks.one_of("metric", m, METRICS)
    t0 = time.perf_counter()
    knn = fit = None
    if "knn" in metrics:
        knn = knn_accuracy(train_feats, train_labels, test_feats, test_labels, k=protocol.knn_k, t=protocol.knn_t,
                           num_classes=num_classes)
    if "linear" in metrics:
        fit = fit_linear_probe(train_feats, train_labels, test_feats, test_labels, protocol.weight_decay,
                               protocol.max_iter, probe_precision(precision, protocol).device, num_classes,
                               protocol.tolerance_grad, protocol.tolerance_change)
        if not fit.converged:  # every caller's log shows it, whether or not it keeps the fit
            warnings.warn(f"the linear probe stopped at its cap of {protocol.max_iter} iterations with max|grad| "
                          f"{fit.grad_max:.2g} > {protocol.tolerance_grad:g}: not converged", RuntimeWarning, stacklevel=2)
    return ProbeResult(knn, None if fit is None else fit.accuracy, fit, int(train_feats.shape[1]),
                       time.perf_counter() - t0)


def probe(encoder: nn.Module | None, train, test, precision, protocol: ProbeProtocol = PROTOCOL, normalize=None,
          metrics=METRICS) -> ProbeResult:
    """The protocol on an encoder (None: raw pixels): features of ``train`` and ``test`` (``ImageDataset``s), then
    kNN and the linear probe trained on ``train``'s labels and tested on ``test``'s."""
    t0 = time.perf_counter()
    ftr = features(encoder, train.images, precision, protocol, normalize)
    fte = features(encoder, test.images, precision, protocol, normalize)
    res = probe_features(ftr, train.targets, fte, test.targets, precision, protocol, metrics, len(train.classes))
    return ProbeResult(res.knn, res.linear, res.fit, res.dim, time.perf_counter() - t0)


def probe_table(encoders: dict, train, test, precision, protocol: ProbeProtocol = PROTOCOL, normalize=None,
                stage=None) -> list[dict]:
    """One row per entry ``name -> encoder`` (None: raw pixels), in order; ``stage(text)`` announces each."""
    rows = []
    for name, enc in encoders.items():
        if stage is not None:
            stage(f"features, kNN and linear probe of {name}")
        rows.append(probe(enc, train, test, precision, protocol, None if enc is None else normalize).row(name))
    return rows
