"""The phenomena table: does each phenomenon of the SimCLR paper show in the cached experiments?

Read from the cached results only (fig5.json, small_batch.json, visualize.json, vs_supervised.json, and when they
exist pretraining.json, composition.json, negatives.json and temperature.json; seconds, no training). Every comparison is paired: both
arms of a row were trained with the same seed, so from the same initial weights, on the same images, and probed on
the same test images; the per-seed differences A - B are what the verdict reads (``verdict``, thresholds in
``RULES``). A question the cached runs cannot answer gets a row ``not measured`` with the reason: P1 and P2 at
length, P3 and P5 until ``python -m simclr_core.experiments pretraining composition negatives temperature`` has
written their JSONs
(``OPTIONAL``; their rows are built from the JSON by ``measured_comparisons``).
``python -m simclr_core.experiments phenomena`` writes phenomena.json and the results README's table
(``phenomena_table``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Comparison:
    """One row: A - B per seed in ``file``; ``a`` and ``b`` are key paths into it (ints index lists)."""

    id: str
    phenomenon: str
    comparison: tuple[str, str]  # (English, Chinese)
    metric: str
    file: str
    a: tuple
    b: tuple
    unit: str = "points"  # 'points': accuracies (fractions x 100); 'rank': effective rank as stored
    note: tuple[str, str] = ("", "")


_OPS = (("crop", "crop", "裁剪"), ("cutout", "cutout", "挖空(cutout)"), ("color", "colour", "颜色失真"),
        ("noise", "noise", "噪声"))
_IN = ("in_domain",)
_GRID_NOTE = ("the Figure 5 grid: {steps} steps of {batch} pairs per cell",  # filled in from the result's run
              "图 5 网格:每格 {steps} 步、每步 {batch} 对")
_NEG_NOTE = ("the collapsed run trained 400 steps, SimCLR 1,200: collapse happens within the first few hundred",
             "坍缩的运行训练了 400 步,SimCLR 训练了 1,200 步:坍缩在最初几百步内就会发生")
_SIZE_NOTE = ("in the cached runs fine-tuned and from-scratch classifiers were tested at 16 px, the probes at 28 px",
              "缓存的运行中,微调和从零训练的分类器在 16 像素下测试,探针在 28 像素下测试")
_P7 = {"probe": ("SimCLR linear probe", "SimCLR 线性探针", "SimCLR h (linear probe)", "linear"),
       "fine-tuned": ("SimCLR fine-tuned", "SimCLR 微调", "SimCLR fine-tuned", "top-1")}
COMPARISONS = (
    *(Comparison(f"P1 ({m})", "P1", ("SimCLR vs random init (same network, its initial weights)",
                                     "SimCLR 对比随机初始化(同一网络,其初始权重)"), m, "visualize.json",
                 ("variants", "SimCLR", m), ("variants", "random init", m)) for m in ("knn", "linear")),
    *(Comparison(f"P2 default policy vs random init ({m})", "P2", ("default augmentation policy vs random init",
                                                                  "默认增强策略对比随机初始化"), m,
                 "fig5.json", ("default_policy", m), ("baselines", "random init", m), note=_GRID_NOTE)
      for m in ("knn", "linear")),
    *(Comparison(f"P2 crop+colour vs {en} ({m})", "P2", (f"crop then colour vs {en} alone", f"先裁剪再颜色失真对比单独{zh}"),
                 m, "fig5.json", (m, "crop", "color"), (m, op, op), note=_GRID_NOTE)
      for op, en, zh in _OPS for m in ("knn", "linear")),
    *(Comparison(f"P4 {en} vs SimCLR, small batch ({m})", "P4", (f"{en} vs plain SimCLR at the small batch",
                                                                 f"小 batch 下{zh}对比普通 SimCLR"),
                 m, "small_batch.json", ("variants", key, m), ("variants", "SimCLR, N={small_batch}", m))
      for en, zh, key in (("memory bank", "记忆库", "memory bank (PIRL), N={small_batch}"),
                          ("MoCo queue", "MoCo 队列", "MoCo queue K={queue}, N={small_batch}")) for m in ("knn", "linear")),
    Comparison("P6 h vs z (linear)", "P6", ("probe on h vs on z = g(h), all labels", "在 h 上与在 z = g(h) 上的探针,全部标签"),
               "linear", "vs_supervised.json", (*_IN, "1.0", "SimCLR h (linear probe)"),
               (*_IN, "1.0", "SimCLR z = g(h) (linear probe)")),
    Comparison("P6 head vs no head (linear)", "P6", ("h of a run with a head vs of a run without, all labels",
                                                     "有投影头与无投影头的运行的 h,全部标签"),
               "linear", "vs_supervised.json", (*_IN, "1.0", "SimCLR h (linear probe)"),
               (*_IN, "1.0", "no-head SimCLR h (linear probe)")),
    *(Comparison(f"P7 {what} vs scratch, {pct} labels", "P7", (f"{en} vs supervised from scratch, {pct} of the labels",
                                                               f"{zh}对比从零监督训练,{pct} 的标签"),
                 metric, "vs_supervised.json", (*_IN, frac, key), (*_IN, frac, "supervised from scratch"), note=_SIZE_NOTE)
      for frac, pct in (("0.01", "1 %"), ("0.1", "10 %")) for what, (en, zh, key, metric) in _P7.items()),
    *(Comparison(f"P8 SimCLR vs no negatives ({m})", "P8", ("SimCLR vs the alignment-only run (no negatives)",
                                                           "SimCLR 对比只有对齐项的运行(没有负样本)"),
                 m, "visualize.json", ("variants", "SimCLR", key), ("variants", "collapsed (no negatives)", key),
                 unit, note=_NEG_NOTE)
      for m, key, unit in (("knn", "knn", "points"), ("effective rank of z", "z_effective_rank", "rank"))),
)

NOT_MEASURED = (
    {"id": "P1 a long run", "phenomenon": "P1", "file": "pretraining.json",
     "reason": ("no cached run pretrains longer than the main runs' steps",
                "没有缓存的运行比主要运行的步数训练得更久")},
    {"id": "P2 at the main runs' length", "phenomenon": "P2", "file": "composition.json",
     "reason": ("no cached run trains the single operators and crop then colour as long as the main runs (the "
                "Figure 5 grid trains each cell a few hundred short steps)",
                "没有缓存的运行把单一变换和先裁剪再颜色失真训练得与主要运行一样久(图 5 网格每格只训练几百个短步)")},
    {"id": "P3 more negatives at fixed images per step", "phenomenon": "P3", "file": "negatives.json",
     "reason": ("no cached run varies the negatives an anchor sees at a fixed number of images per step; the cached "
                "N = 128 vs N = 32 comparison (small_batch.json, both 1,200 steps) is confounded: the larger batch "
                "also sees 4x the images",
                "没有缓存的运行在每步图像数固定的情况下改变锚点看到的负样本数;缓存中 N = 128 与 N = 32 的比较"
                "(small_batch.json,都是 1,200 步)是混杂的:大 batch 同时也多看了 4 倍的图像"),
     "confounded": ("small_batch.json", ("variants", "SimCLR, N={large_batch}", "knn"),
                    ("variants", "SimCLR, N={small_batch}", "knn"))},
    {"id": "P5 temperature", "phenomenon": "P5", "file": "temperature.json",
     "reason": ("no cached training run varies tau (notebook 02 measures the loss at several tau, not what a run "
                "trained at each learns)",
                "没有缓存的训练运行改变 tau(笔记本 02 在几个 tau 下测量损失,而不是在每个 tau 下训练得到的表示)")},
)


OPTIONAL = tuple(s["file"] for s in NOT_MEASURED)  # read when present; absent: the row above says why
_BEST_NOTE = ("the best tau is picked by these runs' mean kNN, so its gaps lean slightly optimistic; beating every "
              "other tau places the optimum inside the range",
              "最佳 tau 由这些运行的平均 kNN 选出,因此它的差距略偏乐观;胜过其他每个 tau 说明最优值位于该范围之内")


def _p1(data: dict) -> list[Comparison]:
    """The long run's end vs the same network at its initial weights (experiments.pretraining)."""
    arm, steps = next(iter(data["variants"])), data["steps"]
    text = (f"SimCLR pretrained {steps:,} steps vs random init (same network, its initial weights)",
            f"SimCLR 预训练 {steps:,} 步对比随机初始化(同一网络,其初始权重)")
    return [Comparison(f"P1 {steps:,} steps ({m})", "P1", text, m, "pretraining.json", ("variants", arm, m),
                       ("baselines", "random init", m)) for m in ("knn", "linear")]


