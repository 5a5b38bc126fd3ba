"""The phenomena table (notebooks/results/phenomena.json) is what the cached results say, the results README
shows it in English and Chinese, and the verdict rule is the stated one."""

import json
import re
from pathlib import Path

import pytest

from simclr_core.experiments.phenomena import (COMPARISONS, PHENOMENA, RULES, compute_phenomena,
                                               measured_comparisons, read_results, verdict)
from simclr_core.experiments.phenomena_table import BEGIN, END, for_notebook, markdown, readme_block, update_readme

RESULTS = Path(__file__).resolve().parents[1] / "notebooks" / "results"


@pytest.fixture(scope="module")
def table():
    return json.loads((RESULTS / "phenomena.json").read_text())


def test_the_table_is_recomputed_from_the_cached_results(table):
    assert compute_phenomena(RESULTS) == table


def test_every_phenomenon_has_a_row_and_every_row_is_paired_over_three_seeds(table):
    assert {r["phenomenon"] for r in table["rows"]} == set(PHENOMENA) == {f"P{i}" for i in range(1, 9)}
    results = read_results(RESULTS)
    for row in table["rows"]:
        if row["verdict"] == "not measured":
            assert row["reason"] and row["reason_zh"]
            continue
        assert row["seeds"] == [0, 1, 2] == results[row["source"]["file"]]["preset"]["seeds"]
        assert row["differences"] == pytest.approx([a - b for a, b in zip(row["a"], row["b"])], abs=2e-4)
        assert row["verdict"] == verdict(row["differences"], row["min_effect"])


def test_the_readme_shows_the_table_in_both_languages(table):
    text = (RESULTS / "README.md").read_text(encoding="utf-8")
    assert readme_block(table) in text, "README.md's table is stale: python -m simclr_core.experiments phenomena"
    en, zh = markdown(table, "en"), markdown(table, "zh")
    rows = [r for r in table["rows"] if r["verdict"] != "not measured"]
    for lang, md, verdicts in (("en", en, {"shown", "not shown", "contradicts"}),
                               ("zh", zh, {"已显示", "未显示", "相反"})):
        lines = [line for line in md.splitlines() if line.startswith("| P")]
        assert len(lines) == len(table["rows"]), lang
        for row, line in zip(table["rows"], lines):
            assert line.startswith(f"| {row['phenomenon']} "), (lang, line)
            if row["verdict"] == "not measured":
                assert "not measured" in line or "未测量" in line
                continue
            sd = f"{row['sd']:.1f}" if row["unit"] == "points" else f"{row['sd']:.2f}"
            assert f" ± {sd} |" in line and line.rstrip(" |").rsplit("| ", 1)[1] in verdicts, (lang, line)
    # the same numbers in both languages, row by row
    nums = [re.findall(r"[+-]\d+\.\d+", line) for line in en.splitlines() if line.startswith("| P")]
    assert nums == [re.findall(r"[+-]\d+\.\d+", line) for line in zh.splitlines() if line.startswith("| P")]
    assert len(rows) == len(COMPARISONS) + len(measured_comparisons(read_results(RESULTS)))  # + P3, P5 when run


def test_the_readme_block_is_replaced_not_appended(tmp_path, table):
    readme = tmp_path / "README.md"
    readme.write_text("# results\n\nprose\n", encoding="utf-8")
    update_readme(readme, table)
    update_readme(readme, table)
    text = readme.read_text(encoding="utf-8")
    assert text.count(BEGIN) == text.count(END) == 1 and text.startswith("# results\n\nprose\n")


def _around(mean: float, sd: float) -> list[float]:
    """Three paired differences with this mean and sample sd."""
    return [mean - sd, mean, mean + sd]


