"""The phenomena table: does each phenomenon of the SimCLR paper show in the cached experiments?

Read from the cached results only (fig5.json, small_batch.json, visualize.json, vs_supervised.json, and when they
exist pretraining.json, composition.json, negatives.json and temperature.json; seconds, no training). Every
comparison is paired: both arms of a row were trained with the same seed, so from the same initial weights, on
the same images, and probed on the same test images; the per-seed differences A - B are what the verdict reads
(``verdict``, thresholds in ``RULES``). The rows themselves are ``phenomena_rows``: a question the cached runs
cannot answer gets a row ``not measured`` with the reason (P1 and P2 at length, P3 and P5 until
``python -m simclr_core.experiments pretraining composition negatives temperature`` has written their JSONs).
``python -m simclr_core.experiments phenomena`` writes phenomena.json and the results README's table
(``phenomena_table``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .phenomena_rows import COMPARISONS, NOT_MEASURED, OPTIONAL, Comparison, measured_comparisons
from .stats import mean_sd

__all__ = ["Threshold", "RULES", "MIN_SEEDS", "PHENOMENA", "Comparison", "COMPARISONS", "NOT_MEASURED", "verdict",
           "read_results", "compute_phenomena", "measured_comparisons", "OPTIONAL", "FILE", "METRICS_ZH", "VERDICTS_ZH"]

FILE = "phenomena.json"
MIN_SEEDS = 3  # the fewest paired differences that give an sd worth comparing a mean with


@dataclass(frozen=True)
class Threshold:
    value: float
    reason: str


# The verdict rule and its minimum effects: one table, each with its reason.
RULES = {
    "sd_factor": Threshold(2.0, "shown when the paired mean exceeds 2 sd of the paired differences (the seed-to-"
                                "seed spread of the effect itself), contradicts when it is below -2 sd"),
    "min_effect_points": Threshold(1.0, "accuracies, in percentage points: two standard errors of the test-sample "
                                        "noise of a paired difference (about 0.45 points when two models disagree "
                                        "on 10 % of the 5,000 test images); a smaller gap could come from another "
                                        "test sample whatever the seeds say, so it neither shows nor contradicts"),
    "min_effect_rank": Threshold(1.0, "effective rank (exp of the entropy of the normalised singular values): one "
                                      "dimension of the embedding"),
}


def verdict(diffs, min_effect: float, sd_factor: float = RULES["sd_factor"].value) -> str:
    """'shown' (mean > sd_factor x sd and > min_effect), 'contradicts' (mean < -sd_factor x sd and < -min_effect)
    or 'not shown', for at least MIN_SEEDS paired differences (sd: the sample sd, n - 1)."""
    diffs = [float(d) for d in diffs]
    if len(diffs) < MIN_SEEDS:
        raise ValueError(f"a verdict needs at least {MIN_SEEDS} paired differences (one per seed), got {len(diffs)}")
    ms = mean_sd(diffs)
    m, sd = ms["mean"], ms["sd"]
    if m > sd_factor * sd and m > min_effect:
        return "shown"
    if m < -sd_factor * sd and m < -min_effect:
        return "contradicts"
    return "not shown"


PHENOMENA = {  # id: (English, Chinese)
    "P1": ("pretraining beats random init", "预训练胜过随机初始化"),
    "P2": ("augmentation composition (Figure 5)", "数据增强的组合(图 5)"),
    "P3": ("more negatives help", "更多负样本有帮助"),
    "P4": ("memory bank / MoCo queue vs plain SimCLR at a small batch", "小 batch 下记忆库 / MoCo 队列与普通 SimCLR 对比"),
    "P5": ("temperature", "温度"),
    "P6": ("projection head: h vs z, head vs no head", "投影头:h 与 z,有头与无头"),
    "P7": ("few labels", "少量标签"),
    "P8": ("no negatives: collapse", "没有负样本:坍缩"),
}
METRICS_ZH = {"knn": "kNN", "linear": "线性探针", "top-1": "top-1", "effective rank of z": "z 的有效秩"}
VERDICTS_ZH = {"shown": "已显示", "not shown": "未显示", "contradicts": "相反", "not measured": "未测量"}

def _r(x: float) -> float:
    """Stored to 4 decimals: the cached accuracies are float32 values, digits past these are noise."""
    return round(float(x), 4)


def _sizes(data: dict) -> dict:
    """07's batch and queue sizes, by which its keys and comparisons name its arms."""
    sizes = {k: data[k] for k in ("small_batch", "large_batch") if k in data}
    if "queue_sizes" in data.get("preset", {}):
        sizes["queue"], sizes["small_queue"] = max(data["preset"]["queue_sizes"]), min(data["preset"]["queue_sizes"])
    return sizes


