"""The problem sets are in both languages, as the notebooks are (tests/test_bilingual.py holds the checks and says
what counts as a Chinese counterpart): every English paragraph of a question, a hint, a model answer or a mark
scheme has its Chinese paragraph, the Chinese quotes the same numbers, renders without stray Markdown markers and
uses the glossary's terms. Checked on the nbgrader source (solutions/, with the model answers and mark schemes) and
on the released notebook (exercises/, what students open).

Every mark scheme says that an answer in Chinese or in English is marked the same, and lists its points in both.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tests import test_bilingual as tb

ROOT = Path(__file__).resolve().parent.parent
PROBLEM_SETS = ["ps1_similarity_matrix", "ps2_temperature", "ps3_batch_size", "ps4_applications"]
# the problem sets with answers graded by hand, whose model answers and mark schemes are markdown (ps1's answers are
# all code, graded by the trusted checks; its model answer is the solution code)
WRITTEN = ["ps2_temperature", "ps3_batch_size", "ps4_applications"]
VERSIONS = {"source": "solutions", "released": "exercises"}
CASES = [(ps, v) for ps in PROBLEM_SETS for v in VERSIONS]
IDS = [f"{ps}-{v}" for ps, v in CASES]

# nbgrader's own markers: instructions to nbgrader, stripped on release, never read as prose
NBGRADER_MARKER = re.compile(r"(?m)^\s*(?:#+\s*(?:BEGIN|END) SOLUTION|=+\s*(?:BEGIN|END) MARK SCHEME\s*=+)\s*$")
EITHER_LANGUAGE_EN = re.compile(r"\b(?:Chinese or (?:in )?English|English or (?:in )?Chinese)\b")
EITHER_LANGUAGE_ZH = re.compile(r"中文或英文|英文或中文|中英文")


def _path(ps: str, version: str) -> Path:
    return ROOT / VERSIONS[version] / ps / f"{ps}.ipynb"


def _markdown_cells(path: Path) -> list[tuple[int, str, dict]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, NBGRADER_MARKER.sub("", c.source), c.metadata.get("nbgrader", {}))
            for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


@pytest.mark.parametrize("ps,version", CASES, ids=IDS)
def test_every_english_paragraph_has_a_chinese_counterpart(ps, version):
    path = _path(ps, version)
    missing = [f"cell {i}: {text!r}" for i, s, _ in _markdown_cells(path)
               for text in tb.unpaired_english(s, one_to_one=True)]
    assert not missing, (f"{path.relative_to(ROOT)}: {len(missing)} English blocks without a complete Chinese "
                         f"counterpart (a Chinese block per English block, right after it, at least {tb.RATIO} CJK "
                         "characters per English word):\n  " + "\n  ".join(missing))


@pytest.mark.parametrize("ps,version", CASES, ids=IDS)
def test_no_stray_markdown_markers_in_chinese(ps, version):
    path = _path(ps, version)
    stray = [f"cell {i}: {t!r}" for i, s, _ in _markdown_cells(path) for t in tb.stray_markers(s)]
    assert not stray, (f"{path.relative_to(ROOT)}: Markdown markers that show as text or render differently per "
                       "renderer:\n  " + "\n  ".join(stray))


@pytest.mark.parametrize("ps,version", CASES, ids=IDS)
def test_the_chinese_quotes_the_numbers_of_the_english(ps, version):
    path = _path(ps, version)
    dropped = [f"cell {i}: {n}" for i, s, _ in _markdown_cells(path) for n in tb.numbers_without_chinese(s)]
    assert not dropped, f"{path.relative_to(ROOT)}: numbers the English quotes and the Chinese does not: {dropped}"


@pytest.mark.parametrize("ps,version", CASES, ids=IDS)
def test_the_glossary_terms_are_used(ps, version):
    rows = tb.glossary()
    assert rows, "no glossary in notebooks/00_start_here.ipynb"
    path = _path(ps, version)
    used = [f"cell {i}: {v}" for i, s, _ in _markdown_cells(path) for v in tb.avoided_variants(s, rows)]
    assert not used, f"{path.relative_to(ROOT)}: terms the glossary avoids:\n  " + "\n  ".join(used)


@pytest.mark.parametrize("ps", WRITTEN)
def test_model_answers_and_mark_schemes_are_in_both_languages(ps):
    manual = [(i, s, m) for i, s, m in _markdown_cells(_path(ps, "source")) if m.get("grade") and m.get("solution")]
    assert manual, f"{ps} has no manually graded answer"
    for i, s, m in manual:
        where = f"{ps} cell {i} ({m['grade_id']})"
        for label in ("**Model answer.**", "**参考答案。**", "**Mark scheme (", "**评分标准("):
            assert label in s, f"{where}: no {label!r}"
        scheme_en = s[s.index("**Mark scheme ("):s.index("**评分标准(")]  # the Chinese follows the English
        scheme_zh = s[s.index("**评分标准("):]
        assert EITHER_LANGUAGE_EN.search(scheme_en), f"{where}: the mark scheme does not say either language is accepted"
        assert EITHER_LANGUAGE_ZH.search(scheme_zh), f"{where}: 评分标准没有说明中文或英文作答均可"


def test_one_to_one_finds_a_chinese_paragraph_deleted_between_two_english_ones():
    en2 = tb.EN + " The same holds for every anchor of the batch."
    zh2 = tb.ZH + "这对 batch 中的每个 anchor 都成立,所以整个 batch 的平均损失同样很小。"
    full = f"{tb.EN}\n\n{tb.ZH}\n\n{en2}\n\n{zh2}\n"
    assert tb.unpaired_english(full, one_to_one=True) == []
    mutated = f"{tb.EN}\n\n{en2}\n\n{zh2}\n"
    assert tb.unpaired_english(mutated) == []  # the second Chinese paragraph is long enough for both
    assert len(tb.unpaired_english(mutated, one_to_one=True)) == 2


def _paragraphs(source: str) -> list[str]:
    return re.split(r"\n\s*\n", source)


@pytest.mark.parametrize("ps", PROBLEM_SETS)
def test_deleting_any_chinese_paragraph_is_found(ps):
    """Not vacuous: each Chinese paragraph that follows an English one is needed, in every cell of the source."""
    tried = 0
    for i, s, _ in _markdown_cells(_path(ps, "source")):
        paras = _paragraphs(s)
        for k in range(1, len(paras)):
            here, before = tb.blocks(paras[k]), tb.blocks(paras[k - 1])
            if not (here and before and all(b.kind == "prose" and b.is_chinese and not b.is_english for b in here)
                    and all(b.is_english for b in before)):
                continue
            mutated = "\n\n".join(paras[:k] + paras[k + 1:])
            found = tb.unpaired_english(mutated, one_to_one=True)
            assert found, f"{ps} cell {i}: deleting {paras[k][:40]!r} goes unnoticed"
            tried += 1
    assert tried >= 5, f"{ps}: only {tried} Chinese paragraphs found"
