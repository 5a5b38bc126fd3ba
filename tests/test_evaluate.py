"""kNN and linear probe against independent references (a naive loop, scikit-learn)."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from simclr_core.eval.features import extract_features, raw_pixel_features
from simclr_core.eval.metrics import knn_accuracy, knn_predict, linear_probe


def blobs(n, d=16, C=4, spread=1.5, seed=0):
    """n samples around C fixed class centres (the same centres for every seed: train and test share them)."""
    centres = torch.randn(C, d, generator=torch.Generator().manual_seed(1234)) * spread
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def naive_knn(train, ytr, test, k, t, C):
    """Wu et al. 2018's weighted vote, one query at a time with Python loops."""
    preds = []
    for q in test:
        sims = [float(q @ x) / (float(q.norm()) * float(x.norm())) for x in train]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = [0.0] * C
        for i in order:
            votes[int(ytr[i])] += math.exp(sims[i] / t)
        preds.append(max(range(C), key=lambda c: votes[c]))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.1), (20, 0.5), (200, 0.1)])
def test_knn_matches_naive_loop(k, t):
    Xtr, ytr = blobs(120, d=6, spread=0.7, seed=1)
    Xte, yte = blobs(40, d=6, spread=0.7, seed=2)
    pred = knn_predict(Xtr, ytr, Xte, k=k, t=t, num_classes=4, chunk=7)
    ref = naive_knn(Xtr, ytr, Xte, min(k, 120), t, 4)
    assert torch.equal(pred, ref)
    assert knn_accuracy(Xtr, ytr, Xte, yte, k=k, t=t) == pytest.approx(float((ref == yte).float().mean()))


def test_linear_probe_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    Xtr, ytr = blobs(600, d=20, C=5, spread=0.6, seed=3)
    Xte, yte = blobs(300, d=20, C=5, spread=0.6, seed=4)
    wd = 1e-2
    acc = linear_probe(Xtr, ytr, Xte, yte, weight_decay=wd)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    # same objective: mean CE + wd/2 ||W||^2  <=>  sklearn's C = 1 / (wd * n)
    clf = LogisticRegression(C=1 / (wd * 600), max_iter=2000, tol=1e-8).fit(((Xtr - mu) / sd).numpy(), ytr.numpy())
    ref = clf.score(((Xte - mu) / sd).numpy(), yte.numpy())
    assert 0.4 < ref < 0.99  # a problem where the probe is neither trivial nor hopeless
    assert abs(acc - ref) <= 0.01


def test_linear_probe_separable_data_is_perfect_and_chance_on_noise():
    Xtr, ytr = blobs(400, d=8, C=3, spread=10, seed=5)
    Xte, yte = blobs(200, d=8, C=3, spread=10, seed=5)
    assert linear_probe(Xtr, ytr, Xte, yte) == 1.0
    g = torch.Generator().manual_seed(0)
    noise_acc = linear_probe(torch.randn(400, 8, generator=g), torch.randint(0, 3, (400,), generator=g),
                             torch.randn(3000, 8, generator=g), torch.randint(0, 3, (3000,), generator=g))
    assert abs(noise_acc - 1 / 3) < 0.05


def test_extract_features_eval_mode_and_scaling():
    enc = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    enc.train()
    with torch.no_grad():
        enc[1].running_mean.fill_(0.3)
        enc[1].running_var.fill_(2.0)
    x = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    h = extract_features(enc, x, batch_size=3)
    assert enc.training  # restored
    enc.eval()
    with torch.no_grad():
        ref = enc(x.float() / 255)
        ref_norm = enc((x.float() / 255 - 0.5) / 0.25)
    torch.testing.assert_close(h, ref)
    torch.testing.assert_close(extract_features(enc, x, mean=(0.5,) * 3, std=(0.25,) * 3), ref_norm)
    assert raw_pixel_features(x).shape == (10, 192)


def test_bad_inputs_raise_value_errors():
    X, y = blobs(10)
    with pytest.raises(ValueError, match="train_labels"):
        knn_accuracy(X, y[:5], X, y)
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(X, y, X, y, k=0)
    with pytest.raises(ValueError, match="differ in width"):
        linear_probe(X, y, X[:, :3], y)
    with pytest.raises(ValueError, match="uint8"):
        extract_features(nn.Flatten(), torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("t", [1e-4, 1e-3, 0.01, 0.1, 1.0, 100.0])
def test_knn_vote_is_stable_for_every_temperature(t):
    """exp(sim / t) overflowed for t below about 0.011 (chance accuracy); the vote now subtracts the row maximum."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 5
    y = torch.arange(300) % 3
    x = centres[y] + torch.randn(300, 16, generator=g)
    assert knn_accuracy(x[:200], y[:200], x[200:], y[200:], k=20, t=t) > 0.95


def test_knn_small_t_is_the_nearest_neighbour_vote():
    """As t -> 0 the weighted vote becomes the nearest neighbour's label (a closed form to compare with)."""
    g = torch.Generator().manual_seed(1)
    bank, labels = torch.randn(50, 8, generator=g), torch.randint(0, 5, (50,), generator=g)
    q = torch.randn(30, 8, generator=g)
    nn1 = labels[(torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T).argmax(1)]
    assert torch.equal(knn_predict(bank, labels, q, k=10, t=1e-6, num_classes=5), nn1)