@pytest.mark.parametrize("diffs,expected", [
    (_around(2.05, 1.0), "shown"),  # mean just above 2 sd
    (_around(1.95, 1.0), "not shown"),  # just below
    (_around(-2.05, 1.0), "contradicts"),
    (_around(-1.95, 1.0), "not shown"),
    (_around(0.9, 0.1), "not shown"),  # far beyond 2 sd, but below the minimum effect of 1 point
    (_around(-0.9, 0.1), "not shown"),
    (_around(1.1, 0.1), "shown"),
    ([3.0, 3.0, 3.0], "shown"),  # no spread at all
])
def test_the_verdict_rule_on_hand_made_numbers(diffs, expected):
    assert verdict(diffs, min_effect=1.0) == expected


def test_a_mutated_rule_fails_the_hand_made_numbers():
    """Mutation check: 1.9 or 2.1 sd, or the population sd (n), would give another verdict on these numbers."""
    assert RULES["sd_factor"].value == 2.0
    assert verdict(_around(1.95, 1.0), 1.0, sd_factor=1.9) == "shown" != verdict(_around(1.95, 1.0), 1.0)
    assert verdict(_around(2.05, 1.0), 1.0, sd_factor=2.1) == "not shown" != verdict(_around(2.05, 1.0), 1.0)
    population_sd = (2 / 3) ** 0.5  # of _around(m, 1.0): 2 x 0.816 < 1.95, so an n-denominator sd would say shown
    assert 1.95 > 2 * population_sd and verdict(_around(1.95, 1.0), 1.0) == "not shown"


def test_a_verdict_needs_three_seeds():
    with pytest.raises(ValueError, match="at least 3 paired differences"):
        verdict([5.0, 5.1], min_effect=1.0)


def test_the_rule_has_reasons():
    assert all(t.reason and t.value > 0 for t in RULES.values())


def test_a_smaller_result_gives_rows_without_verdicts_not_an_error(tmp_path):
    """A preset with two seeds or two Figure-5 operators (smoke) still gets a table: those rows are 'not measured'."""
    for name in ("fig5", "small_batch", "visualize", "vs_supervised"):
        data = json.loads((RESULTS / f"{name}.json").read_text())
        if name == "fig5":
            data["ops"] = ["crop", "cutout"]
        if name == "visualize":
            for v in data["variants"].values():
                for ms in (x for x in v.values() if isinstance(x, dict) and "values" in x):
                    ms["values"] = ms["values"][:2]
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    rows = {r["id"]: r for r in compute_phenomena(tmp_path)["rows"]}
    assert rows["P2 crop+colour vs crop (knn)"]["verdict"] == "not measured"
    assert "operator 'color'" in rows["P2 crop+colour vs crop (knn)"]["reason"]
    assert rows["P1 (knn)"]["verdict"] == "not measured" and len(rows["P1 (knn)"]["differences"]) == 2
    assert rows["P6 h vs z (linear)"]["verdict"] == "shown"
    assert "only 2 seeds" in markdown(compute_phenomena(tmp_path), "en")


def test_a_notebook_shows_the_rows_of_its_phenomena_only(table):
    lines = [line for line in markdown(table, "en", only=("P5",)).splitlines() if line.startswith("| P")]
    assert len(lines) == sum(r["phenomenon"] == "P5" for r in table["rows"]) > 0
    assert all(line.startswith("| P5 ") for line in lines)
    with pytest.raises(ValueError, match=r"unknown phenomena \['P9'\]; valid: \['P1', "):
        markdown(table, "zh", only=("P9",))


def test_a_notebook_block_holds_the_chosen_rows_in_both_languages(table):
    block = for_notebook(RESULTS, ("P2",), id_prefix="P2 at length")
    en, zh = block.split("\n\n按种子")
    wanted = [r for r in table["rows"] if r["id"].startswith("P2 at length")]
    assert 0 < len(wanted) < sum(r["phenomenon"] == "P2" for r in table["rows"])
    for part, lang in ((en, "en"), ("按种子" + zh, "zh")):
        lines = [line for line in part.splitlines() if line.startswith("| P2 ")]
        assert len(lines) == len(wanted)
        assert (table["phenomena"]["P2"][lang] in lines[0])
    assert for_notebook(RESULTS, ("P5",)).count("| P5 ") == 2 * sum(r["phenomenon"] == "P5" for r in table["rows"])
