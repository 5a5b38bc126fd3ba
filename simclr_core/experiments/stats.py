"""Numbers over seeds: every result of notebooks 06-09 is a mean +- sd over the preset's seeds, next to the same
network at random initialisation and a probe on raw pixels (``baselines``). ``fmt`` writes a result the way the
notebooks quote it; ``markdown_table`` writes a table of them; ``differs`` says whether two results are apart by
more than their noise."""

from __future__ import annotations

import math

__all__ = ["mean_sd", "over_seeds", "fmt", "differs", "markdown_table", "baselines"]


def mean_sd(values) -> dict:
    """{"mean", "sd", "values"}: the sample standard deviation (n - 1); sd 0 for a single (deterministic) value."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("mean_sd needs at least one value, got none")
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return {"mean": m, "sd": sd, "values": v}


def over_seeds(rows: list[dict]) -> dict:
    """[{metric: value} per seed] -> {metric: mean_sd}."""
    if not rows:
        raise ValueError("over_seeds needs one row per seed, got none")
    return {k: mean_sd([r[k] for r in rows]) for k in rows[0]}


def fmt(ms: dict, scale: float = 100.0, digits: int = 1) -> str:
    """'78.8 ± 0.4' (accuracies as percentages by default); a single deterministic value without the ±."""
    m = f"{scale * ms['mean']:.{digits}f}"
    return m if len(ms["values"]) == 1 else f"{m} ± {scale * ms['sd']:.{digits}f}"


def differs(a: dict, b: dict) -> int:
    """+1 / -1 when a's mean is above / below b's by more than twice the larger sd (and by more than 0.5 points
    of accuracy for deterministic values), 0 when the difference is inside the noise."""
    gap = a["mean"] - b["mean"]
    noise = max(2 * max(a["sd"], b["sd"]), 0.005)
    return 0 if abs(gap) <= noise else (1 if gap > 0 else -1)


def markdown_table(rows: dict, columns: dict, bold_best: bool = True, scale: float = 100.0, digits: int = 1) -> str:
    """rows: {row name: {column key: mean_sd}}; columns: {column key: header}. The best mean of each column is
    bold, and so is every entry inside the noise of it."""
    best = {}
    for c in columns:
        cells = [r[c] for r in rows.values() if c in r]
        best[c] = max(cells, key=lambda ms: ms["mean"]) if cells else None
    lines = ["| | " + " | ".join(columns.values()) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, r in rows.items():
        cells = []
        for c in columns:
            if c not in r:
                cells.append("")
                continue
            text = fmt(r[c], scale, digits)
            cells.append(f"**{text}**" if bold_best and differs(r[c], best[c]) == 0 else text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baselines(train, test, preset, dataset: str, device, run) -> dict:
    """{"random init": {"knn", "linear"}, "raw pixels": {"knn", "linear"}} as mean_sd: the network of ``run``
    untrained (one initialisation per seed) and the un-learned representation x itself, under the same protocol
    as every trained encoder (``common.probe_of``)."""
    from dataclasses import replace

    from .common import probe_of
    from .short_run import build_model

    rand = []
    for seed in preset.seeds:
        model = build_model(train.images.shape[1], replace(run, seed=seed), dataset).to(device)
        rand.append(probe_of(model.encoder, train, test, device))
    raw = probe_of(None, train, test, device)  # None: raw pixels
    return {"random init": over_seeds(rand), "raw pixels": {k: mean_sd([v]) for k, v in raw.items()}}