def _p2(data: dict) -> list[Comparison]:
    """At the main runs' length (experiments.composition): the default policy and crop then colour vs random init,
    crop then colour vs each of its operators alone."""
    steps, n = data["run"]["steps"], data["run"]["batch_size"]
    note = (f"{steps:,} steps of {n} pairs per arm, the main runs' length; the default policy is the main run",
            f"每组 {steps:,} 步、每步 {n} 对,与主要运行一样长;默认策略就是主要运行")
    pairs = [("default policy", ("baselines", "random init"), "default augmentation policy vs random init",
              "默认增强策略对比随机初始化"),
             ("crop then color", ("baselines", "random init"), "crop then colour vs random init",
              "先裁剪再颜色失真对比随机初始化"),
             ("crop then color", ("variants", "crop"), "crop then colour vs crop alone", "先裁剪再颜色失真对比单独裁剪"),
             ("crop then color", ("variants", "color"), "crop then colour vs colour alone",
              "先裁剪再颜色失真对比单独颜色失真")]
    return [Comparison(f"P2 at length: {en} ({m})", "P2", (en, zh), m, "composition.json", ("variants", a, m),
                       (*b, m), note=note) for a, b, en, zh in pairs for m in ("knn", "linear")]


def _p3(data: dict) -> list[Comparison]:
    """The most negatives vs the fewest, at the same N images per step: m = largest vs m = smallest."""
    big, small, n = max(data["groups"]), min(data["groups"]), data["batch_size"]
    text = (f"{2 * big - 2} vs {2 * small - 2} negatives per anchor (NT-Xent within groups of {big} vs {small} pairs), "
            f"both N = {n} images per step", f"每个锚点 {2 * big - 2} 对 {2 * small - 2} 个负样本(在 {big} 对与 {small} 对"
            f"的组内计算 NT-Xent),每步都是 N = {n} 张图像")
    return [Comparison(f"P3 m={big} vs m={small} ({m})", "P3", text, m, "negatives.json",
                       ("variants", f"m={big}", m), ("variants", f"m={small}", m)) for m in ("knn", "linear")]


