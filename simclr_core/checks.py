"""Validation at the public boundaries: one small function per kind of value.

Each returns the value (converted where that is safe, e.g. an int to float) or raises ``ValueError`` naming the
argument, the bad value and what would be valid. The training hot path never calls these: public functions
check once, then hand checked values to unchecked internals.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = ["positive_int", "nonnegative_int", "int_in_range", "positive_float", "nonnegative_float", "probability", "one_of",
           "int_tuple", "optional", "temperature", "TEMPERATURE_MIN", "known_keys", "known_name", "boolean",
           "class_indices"]

TEMPERATURE_MIN = 1e-4  # the logits sim / tau stay within +-1e4: loss and gradient finite and accurate in float32


def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def positive_int(name: str, v) -> int:
    """An integer >= 1 (True/False and 1.0 are not integers here)."""
    if not _is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def nonnegative_int(name: str, v) -> int:
    if not _is_int(v) or v < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    return int(v)


def int_in_range(name: str, v, lo: int, hi: int | None = None) -> int:
    """An integer lo <= v (<= hi when hi is given)."""
    if not _is_int(v) or v < lo or (hi is not None and v > hi):
        valid = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {valid}, got {v!r}")
    return int(v)


def positive_float(name: str, v, unit: str = "") -> float:
    """A finite number > 0 (an int is accepted and converted; a bool, NaN or inf is not)."""
    if not _is_real(v) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0{unit and ' ' + unit}, got {v!r}")
    return float(v)


def nonnegative_float(name: str, v, unit: str = "") -> float:
    if not _is_real(v) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0{unit and ' ' + unit}, got {v!r}")
    return float(v)


def probability(name: str, v) -> float:
    if not _is_real(v) or not 0 <= v <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
    return float(v)


def one_of(name: str, v, valid) -> object:
    if v not in tuple(valid):
        raise ValueError(f"{name} must be one of {tuple(valid)}, got {v!r}")
    return v


def known_name(what: str, v, valid):
    """``v`` if it is one of the names in ``valid`` (a dataset, an encoder, an augmentation, ...); otherwise
    "unknown <what> <v>; valid: [...]"."""
    if not isinstance(v, str) or v not in valid:
        raise ValueError(f"unknown {what} {v!r}; valid: {list(valid)}")
    return v


def boolean(name: str, v) -> bool:
    """True or False itself (not 1, 0, "yes" or None)."""
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be True or False, got {v!r}")
    return v


def int_tuple(name: str, v) -> tuple[int, ...]:
    """A non-empty tuple (or list) of positive integers, returned as a tuple."""
    if not isinstance(v, (tuple, list)) or not v or not all(_is_int(w) and w >= 1 for w in v):
        raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {v!r}")
    return tuple(int(w) for w in v)


def optional(check, name: str, v, *args):
    """``check(name, v, *args)`` unless v is None (then None)."""
    return None if v is None else check(name, v, *args)


def temperature(name: str, v) -> float:
    """A contrastive temperature tau >= ``TEMPERATURE_MIN`` as a float: a number, or a one-element tensor that
    needs no gradient. The loss and its gradient grow like 1 / tau; from 1e-4 up they are finite and accurate in
    float32 for any batch (the paper's Table 5 sweeps 0.05..1). A tensor that requires grad is refused rather
    than silently detached: the losses of this library take tau as a constant."""
    if getattr(v, "requires_grad", False):
        raise ValueError(f"{name} is a tensor that requires grad, but tau is a constant here (its gradient would be "
                         f"dropped); pass float({name}) or {name}.detach()")
    if hasattr(v, "numel") and hasattr(v, "item"):  # a tensor or numpy array: one element only
        if v.numel() != 1:
            raise ValueError(f"{name} must be one number >= {TEMPERATURE_MIN:g}, got a tensor of shape {tuple(v.shape)}")
        v = v.item()
    if not _is_real(v) or not math.isfinite(v) or v < TEMPERATURE_MIN:
        raise ValueError(f"{name} must be a finite number >= {TEMPERATURE_MIN:g} (the smallest tau the loss computes "
                         f"finite and accurate in float32), got {v!r}")
    return float(v)


def known_keys(what: str, given, valid) -> None:
    """Raise naming the keys of ``given`` that are not in ``valid`` (e.g. the settings read from a config file)."""
    unknown = set(given) - set(valid)
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; valid: {sorted(valid)}")


def _integer_dtype(dtype) -> bool:
    kind = getattr(dtype, "kind", None)  # a numpy dtype
    if kind is not None:
        return kind in "iu"
    return not (dtype.is_floating_point or dtype.is_complex) and str(dtype) != "torch.bool"


def class_indices(name: str, labels, n: int, num_classes: int | None = None):
    """A tensor or array of ``n`` integer class indices >= 0 (and < ``num_classes`` when given), returned as it
    is; the error names the first label out of range and its position. Floats, booleans and complex numbers are
    refused, not rounded: a label 1.7 is a mistake upstream, not class 1."""
    dtype, shape = getattr(labels, "dtype", None), tuple(getattr(labels, "shape", ()))
    if dtype is None or shape != (n,) or not _integer_dtype(dtype):
        raise ValueError(f"{name} must be a ({n},) tensor of integer class indices, got "
                         f"{dtype if dtype is not None else type(labels).__name__} {shape}")
    bad = (labels < 0) if num_classes is None else (labels < 0) | (labels >= num_classes)
    if n and bool(bad.any()):
        i = bad.tolist().index(True)
        valid = f"0..{num_classes - 1} (num_classes={num_classes})" if num_classes is not None else "0 or more"
        raise ValueError(f"{name}: label {int(labels[i])} at position {i} is not a class index in {valid}")
    return labels
