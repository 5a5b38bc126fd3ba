"""phenomena.json as the bilingual table of notebooks/results/README.md, and the file writer behind
``python -m simclr_core.experiments phenomena``.

The README's table is generated from the JSON alone (``markdown``), between two marker lines, so that it cannot
drift from the numbers (``tests/test_phenomena.py`` regenerates it in both languages).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..train.runfolder import write_text_atomic
from .phenomena import FILE, METRICS_ZH, VERDICTS_ZH, compute_phenomena

__all__ = ["markdown", "for_notebook", "readme_block", "update_readme", "write_phenomena", "BEGIN", "END"]

BEGIN = "<!-- phenomena table: generated from phenomena.json by python -m simclr_core.experiments phenomena -->"
END = "<!-- end of phenomena table -->"

_HEAD = {
    "en": ("| phenomenon | comparison (A vs B) | metric | A - B per seed | mean ± sd | verdict |",
           "paired over seeds {seeds}; accuracies in percentage points"),
    "zh": ("| 现象 | 比较(A 对 B) | 指标 | 每个种子的 A - B | 均值 ± 标准差 | 结论 |",
           "按种子 {seeds} 配对;准确率以百分点计"),
}


def _num(x: float, unit: str) -> str:
    text = f"{x:+.1f}" if unit == "points" else f"{x:+.2f}"
    return "+" + text[1:] if float(text) == 0 else text  # -0.0 is a rounded 0


def _cells(row: dict, lang: str) -> list[str]:
    zh = lang == "zh"
    if "reason" not in row and row["verdict"] == "not measured":  # numbers without a verdict: too few seeds
        few = f"只有 {len(row['differences'])} 个种子" if zh else f"only {len(row['differences'])} seeds"
        row = {**row, "verdict": "not measured", "reason": few, "reason_zh": few, "note": few, "note_zh": few}
    if "reason" in row:
        reason = row["reason_zh" if zh else "reason"]
        if "confounded" in row:
            c = row["confounded"]
            nums = f"kNN {_num(c['mean'], 'points')} ± {c['sd']:.1f}"
            reason += f"(混杂的比较:{nums})" if zh else f" (confounded comparison: {nums})"
        verdict = VERDICTS_ZH["not measured"] + ":" if zh else "not measured: "
        return ["—", "—", "—", "—", verdict + reason]
    comparison = row["comparison_zh" if zh else "comparison"]
    note = row["note_zh" if zh else "note"]
    if note:
        comparison += f" ({note})" if not zh else f"({note})"
    metric = METRICS_ZH[row["metric"]] if zh else row["metric"]
    diffs = ", ".join(_num(d, row["unit"]) for d in row["differences"])
    sd = f"{row['sd']:.1f}" if row["unit"] == "points" else f"{row['sd']:.2f}"
    verdict = VERDICTS_ZH[row["verdict"]] if zh else row["verdict"]
    return [comparison, metric, diffs, f"{_num(row['mean'], row['unit'])} ± {sd}", verdict]


def markdown(table: dict, lang: str, only: tuple[str, ...] | None = None) -> str:
    """The table in ``lang`` ('en' or 'zh'): one line per row of phenomena.json, in its order; ``only``: the rows
    of these phenomena (e.g. ``("P5",)``, what a notebook shows beside its own experiment)."""
    if lang not in _HEAD:
        raise ValueError(f"lang must be one of {tuple(_HEAD)}, got {lang!r}")
    known = set(table["phenomena"])
    if only is not None and not set(only) <= known:
        raise ValueError(f"only: unknown phenomena {sorted(set(only) - known)}; valid: {sorted(known)}")
    rows = [r for r in table["rows"] if only is None or r["phenomenon"] in only]
    head, caption = _HEAD[lang]
    seeds = sorted({s for r in rows for s in r.get("seeds", [])})
    lines = [caption.format(seeds=", ".join(map(str, seeds))) + ":", "", head, "|---" * 6 + "|"]
    for row in rows:
        name = table["phenomena"][row["phenomenon"]][lang]
        lines.append(f"| {row['phenomenon']} {name} | " + " | ".join(_cells(row, lang)) + " |")
    return "\n".join(lines)


def for_notebook(folder, only: tuple[str, ...], id_prefix: str = "") -> str:
    """The rows of phenomena ``only`` (those whose id starts with ``id_prefix``) from ``folder``/phenomena.json, in
    English and then in Chinese: what a notebook shows beside its own experiment."""
    table = json.loads((Path(folder) / FILE).read_text(encoding="utf-8"))
    table = {**table, "rows": [r for r in table["rows"] if r["id"].startswith(id_prefix)]}
    return markdown(table, "en", only) + "\n\n" + markdown(table, "zh", only)


def readme_block(table: dict) -> str:
    """The README's block: the English table, then the Chinese, between the marker lines."""
    rule = table["rule"]
    k, pts, rank = rule["sd_factor"]["value"], rule["min_effect_points"]["value"], rule["min_effect_rank"]["value"]
    en = (f"Verdict: **shown** when the paired mean exceeds {k:g} sd of the paired differences and the minimum "
          f"effect ({pts:g} point of accuracy, {rank:g} of effective rank); **contradicts** when it is below -{k:g} sd "
          f"and below minus the minimum effect; **not shown** otherwise. The reasons are in phenomena.json (`rule`).")
    zh = (f"结论:配对均值超过配对差值标准差的 {k:g} 倍且超过最小效应(准确率 {pts:g} 个百分点,有效秩 {rank:g})时为"
          f"**已显示**;低于 -{k:g} 倍标准差且低于负的最小效应时为**相反**;其余为**未显示**。理由见 phenomena.json(`rule`)。")
    return "\n\n".join([BEGIN, en, markdown(table, "en"), zh, markdown(table, "zh"), END])


def update_readme(path, table: dict) -> None:
    """Replace the block between the markers of the README at ``path`` (append it when there is none)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = readme_block(table)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    write_text_atomic(path, text)


def write_phenomena(folder) -> Path:
    """phenomena.json in ``folder`` from the cached results there, and the table of its README.md."""
    folder = Path(folder)
    table = compute_phenomena(folder)
    path = folder / FILE
    write_text_atomic(path, json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    update_readme(folder / "README.md", table)
    return path
