"""The library below the command line, fed what a careless or hostile caller passes: every case must end in a clear
error (a ValueError holding the given text, which names the value and what would be valid) or in the right result
(checked against an independent reference). Nothing may crash with another exception, and nothing may return a
wrong number.

``python tests/test_bad_inputs_lib.py`` prints each case's outcome (good / clear error / crash / silent wrong) and
the counts, so the table can also be run against another version of the library (PYTHONPATH=<its folder>).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from functools import lru_cache

import pytest
import torch


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


Z1, Z2 = torch.randn(6, 8, generator=_g(1)), torch.randn(6, 8, generator=_g(2))
SIGNS = torch.tensor([[0, 1, -1, 1], [1, 0, 1, -1], [-1, 1, 0, 1], [1, -1, 1, 0.0]])  # a float32 S of +-3e38
ONE_PIXEL = torch.rand(2, 3, 8, 8, generator=_g(3))  # float images in [0, 1]


def _naive_nt_xent(z1, z2, tau):
    """Eq. (1) of the paper in float64 with explicit cosine similarities: the reference."""
    z = torch.cat([z1, z2]).double()
    z = z / z.abs().amax(1, keepdim=True)
    z = z / z.norm(dim=1, keepdim=True)
    n = z1.shape[0]
    s = z @ z.T / tau
    s.fill_diagonal_(-math.inf)
    pos = torch.cat([torch.arange(n) + n, torch.arange(n)])
    return (torch.logsumexp(s, 1) - s[torch.arange(2 * n), pos]).mean()


@lru_cache(maxsize=None)
def _clusters(n_train=300, n_test=90, d=8, seed=0):
    """Three separable classes (train features, labels, test features, labels); shared, never modified."""
    g = _g(seed)
    centres = torch.randn(3, d, generator=g) * 3
    y, yt = torch.arange(n_train) % 3, torch.arange(n_test) % 3
    return centres[y] + torch.randn(n_train, d, generator=g), y, centres[yt] + torch.randn(n_test, d, generator=g), yt


@contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    for k in old:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


# ---------------------------------------------------------------- the calls

def loss(*a, **k):
    from simclr_core.nn.loss import nt_xent
    return nt_xent(*a, **k)


def from_similarity(*a):
    from simclr_core.nn.loss import info_nce_from_similarity
    return info_nce_from_similarity(*a)


def queue_loss(*a, **k):
    from simclr_core.nn.queue import nt_xent_with_queue
    return nt_xent_with_queue(*a, **k)


def rank_loss(*a, **k):
    from simclr_core.train.distributed import nt_xent_rank
    return nt_xent_rank(*a, **k)


def queue_keys_after_enqueue(keys):
    from simclr_core.nn.queue import NegativeQueue
    q = NegativeQueue(keys.shape[1], 8)
    q.enqueue(keys)
    return q.keys.norm(dim=1)


def new_queue(dim, size):
    from simclr_core.nn.queue import NegativeQueue
    return NegativeQueue(dim, size)


def new_bank(n, dim, **k):
    from simclr_core.nn.queue import MemoryBank
    return MemoryBank(n, dim, **k)


def init_with(**env):
    from simclr_core.train.distributed import init_distributed
    with _env(**env):
        return init_distributed("cpu")


def batch_augment(x, **cfg):
    from simclr_core.data.augment import AugmentConfig
    from simclr_core.data.fast_augment import BatchAugment
    return BatchAugment(AugmentConfig(**cfg))(x, generator=_g())


def simclr_augment(x, **cfg):
    from simclr_core.data.augment import AugmentConfig, SimCLRAugment
    return SimCLRAugment(AugmentConfig(**cfg))(x)


def fig5(x, names=("crop",), size=None):
    from simclr_core.data.fig5 import compose
    return compose(list(names), size)(x, _g())


def knn(*a, **k):
    from simclr_core.eval.metrics import knn_accuracy
    return knn_accuracy(*a, **k)


def knn_pred(*a, **k):
    from simclr_core.eval.metrics import knn_predict
    return knn_predict(*a, **k)


def probe(*a, **k):
    from simclr_core.eval.metrics import linear_probe
    return linear_probe(*a, max_iter=50, **k)


def classifier_with_labels(labels, num_classes=3):
    from simclr_core.nn.models import small_cnn
    from simclr_core.precision import Precision
    from simclr_core.train.supervised import SupervisedRecipe, train_classifier
    images = torch.randint(0, 256, (len(labels), 1, 8, 8), dtype=torch.uint8, generator=_g())
    return train_classifier(small_cnn(1, (4,)), images, torch.tensor(labels), num_classes,
                            SupervisedRecipe(steps=1, batch_size=4), lambda x, g: x.float() / 255,
                            Precision(torch.device("cpu")), progress=False)


def cnn(*a):
    from simclr_core.nn.models import small_cnn
    return small_cnn(*a)


def head(*a):
    from simclr_core.nn.models import ProjectionHead
    return ProjectionHead(*a)


def schedule(name, *a):
    from simclr_core.train import schedule as s
    return getattr(s, name)(*a)


def diag(name, *a, **k):
    from simclr_core.eval import diagnostics
    return getattr(diagnostics, name)(*a, **k)


# ---------------------------------------------------------------- the table

def _reference_knn(scale, dtype=torch.float32):
    X, y, Xt, yt = _clusters()
    return knn(X.to(dtype) * scale, y, Xt.to(dtype) * scale, yt), knn(X, y, Xt, yt)


def _reference_probe(scale):
    X, y, Xt, yt = _clusters()
    return probe(X.double() * scale, y, Xt.double() * scale, yt), probe(X, y, Xt, yt)


def _one_sample_probe():
    X, y, Xt, yt = _clusters()
    return probe(X[2:3], y[2:3], Xt, yt), float((yt == y[2]).float().mean())  # predicts the one class it saw


def _bool_probe():
    X, y, Xt, yt = _clusters(60, 30)
    return probe(X > 0, y, Xt > 0, yt), probe((X > 0).float(), y, (Xt > 0).float(), yt)


def _scaled(name, scale):
    z1, z2 = Z1.double(), Z2.double()
    args = (z1 * scale,) if name in ("uniformity", "per_dim_std", "effective_rank") else (z1 * scale, z2 * scale)
    ref = (z1,) if len(args) == 1 else (z1, z2)
    return diag(name, *args), diag(name, *ref)


NEEDS_ERROR = [  # (case, call, text the ValueError must hold)
    ("nt_xent tau 1e-39 (NaN)", lambda: loss(Z1, Z2, 1e-39), ">= 0.0001"),
    ("nt_xent tau 1e-38 (inf)", lambda: loss(Z1, Z2, 1e-38), ">= 0.0001"),
    ("nt_xent tau that requires grad", lambda: loss(Z1, Z2, torch.tensor(0.5, requires_grad=True)), "requires grad"),
    ("nt_xent tau of two values", lambda: loss(Z1, Z2, torch.tensor([0.5, 0.1])), "temperature must be"),
    ("nt_xent all-zero embeddings", lambda: loss(torch.zeros(6, 8), torch.zeros(6, 8)), "all zeros"),
    ("nt_xent one zero row", lambda: loss(Z1, torch.cat([Z2[:5], torch.zeros(1, 8)])), "z2 row 5 is all zeros"),
    ("nt_xent fp16 underflow to zero", lambda: loss((Z1 * 1e-10).half(), (Z2 * 1e-10).half()), "float16"),
    ("nt_xent fp16 sub-normal rows", lambda: loss((Z1 * 1e-6).half(), (Z2 * 1e-6).half()), "float16"),
    ("nt_xent bad reduction", lambda: loss(Z1, Z2, 0.5, "avg"), "'avg'"),
    ("info_nce loss beyond float32", lambda: from_similarity(SIGNS * 3e38, [2, 3, 0, 1], 0.01), "overflows torch.float32"),
    ("info_nce tau 1e-39", lambda: from_similarity(torch.zeros(4, 4), [1, 0, 3, 2], 1e-39), ">= 0.0001"),
    ("queue loss with a zero key", lambda: queue_loss(Z1, Z2, torch.zeros(3, 8)), "all-zero key"),
    ("queue loss tau 1e-39", lambda: queue_loss(Z1, Z2, None, 1e-39), ">= 0.0001"),
    ("nt_xent_rank tau 1e-39", lambda: rank_loss(Z1, Z2, 0, 2, 1e-39), ">= 0.0001"),
    ("NegativeQueue of 10**9 keys", lambda: new_queue(128, 10**9), "size=1000000000"),
    ("MemoryBank of 10**9 images", lambda: new_bank(10**9, 128), "n=1000000000"),
    ("MemoryBank.sample(-1)", lambda: new_bank(10, 4).sample(-1), "K (negatives to draw)"),
    ("WORLD_SIZE=abc", lambda: init_with(WORLD_SIZE="abc"), "WORLD_SIZE must be an integer"),
    ("WORLD_SIZE=0", lambda: init_with(WORLD_SIZE="0"), "WORLD_SIZE must be an integer >= 1"),
    ("RANK=abc", lambda: init_with(WORLD_SIZE="2", RANK="abc"), "RANK must be an integer"),
    ("RANK=1 without WORLD_SIZE", lambda: init_with(RANK="1"), "RANK must be an integer in 0..0"),
    ("AugmentConfig(size=100000)", lambda: batch_augment(ONE_PIXEL[:1], size=100000), "1..1024"),
    ("AugmentConfig NaN mean", lambda: batch_augment(ONE_PIXEL, normalize=True, mean=(math.nan,) * 3), "finite"),
    ("BatchAugment NaN images", lambda: batch_augment(torch.full((2, 3, 8, 8), math.nan)), "non-finite"),
    ("BatchAugment images in [-1, 1]", lambda: batch_augment(ONE_PIXEL * 2 - 1), "must be in [0, 1]"),
    ("SimCLRAugment NaN image", lambda: simclr_augment(torch.full((3, 8, 8), math.nan), size=8), "non-finite"),
    ("SimCLRAugment images in [-1, 1]", lambda: simclr_augment(ONE_PIXEL * 2 - 1, size=8), "must be in [0, 1]"),
    ("SimCLRAugment int64 pixels", lambda: simclr_augment(torch.full((3, 8, 8), 300), size=8), "int64"),
    ("fig5 float images in 0..255", lambda: fig5(ONE_PIXEL * 255), "must be in [0, 1]"),
    ("fig5 size 100000", lambda: fig5(ONE_PIXEL, size=100000), "<= 1024"),
    ("knn_predict label >= num_classes", lambda: knn_pred(*_clusters()[:3], num_classes=2), "0..1"),
    ("knn_accuracy label >= num_classes", lambda: knn(*_clusters(), num_classes=2), "0..1"),
    ("linear_probe weight_decay 'a'", lambda: probe(*_clusters(), weight_decay="a"), "'a'"),
    ("linear_probe device 'gpu0'", lambda: probe(*_clusters(), device="gpu0"), "'gpu0'"),
    ("small_cnn widths 100000,100000", lambda: cnn(3, (100000, 100000)), "more than the 268435456"),
    ("ProjectionHead proj_dim 10**9", lambda: head(512, 512, 10**9), "out_dim=1000000000"),
    ("train_classifier label >= num_classes", lambda: classifier_with_labels([0, 1, 2, 5]), "0..2"),
    ("lr_at step -1", lambda: schedule("lr_at", -1, 100, 10, 0.1), "step must be an integer >= 0"),
    ("lr_at warmup 2.5 steps", lambda: schedule("lr_at", 0, 100, 2.5, 0.1), "warmup_steps"),
    ("scaled_lr base 'a'", lambda: schedule("scaled_lr", "a", 256), "'a'"),
    ("alignment of a zero row", lambda: diag("alignment", torch.zeros(4, 3), torch.ones(4, 3)), "all zeros"),
    ("alignment alpha 'a'", lambda: diag("alignment", Z1, Z2, alpha="a"), "'a'"),
    ("uniformity t nan", lambda: diag("uniformity", Z1, t=math.nan), "nan"),
]

NEEDS_VALUE = [  # (case, call returning (got, expected), tolerance)
    ("nt_xent tau 1e-4 (the bound)", lambda: (loss(Z1, Z2, 1e-4), _naive_nt_xent(Z1, Z2, 1e-4)), 1e-4),
    ("nt_xent tau 1e30", lambda: (loss(Z1, Z2, 1e30), torch.tensor(math.log(11.0))), 1e-6),
    ("nt_xent 0-d tensor tau", lambda: (loss(Z1, Z2, torch.tensor(0.2)), _naive_nt_xent(Z1, Z2, 0.2)), 1e-5),
    ("nt_xent embeddings x 1e30", lambda: (loss(Z1 * 1e30, Z2 * 1e30), _naive_nt_xent(Z1, Z2, 0.5)), 1e-5),
    ("nt_xent embeddings x 1e-30", lambda: (loss(Z1 * 1e-30, Z2 * 1e-30), _naive_nt_xent(Z1, Z2, 0.5)), 1e-5),
    ("nt_xent float64 x 1e300", lambda: (loss(Z1.double() * 1e300, Z2.double() * 1e300), _naive_nt_xent(Z1, Z2, 0.5)),
     1e-9),
    ("info_nce S / tau beyond float32", lambda: (from_similarity(SIGNS * 3e38, [1, 0, 3, 2], 0.01),
                                                torch.full((4,), math.log(2.0))), 1e-6),
    ("info_nce float32 S near its max", lambda: (from_similarity(torch.full((2, 2), 1e38).fill_diagonal_(0), [1, 0], 0.5),
                                                torch.zeros(2)), 0.0),
    ("queue keys x 1e30 enqueued", lambda: (queue_keys_after_enqueue(torch.randn(3, 8, generator=_g()) * 1e30),
                                            torch.ones(3)), 1e-6),
    ("knn_accuracy features x 1e30", lambda: _reference_knn(1e30), 0.0),
    ("knn_accuracy float64 x 1e300", lambda: _reference_knn(1e300, torch.float64), 0.0),
    ("knn_accuracy features x 1e-30", lambda: _reference_knn(1e-30), 0.0),
    ("linear_probe one training image", _one_sample_probe, 0.0),
    ("knn_accuracy 0/1 bool features", lambda: (knn(_clusters()[0] > 0, *_clusters()[1:]),
                                               knn((_clusters()[0] > 0).float(), *_clusters()[1:])), 0.0),
    ("linear_probe 0/1 bool features", lambda: _bool_probe(), 0.0),
    ("linear_probe float64 x 1e300", lambda: _reference_probe(1e300), 0.0),
    ("linear_probe features x 1e-30", lambda: _reference_probe(1e-30), 0.0),
    ("uniformity x 1e30", lambda: _scaled("uniformity", 1e30), 1e-9),
    ("alignment x 1e-30", lambda: _scaled("alignment", 1e-30), 1e-9),
    ("per_dim_std x 1e300", lambda: _scaled("per_dim_std", 1e300), 1e-9),
    ("effective_rank x 1e-13", lambda: _scaled("effective_rank", 1e-13), 1e-9),
]


def outcome_of_error_case(call, needle: str) -> str:
    try:
        out = call()
    except ValueError as err:
        return "clear error" if needle in str(err) else f"crash (unhelpful ValueError: {str(err)[:100]})"
    except Exception as err:  # noqa: BLE001 - the table records whatever escaped
        return f"crash ({type(err).__name__}: {str(err)[:100]})"
    return f"silent wrong (returned {out if not isinstance(out, torch.Tensor) else out.flatten()[:3].tolist()})"


def outcome_of_value_case(call, tol: float) -> str:
    try:
        got, want = call()
    except Exception as err:  # noqa: BLE001
        return f"crash ({type(err).__name__}: {str(err)[:100]})"
    got, want = torch.as_tensor(got).double(), torch.as_tensor(want).double()
    if got.shape == want.shape and torch.isfinite(got).all() and torch.allclose(got, want, rtol=tol, atol=tol):
        return "good"
    return f"silent wrong (got {got.flatten()[:3].tolist()}, want {want.flatten()[:3].tolist()})"


@pytest.mark.parametrize("case,call,needle", NEEDS_ERROR, ids=[c[0] for c in NEEDS_ERROR])
def test_a_clear_error(case, call, needle):
    assert outcome_of_error_case(call, needle) == "clear error"


@pytest.mark.parametrize("case,call,tol", NEEDS_VALUE, ids=[c[0] for c in NEEDS_VALUE])
def test_the_right_result(case, call, tol):
    assert outcome_of_value_case(call, tol) == "good"


def test_the_classifier_catches_each_failure():
    """Mutation check of the table's own judge: a wrong value, a crash and an error without the text are caught."""
    assert outcome_of_value_case(lambda: (torch.tensor(1.0), torch.tensor(2.0)), 1e-6).startswith("silent wrong")
    assert outcome_of_value_case(lambda: (torch.tensor(math.nan), torch.tensor(math.nan)), 1e-6).startswith("silent")
    assert outcome_of_error_case(lambda: 1 / 0, "x").startswith("crash (ZeroDivisionError")
    assert outcome_of_error_case(lambda: int("x"), "never there").startswith("crash (unhelpful")
    assert outcome_of_error_case(lambda: 1.0, "x").startswith("silent wrong")


if __name__ == "__main__":
    counts: dict[str, int] = {}
    rows = [(c, outcome_of_error_case(f, n)) for c, f, n in NEEDS_ERROR]
    rows += [(c, outcome_of_value_case(f, t)) for c, f, t in NEEDS_VALUE]
    for case, out in rows:
        kind = out.split(" (")[0]
        counts[kind] = counts.get(kind, 0) + 1
        print(f"{case:<40} {out}")
    print(counts, f"{len(rows)} cases")