def _resolve(data: dict, path) -> list:
    """``path`` made concrete for this result: {small_batch}, {large_batch}, {queue} and {small_queue} filled in from
    it (07's keys name its batch and queue sizes), and a name indexing a list read as a Figure-5 operator (row: 1st
    op, column: 2nd). KeyError when the result has no such entry."""
    sizes = _sizes(data)
    obj, out = data, []
    for key in path:
        if isinstance(key, str) and "{" in key:
            key = key.format(**sizes)
        if isinstance(obj, list) and isinstance(key, str):
            if key not in data.get("ops", []):
                raise KeyError(f"operator {key!r} (this result has {data.get('ops')})")
            key = data["ops"].index(key)
        obj = obj[key]
        out.append(key)
    return out


def _get(data: dict, path):
    for key in path:
        data = data[key]
    return data


def _values(ms, unit: str) -> list[float]:
    return [(100.0 if unit == "points" else 1.0) * float(v) for v in ms["values"]]


def _row(c: Comparison, results: dict) -> dict:
    data = results[c.file]
    try:
        pa, pb = _resolve(data, c.a), _resolve(data, c.b)
    except KeyError as err:  # e.g. the smoke preset's grid of two operators
        missing = f"{c.file} has no {err.args[0]}"
        return {"id": c.id, "phenomenon": c.phenomenon, "verdict": "not measured", "reason": missing,
                "reason_zh": missing}
    a, b = _values(_get(data, pa), c.unit), _values(_get(data, pb), c.unit)
    if len(a) != len(b):
        raise ValueError(f"{c.id}: the arms have {len(a)} and {len(b)} seeds in {c.file}; a paired row needs both")
    diffs = [x - y for x, y in zip(a, b)]
    ms = mean_sd(diffs)  # fewer than MIN_SEEDS (the smoke preset's 2): numbers without a verdict
    min_effect = RULES["min_effect_rank" if c.unit == "rank" else "min_effect_points"].value
    en, zh = (text.format(**_sizes(data)) if "{" in text else text for text in c.comparison)
    return {"id": c.id, "phenomenon": c.phenomenon, "comparison": en, "comparison_zh": zh,
            "metric": c.metric, "unit": c.unit,
            "source": {"file": c.file, "a": pa, "b": pb}, "seeds": list(data["preset"]["seeds"]),
            "a": [_r(v) for v in a], "b": [_r(v) for v in b], "differences": [_r(d) for d in diffs],
            "mean": _r(ms["mean"]), "sd": _r(ms["sd"]), "min_effect": min_effect,
            "verdict": verdict(diffs, min_effect) if len(diffs) >= MIN_SEEDS else "not measured",
            "note": _filled(c.note[0], data), "note_zh": _filled(c.note[1], data)}


def _filled(note: str, data: dict) -> str:
    """A note with {steps} and {batch} of the result's run."""
    run = data.get("run", {})
    return note.format(steps=f"{run.get('steps', 0):,}", batch=run.get("batch_size")) if "{" in note else note


def _not_measured(spec: dict, results: dict) -> dict:
    row = {"id": spec["id"], "phenomenon": spec["phenomenon"], "verdict": "not measured", "reason": spec["reason"][0],
           "reason_zh": spec["reason"][1]}
    if "confounded" in spec:
        file, a, b = spec["confounded"]
        data = results[file]
        try:
            a, b = _resolve(data, a), _resolve(data, b)
        except KeyError:
            return row
        diffs = [x - y for x, y in zip(_values(_get(data, a), "points"), _values(_get(data, b), "points"))]
        ms = mean_sd(diffs)
        row["confounded"] = {"file": file, "a": a, "b": b, "differences": [_r(d) for d in diffs],
                             "mean": _r(ms["mean"]), "sd": _r(ms["sd"])}
    return row


def read_results(folder) -> dict:
    """{file name: parsed JSON} of the cached results the table reads, with a clear error for a missing one; the
    ``OPTIONAL`` ones only when present."""
    files = sorted({c.file for c in COMPARISONS} | {s["confounded"][0] for s in NOT_MEASURED if "confounded" in s})
    out = {}
    for name in files:
        path = Path(folder) / name
        if not path.is_file():
            raise ValueError(f"{path} is missing: the phenomena table reads the cached {', '.join(files)} "
                             f"(python -m simclr_core.experiments all writes them)")
        out[name] = json.loads(path.read_text())
    for name in OPTIONAL:
        if (Path(folder) / name).is_file():
            out[name] = json.loads((Path(folder) / name).read_text())
    return out


def compute_phenomena(folder) -> dict:
    """The phenomena table of the cached results in ``folder``: its rule, one row per comparison, then the rows
    of what the cached runs do not measure, ordered by phenomenon."""
    results = read_results(folder)
    rows = [_row(c, results) for c in (*COMPARISONS, *measured_comparisons(results))]
    rows += [_not_measured(s, results) for s in NOT_MEASURED if s["file"] not in results]
    rows.sort(key=lambda r: r["phenomenon"])  # stable: the order of COMPARISONS within a phenomenon
    return {"experiment": "phenomena", "command": "python -m simclr_core.experiments phenomena",
            "reads": sorted(results), "rule": {k: {"value": t.value, "reason": t.reason} for k, t in RULES.items()},
            "phenomena": {k: {"en": en, "zh": zh} for k, (en, zh) in PHENOMENA.items()}, "rows": rows}