def _p5(data: dict) -> list[Comparison]:
    """The tau of the best mean kNN vs every other tau (where the optimum lies), both metrics."""
    names = {f"tau={t:g}": t for t in data["temperatures"]}
    best = max(names, key=lambda k: data["variants"][k]["knn"]["mean"])
    return [Comparison(f"P5 {best} vs {other} ({m})", "P5", (f"pretrained at the best {best} vs at {other}",
                                                             f"在最佳的 {best} 下预训练对比在 {other} 下"),
                       m, "temperature.json", ("variants", best, m), ("variants", other, m), note=_BEST_NOTE)
            for other in names if other != best for m in ("knn", "linear")]


def measured_comparisons(results: dict) -> list[Comparison]:
    """The rows of P1 and P2 at length, P3 and P5 from pretraining.json, composition.json, negatives.json and
    temperature.json, for those of them in ``results``."""
    build = {"pretraining.json": _p1, "composition.json": _p2, "negatives.json": _p3, "temperature.json": _p5}
    return [c for name in OPTIONAL if name in results for c in build[name](results[name])]


def _r(x: float) -> float:
    """Stored to 4 decimals: the cached accuracies are float32 values, digits past these are noise."""
    return round(float(x), 4)


def _resolve(data: dict, path) -> list:
    """``path`` made concrete for this result: {small_batch}, {large_batch} and {queue} filled in from it (07's
    keys name its batch sizes), and a name indexing a list read as a Figure-5 operator (row: 1st op, column: 2nd).
    KeyError when the result has no such entry."""
    sizes = {k: data[k] for k in ("small_batch", "large_batch") if k in data}
    if "queue_sizes" in data.get("preset", {}):
        sizes["queue"] = max(data["preset"]["queue_sizes"])
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
    return {"id": c.id, "phenomenon": c.phenomenon, "comparison": c.comparison[0], "comparison_zh": c.comparison[1],
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
