"""Notebook 08 (Q5): distances of positive and negative pairs, collapse diagnostics, t-SNE and UMAP maps, the
closest pairs of different images; SimCLR vs random init vs a deliberately collapsed run, over seeds."""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from .common import Preset, default_views, histogram, load_data, meta, probe_of, views_of_test
from .short_run import ShortRun, build_model, pretrain_short
from .stats import over_seeds

@dataclass(frozen=True)
class Variant:
    """One encoder of notebook 08: ``label`` names it in the results; the flags say how it is made."""

    label: str
    trained: bool = True  # False: the run's random init, never trained
    negatives: bool = True  # False: -cos(z1, z2) only, for which a constant map is optimal (collapse)


VARIANTS = (Variant("SimCLR"), Variant("random init", trained=False), Variant("collapsed (no negatives)", negatives=False))
VISUALIZE_VARIANTS = tuple(v.label for v in VARIANTS)
DIAGNOSTICS = ("alignment", "uniformity", "mean_per_dim_std", "effective_rank")


def _model(variant: Variant, preset: Preset, train, seed: int, device, dataset: str, cache):
    run = ShortRun(steps=preset.steps, batch_size=preset.batch_size, widths=preset.widths, seed=seed)
    if not variant.trained:
        return build_model(train.images.shape[1], run, dataset).to(device), None
    if not variant.negatives:
        run = replace(run, negatives=False, steps=preset.collapse_steps)
    return pretrain_short(train, None, run, device, progress=False, dataset=dataset, cache=cache)[0], run


def _maps(h: torch.Tensor) -> dict:
    """2-d t-SNE and UMAP maps of features h (n, d); None for a collapsed encoder (one point, nothing to map)."""
    if float(h.std(0).max()) <= 1e-6:
        return {"tsne": None, "umap": None}
    from sklearn.manifold import TSNE
    from umap import UMAP

    x = h.numpy()
    tsne = TSNE(2, init="pca", perplexity=30, random_state=0).fit_transform(x)
    with warnings.catch_warnings():  # a fixed random_state makes UMAP single-threaded, and it says so
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        um = UMAP(n_neighbors=15, min_dist=0.1, random_state=0).fit_transform(x)
    return {k: [[round(float(u), 2), round(float(v), 2)] for u, v in xy] for k, xy in (("tsne", tsne), ("umap", um))}


def _closest_pairs(h: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, top: int = 8) -> tuple[list, float]:
    """The ``top`` most similar pairs of different images in h (each pair once) with both classes and their cosine
    similarity in pixel space too, and the fraction of images whose nearest neighbour shares their class."""
    hn = F.normalize(h, dim=1)
    sim = hn @ hn.T  # (n, n)
    sim.fill_diagonal_(-2)
    nn_sim, nn_idx = sim.max(1)  # (n,)
    same = float((labels[nn_idx] == labels).float().mean())
    px = F.normalize(images.flatten(1).float(), dim=1)  # (n, C*H*W)
    pairs, seen = [], set()
    for i in nn_sim.argsort(descending=True).tolist():
        j = int(nn_idx[i])
        if frozenset((i, j)) in seen:
            continue
        seen.add(frozenset((i, j)))
        pairs.append({"i": i, "j": j, "cos_h": round(float(nn_sim[i]), 4), "cos_pixels": round(float(px[i] @ px[j]), 4),
                      "class_i": int(labels[i]), "class_j": int(labels[j])})
        if len(pairs) == top:
            break
    return pairs, same


def run_visualize(preset: Preset, dataset: str = "fashion-mnist", device="cpu", progress: bool = True,
                  cache=None) -> dict:
    """Per variant and seed: kNN / linear probe, the diagnostics of two views of the test set in h and z, and
    nearest-neighbour class agreement; for the first seed the distance histograms, the maps and the closest pairs."""
    from tqdm.auto import tqdm

    from ..eval.diagnostics import positive_negative_distances, summary
    from ..eval.probe import features

    t0 = time.time()
    train, test = load_data(preset.n_train, preset.n_test, dataset)
    views = default_views(dataset)
    n_map = min(preset.embed_points, len(test))
    out = {}
    bar = tqdm(total=len(VARIANTS) * len(preset.seeds), disable=not progress, desc="08 (variants x seeds)")
    for variant in VARIANTS:
        rows, first = [], {}
        for seed in preset.seeds:
            model, run = _model(variant, preset, train, seed, device, dataset, cache)
            scores = probe_of(model.encoder, train, test, device)
            h1, h2, z1, z2 = views_of_test(model, test, views, device)
            h = features(model.encoder, test.images[:n_map], device)  # (n, d) un-augmented, as the probe sees them
            pairs, same = _closest_pairs(h, test.images[:n_map], test.targets[:n_map])
            row = {**scores, "nn_same_class": same}
            for space, (a, b) in (("h", (h1, h2)), ("z", (z1, z2))):
                pos, neg = positive_negative_distances(a[:2000], b[:2000])
                d = summary(a, b)
                row.update({f"{space}_{k}": d[k] for k in DIAGNOSTICS})
                row[f"{space}_pos_median"], row[f"{space}_neg_median"] = float(pos.median()), float(neg.median())
                if not first.get(space):
                    first[space] = {"pos_hist": histogram(pos), "neg_hist": histogram(neg), "D": d["D"],
                                    "one_over_sqrt_D": d["one_over_sqrt_D"]}
            if "maps" not in first:
                first["maps"] = _maps(h) if variant.negatives else {"tsne": None, "umap": None}
                first["closest_pairs"] = pairs
                first["run"] = asdict(run) if run is not None else None
            rows.append(row)
            bar.update()
        out[variant.label] = {**over_seeds(rows), **first}
    bar.close()
    return {**meta("visualize", preset, dataset, device, t0), "labels": test.targets[:n_map].tolist(),
            "classes": list(test.classes), "hist_range": [0.0, 2.0], "variants": out}

