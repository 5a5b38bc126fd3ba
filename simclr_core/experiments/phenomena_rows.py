"""What the phenomena table compares: one ``Comparison`` per row, the rows built from the optional experiments'
JSONs (``measured_comparisons``), and what stays ``not measured`` while a JSON is absent (``NOT_MEASURED``).
The rule that turns a row's paired differences into a verdict, and the reading of the results, are
``experiments.phenomena``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .small_batch import BANK_REFRESH
from .vs_supervised import LABELS_PER_CLASS

__all__ = ["Comparison", "COMPARISONS", "NOT_MEASURED", "OPTIONAL", "measured_comparisons"]


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
_REFRESHED = f"memory bank re-encoded every {BANK_REFRESH} steps, N={{small_batch}}"  # experiments.small_batch
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
    *(Comparison(f"P4 re-encoded bank vs {short}, small batch ({m})", "P4",
                 (f"memory bank re-encoded every {BANK_REFRESH} steps vs {en} at the small batch",
                  f"小 batch 下每 {BANK_REFRESH} 步重新编码的记忆库对比{zh}"),
                 m, "small_batch.json", ("variants", _REFRESHED, m), ("variants", key, m))
      for short, en, zh, key in (("bank", "the plain memory bank", "普通记忆库", "memory bank (PIRL), N={small_batch}"),
                                 ("SimCLR", "plain SimCLR", "普通 SimCLR", "SimCLR, N={small_batch}"))
      for m in ("knn", "linear")),
    *(Comparison(f"P4 small bank vs bank, small batch ({m})", "P4",
                 ("memory bank with {small_queue:,} vs {queue:,} extra negatives at the small batch",
                  "小 batch 下有 {small_queue:,} 个与 {queue:,} 个额外负样本的记忆库对比"),
                 m, "small_batch.json", ("variants", "memory bank (PIRL) K={small_queue}, N={small_batch}", m),
                 ("variants", "memory bank (PIRL), N={small_batch}", m)) for m in ("knn", "linear")),
    Comparison("P6 h vs z (linear)", "P6", ("probe on h vs on z = g(h), all labels", "在 h 上与在 z = g(h) 上的探针,全部标签"),
               "linear", "vs_supervised.json", (*_IN, "all", "SimCLR h (linear probe)"),
               (*_IN, "all", "SimCLR z = g(h) (linear probe)")),
    Comparison("P6 head vs no head (linear)", "P6", ("h of a run with a head vs of a run without, all labels",
                                                     "有投影头与无投影头的运行的 h,全部标签"),
               "linear", "vs_supervised.json", (*_IN, "all", "SimCLR h (linear probe)"),
               (*_IN, "all", "no-head SimCLR h (linear probe)")),
    *(Comparison(f"P7 {what} vs scratch, {k} per class", "P7",
                 (f"{en} vs supervised from scratch, {k} labelled image{'s' if k > 1 else ''} per class",
                  f"{zh}对比从零监督训练,每类 {k} 张有标签图像"),
                 metric, "vs_supervised.json", (*_IN, str(k), key), (*_IN, str(k), "supervised from scratch"))
      for k in LABELS_PER_CLASS if k is not None for what, (en, zh, key, metric) in _P7.items()),
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
