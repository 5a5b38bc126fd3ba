"""Notebook 08 (Q5): distances of positive and negative pairs, collapse diagnostics, t-SNE maps."""

from __future__ import annotations

import time
from dataclasses import asdict

import torch.nn.functional as F

from .common import Preset, ShortRun, build_model, default_views, histogram, knn_of, load_data, meta, pretrain_short, views_of_test


VISUALIZE_VARIANTS = {
    "SimCLR": dict(),
    "SimCLR, N=2 (two negatives per anchor)": dict(batch_size=2),
    "no negatives (alignment only)": dict(negatives=False),
    "random init (no training)": None,
}


def run_visualize(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True) -> dict:
    """Notebook 08 (Q5): distances of positive vs negative pairs, collapse diagnostics, t-SNE maps."""
    from sklearn.manifold import TSNE

    from ..eval.diagnostics import positive_negative_distances, summary
    from ..eval.features import extract_features

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    views = default_views(dataset, train.images.shape[-1])
    n_tsne = min(preset.tsne_points, len(test))
    out = {}
    for name, spec in VISUALIZE_VARIANTS.items():
        run = ShortRun(steps=preset.steps, widths=preset.widths, **{"batch_size": preset.batch_size, **(spec or {})})
        if spec is None:
            model = build_model(train.images.shape[1], run, dataset).to(device)
        else:
            model, _ = pretrain_short(train, views, run, device, progress=progress, dataset=dataset)
        h1, h2, z1, z2 = views_of_test(model, test, views, device)
        res = {"run": asdict(run) if spec else None, "knn": knn_of(model.encoder, train, test, device)}
        for space, (a, b) in (("h", (h1, h2)), ("z", (z1, z2))):
            pos, neg = positive_negative_distances(a[:2000], b[:2000])
            res[space] = {**summary(a, b), "pos_hist": histogram(pos), "neg_hist": histogram(neg),
                          "pos_median": float(pos.median()), "neg_median": float(neg.median())}
        h = extract_features(model.encoder, test.images[:n_tsne], 1024, device)  # (n, d) un-augmented
        if float(h.std(0).max()) > 1e-6:
            xy = TSNE(2, init="pca", perplexity=30, random_state=0).fit_transform(h.numpy())
            res["tsne"] = [[round(float(u), 2), round(float(v), 2)] for u, v in xy]
        else:  # a fully collapsed encoder: every point is the same, nothing to embed
            res["tsne"] = None
        # Q5.2: the closest pairs of DIFFERENT test images in h, and how often nearest neighbours share a class
        hn = F.normalize(h, dim=1)
        sim = hn @ hn.T  # (n, n)
        sim.fill_diagonal_(-2)
        nn_sim, nn_idx = sim.max(1)  # (n,)
        res["nn_same_class"] = float((test.targets[:n_tsne][nn_idx] == test.targets[:n_tsne]).float().mean())
        top = nn_sim.topk(8).indices
        res["closest_pairs"] = [[int(i), int(nn_idx[i]), round(float(nn_sim[i]), 4)] for i in top]
        out[name] = res
    return {**meta("visualize", preset, dataset, device, t0), "labels": test.targets[:n_tsne].tolist(),
            "classes": list(test.classes), "hist_range": [0.0, 2.0], "variants": out}
