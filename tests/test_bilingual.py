"""Every paragraph a student reads in notebooks/ is in English and in Simplified Chinese, and the Chinese renders clean.

What counts as a counterpart (per markdown cell, parsed with mistune, the Markdown parser nbconvert and Voila use):

* The cell is cut into *blocks*: each paragraph, each item of a list, each block quote. Tables, code blocks and
  display math are not prose and are skipped. Inline math, inline code and link targets are removed before counting.
* A block's English length is its number of Latin words; its Chinese length is its number of CJK ideographs plus
  the Latin words it quotes (terms such as "batch" or "kNN" stay Latin in Chinese prose, see the glossary in
  ``00_start_here``). A block is *English* when it has at least ``MIN_WORDS`` Latin words and fewer CJK ideographs
  than ``RATIO`` times its words; *Chinese* when it has at least ``MIN_CJK`` ideographs; a block with both (a list
  item "question · 问题") that passes the ratio on its own is bilingual by itself.
* Headings cut a cell into sections. Inside a section, every maximal run of English blocks is paired with the run of
  Chinese blocks right after it (or, when nothing follows, an unpaired Chinese run right before it). The pair is
  complete when the Chinese length is at least ``RATIO`` times the English words: a Chinese "summary" that drops
  half of what the English says fails, a translation passes. The translations in the notebooks measure 1.2-2.8
  (median 1.7); the one-paragraph Chinese summaries of whole findings sections measured 0.4-0.8.
* Every decimal and percentage an English block quotes is quoted by a Chinese block of the same cell, so a
  counterpart long enough but without the measurements still fails.
* A heading with English words carries Chinese itself ("Data · 数据") or is followed at once by a heading of the
  same level that does (the two-line titles).

Stray Markdown markers: the Chinese text nodes of the rendered cell hold no literal ``*``, ``_`` or backtick, and
every emphasis delimiter in Chinese prose is *portable*: it has white space, a line end or ASCII punctuation on one
side and no white space on the other. CommonMark counts full-width punctuation (。,:) as punctuation, JupyterLab's
renderer (marked) does not, so ``视为**负样本**。`` renders as bold in one and as asterisks in the other; a portable
delimiter renders the same in both.

The glossary table in ``00_start_here`` names, per concept, the Chinese term the workbook uses and the variants it
avoids; no notebook's markdown may use an avoided variant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mistune
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[01][0-9]_*.ipynb"))
MIN_WORDS = 4  # shorter English (a label such as "Try:") needs no translation of its own
MIN_CJK = 4
RATIO = 1.0  # Chinese length per English word of a complete counterpart

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")
ASCII_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
MARKERS = re.compile(r"[*_`]")
PARSE = mistune.create_markdown(renderer=None, plugins=["math", "table", "strikethrough"])
SKIPPED = {"table", "block_code", "block_math", "block_html", "thematic_break", "blank_line"}
UNCOUNTED = {"inline_math", "codespan", "inline_html"}


@dataclass(frozen=True)
class Block:
    kind: str  # "heading" or "prose"
    text: str  # the visible text, without math and code
    level: int = 0

    @property
    def words(self) -> int:
        return len(LATIN_WORD.findall(self.text))

    @property
    def cjk(self) -> int:
        return len(CJK.findall(self.text))

    @property
    def is_english(self) -> bool:
        return self.words >= MIN_WORDS and self.cjk < RATIO * self.words

    @property
    def is_chinese(self) -> bool:
        return self.cjk >= MIN_CJK

    @property
    def chinese_length(self) -> float:
        """Chinese prose quotes a few Latin terms (counted); a mixed block first pays for its own English."""
        if not self.is_chinese:
            return 0
        return self.cjk + self.words if 3 * self.words <= self.cjk else self.cjk - RATIO * self.words


def _text(tokens) -> str:
    parts = []
    for tok in tokens:
        if tok.get("type") in UNCOUNTED:
            parts.append(" ")
        elif "children" in tok:
            parts.append(_text(tok["children"]))
        else:
            parts.append(tok.get("raw", " ") if tok.get("type") == "text" else " ")
    return "".join(parts)


def blocks(source: str) -> list[Block]:
    """The headings and prose blocks of one markdown cell, in order (see the module docstring)."""
    out: list[Block] = []

    def walk(tokens):
        for tok in tokens:
            kind = tok["type"]
            if kind in SKIPPED:
                continue
            if kind == "heading":
                out.append(Block("heading", _text(tok["children"]), tok["attrs"]["level"]))
            elif kind == "list":
                for item in tok["children"]:
                    out.append(Block("prose", _text(item["children"])))
            elif kind in ("paragraph", "block_quote", "block_text"):
                out.append(Block("prose", _text(tok["children"])))
            else:
                walk(tok.get("children", []))

    walk(PARSE(source))
    return out


def _runs(section: list[Block]) -> list[tuple[str, list[Block]]]:
    """Maximal runs of English ("en") and Chinese ("zh") blocks. A block with both languages counts as Chinese (its
    own English paid first, ``Block.chinese_length``); a neutral block (short English, no Chinese) ends a run."""
    runs: list[tuple[str, list[Block]]] = []
    for b in section:
        tag = "en" if b.is_english else "zh" if b.is_chinese else None
        if tag is None:
            runs.append(("", []))
        elif runs and runs[-1][0] == tag:
            runs[-1][1].append(b)
        else:
            runs.append((tag, [b]))
    return [r for r in runs if r[0]]


def unpaired_english(source: str, one_to_one: bool = False) -> list[str]:
    """The English blocks and headings of a cell without a complete Chinese counterpart (first words of each).

    ``one_to_one`` (the notebooks and the problem sets): a run of English blocks also needs at least as many Chinese blocks after it,
    so a Chinese paragraph deleted between two English ones is found even when the next one is long enough for both."""
    found: list[Block] = []
    bl = blocks(source)
    for k, b in enumerate(bl):
        if b.kind == "heading" and b.words and not b.cjk:
            nxt = bl[k + 1] if k + 1 < len(bl) else None
            if not (nxt and nxt.kind == "heading" and nxt.level == b.level and nxt.cjk):
                found.append(b)
    sections: list[list[Block]] = [[]]
    for b in bl:
        if b.kind == "heading":
            sections.append([])
        else:
            sections[-1].append(b)
    for section in sections:
        runs = _runs(section)
        used = set()
        for k, (tag, run) in enumerate(runs):
            if tag != "en":
                continue
            partner = k + 1 if k + 1 < len(runs) else k - 1 if k > 0 and k - 1 not in used else None
            if partner is None:
                found.extend(run)
                continue
            used.add(partner)
            need = RATIO * sum(b.words for b in run)
            zh = runs[partner][1]
            if sum(b.chinese_length for b in zh) < need or (one_to_one and len(zh) < len(run)):
                found.extend(run)
    return [" ".join(b.text.split()[:8]) for b in found]


def _marker_in_text_nodes(tokens, out: list[str]) -> list[str]:
    for tok in tokens:
        if tok.get("type") == "text" and CJK.search(tok["raw"]) and MARKERS.search(tok["raw"]):
            out.append(tok["raw"].strip())
        _marker_in_text_nodes(tok.get("children", []), out)
    return out


def _outer(c: str) -> bool:
    """A character that makes a delimiter next to it flanking in CommonMark and in marked alike."""
    return c.isspace() or c in ASCII_PUNCT


def _unportable_delimiters(source: str) -> list[str]:
    """Emphasis delimiters in Chinese lines that CommonMark and marked may read differently (module docstring)."""
    bad = []
    for line in source.splitlines():
        if not CJK.search(line) or line.lstrip().startswith("|"):
            continue
        masked = re.sub(r"\$[^$]*\$|`[^`]*`|\]\([^)]*\)", lambda m: "x" * len(m.group()), line)
        masked = re.sub(r"^\s*(?:[*+-]|\d+\.)\s", lambda m: " " * len(m.group()), masked)  # a list bullet
        for m in re.finditer(r"\*+|_+", masked):
            before = masked[m.start() - 1] if m.start() else " "
            after = masked[m.end()] if m.end() < len(masked) else " "
            if m.group()[0] == "_" and before.isalnum() and after.isalnum():
                continue  # snake_case inside a word is never emphasis
            if not ((_outer(before) and not after.isspace()) or (_outer(after) and not before.isspace())):
                bad.append(line[max(0, m.start() - 12):m.end() + 12])
    return bad


def stray_markers(source: str) -> list[str]:
    """Literal *, _ or ` left in rendered Chinese text, and unportable emphasis in Chinese lines."""
    return _marker_in_text_nodes(PARSE(source), []) + _unportable_delimiters(source)


NUMBER = re.compile(r"(?<![\w.])(?:\d+\.\d+|\d+(?=\s?%))")  # decimals and percentages, as prose quotes results


def numbers_without_chinese(source: str) -> list[str]:
    """Decimals and percentages an English block of the cell quotes that no Chinese block of it quotes."""
    prose = [b for b in blocks(source) if b.kind == "prose"]
    zh = {n for b in prose if b.is_chinese for n in NUMBER.findall(b.text)}
    return sorted({n for b in prose if b.is_english for n in NUMBER.findall(b.text)} - zh)


def _markdown_cells(path: Path) -> list[tuple[int, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


def report() -> dict[str, int]:
    """English blocks without a Chinese counterpart, per notebook (``python tests/test_bilingual.py`` prints it)."""
    return {p.stem: sum(len(unpaired_english(s, one_to_one=True)) for _, s in _markdown_cells(p)) for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_english_paragraph_has_a_chinese_counterpart(path):
    """Paragraph by paragraph: a run of English blocks needs as many Chinese blocks after it (``one_to_one``)."""
    missing = [f"cell {i}: {text!r}" for i, s in _markdown_cells(path) for text in unpaired_english(s, one_to_one=True)]
    assert not missing, (f"{path.name}: {len(missing)} English blocks without a complete Chinese counterpart "
                         f"(at least {RATIO} CJK characters per English word, in the blocks right after):\n  "
                         + "\n  ".join(missing))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_stray_markdown_markers_in_chinese(path):
    stray = [f"cell {i}: {t!r}" for i, s in _markdown_cells(path) for t in stray_markers(s)]
    assert not stray, f"{path.name}: Markdown markers that show as text or render differently per renderer:\n  " + "\n  ".join(stray)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_chinese_quotes_the_numbers_of_the_english(path):
    dropped = [f"cell {i}: {n}" for i, s in _markdown_cells(path) for n in numbers_without_chinese(s)]
    assert not dropped, f"{path.name}: numbers the English quotes and the Chinese of the same cell does not: {dropped}"


def glossary() -> list[tuple[str, str, list[str]]]:
    """(English, Chinese, avoided variants) rows of the glossary table in 00_start_here."""
    for _, source in _markdown_cells(ROOT / "notebooks" / "00_start_here.ipynb"):
        if "术语表" not in source:
            continue
        rows, table = [], source[source.index("术语表"):]
        lines = [line.strip() for line in table.splitlines()]
        start = next(k for k, line in enumerate(lines) if line.startswith("|") and set(line) <= set("|-: "))
        for line in lines[start + 1:]:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 3:
                rows.append((cells[0], cells[1], [v.strip() for v in cells[2].split("、") if CJK.search(v)]))
        return rows
    return []


def avoided_variants(source: str, rows) -> list[str]:
    """The variants the glossary avoids that a markdown cell uses (the preferred term itself is no variant:
    困难负样本 contains 难负样本)."""
    found = []
    for en, zh, avoided in rows:
        text = source
        for term in re.findall(r"[\u4e00-\u9fff]+", zh):
            text = text.replace(term, "□")
        found += [f"{v!r} (the glossary says {zh!r} for {en!r})" for v in avoided if v in text]
    return found


def test_the_glossary_is_used_everywhere():
    rows = glossary()
    assert len(rows) >= 20, f"00_start_here has no glossary table (English | 中文 | 不用) of the workbook's terms: {rows}"
    assert any(en.startswith("collapse") and "坍缩" in zh for en, zh, _ in rows), "collapse must be 坍缩"
    used = [f"{path.stem} cell {i}: {v}" for path in NOTEBOOKS for i, source in _markdown_cells(path)
            if not (path.stem.startswith("00") and "术语表" in source)  # the glossary names the variants
            for v in avoided_variants(source, rows)]
    assert not used, "terms the glossary avoids:\n  " + "\n  ".join(used)


def test_an_avoided_variant_is_found():
    rows = [("collapse", "坍缩", ["塌缩"]), ("hard negative", "困难负样本", ["难负样本"])]
    assert avoided_variants("无负样本的训练让 $z$ 完全塌缩。", rows) != []
    assert avoided_variants("完全坍缩;困难负样本得到更大的推力。", rows) == []
    assert avoided_variants("难负样本", rows) != []


# ---------------------------------------------------------------- the checks can fail

EN = ("The loss is small because every negative is at least 0.85 below the positive, and dividing by the "
      "temperature turns that gap into a tiny factor.")
ZH = "损失很小,因为每个负样本都比正样本低至少 0.85,而除以温度会把这个差距变成一个很小的因子,所以分母几乎只剩正样本。"


def test_a_translated_paragraph_passes_and_a_missing_or_partial_one_fails():
    assert unpaired_english(f"## Title · 标题\n\n{EN}\n\n{ZH}\n") == []
    assert unpaired_english(f"{EN}\n\n*{ZH}*\n\n{EN}\n\n{ZH}\n") == []  # interleaved pairs
    assert len(unpaired_english(f"{EN}\n\n{ZH}\n\n{EN}\n")) == 1  # the second English paragraph has none
    assert len(unpaired_english(f"{EN}\n\n{EN}\n\n{EN}\n\n{ZH}\n")) == 3  # one Chinese paragraph cannot carry three
    assert len(unpaired_english(f"{EN}\n\n{ZH[:20]}\n")) == 1  # a summary that drops most of it
    assert len(unpaired_english(f"## Title\n\n{EN}\n\n{ZH}\n")) == 1  # an English-only heading
    assert unpaired_english(f"# Title\n# 标题\n\n- {EN} {ZH}\n") == []  # a bilingual list item, a two-line title
    assert unpaired_english("| a long table row with many English words in it | x |\n|---|---|\n| 1 | 2 |\n") == []
    assert len(unpaired_english(f"{EN}\n\n```\n{ZH}\n```\n")) == 1  # Chinese in a code block is no translation


def test_a_dropped_number_is_found():
    assert numbers_without_chinese(f"{EN}\n\n{ZH}\n") == []  # 0.85 in both
    assert numbers_without_chinese(f"{EN}\n\n{ZH.replace('0.85', '一点')}\n") == ["0.85"]
    assert numbers_without_chinese("Crop alone reaches 33.1% and colour 18.8%.\n\n只裁剪 33.1%,只做颜色变换 18.8%。\n") == []


def test_stray_markers_are_found():
    assert stray_markers("其余视为*负样本。τ=0.1。\n") != []  # a literal asterisk
    assert stray_markers("其余 $(z_i,z_j)$ 视为**负样本**。下一句。\n") != []  # bold against full-width punctuation
    assert stray_markers("*只能使用 batch size = 2 时,**负样本**数量为 0。实际训练会遇到什么问题?*\n") != []
    assert stray_markers("其余 $(z_i,z_j)$ 视为 **负样本**,调用 `nt_xent_rank` 即可。\n") == []
    assert stray_markers("English *only* text with snake_case.\n") == []


if __name__ == "__main__":
    for name, n in report().items():
        print(f"{name:35s} {n}")
