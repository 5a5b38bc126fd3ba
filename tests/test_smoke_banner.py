"""Smoke mode says it is smoke: in a smoke run (SIMCLR_SMOKE=1) every results cell of notebooks 05-10 starts with
the banner of ``simclr_core.teaching.smoke``, and the smoke site says so on top of every page and above the prose
that interprets results; outside smoke mode the banner shows nothing and the site is unmarked.

The executed notebooks are those of the session's one smoke build of the site (``conftest.smoke_executed``)."""

import importlib.util
import json
import re
from pathlib import Path
from unittest import mock

import nbformat
import pytest

from simclr_core.teaching import smoke

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["05_cifar10_pretrain_probe", "06_augmentation_ablation", "07_small_batches",
             "08_visualizing_representations", "09_simclr_vs_supervised", "10_distributed"]
# cells whose figures or numbers are the same in a smoke run and in the full run, so they get no banner; named by a
# fragment of their code, with the reason
SAME_IN_SMOKE = {
    "05_cifar10_pretrain_probe": {'shipped.probe["results"]': "the shipped encoder's recorded full probe (probe.json)"},
    "06_augmentation_ablation": {"ex.compose([name])": "a gallery of the operators, not a measurement"},
    "07_small_batches": {"for_notebook(RESULTS": "the cached phenomena table (phenomena.json), not this run's"},
    "08_visualizing_representations": {"for_notebook(RESULTS": "the cached phenomena table (phenomena.json)"},
    "10_distributed": {"def simulate(loss_of_rank, K)": "exact float64 losses and gradients, no training"},
}
PERCENT = re.compile(r"\d%")


def _is_banner(output) -> bool:
    return output.get("output_type") == "display_data" and smoke.CSS_CLASS in str(output.get("data", {}).get("text/html", ""))


def _shows_results(output) -> bool:
    """A figure, a displayed table (Markdown or HTML), or a printed percentage."""
    if _is_banner(output):
        return False
    if output.get("output_type") == "stream":
        return bool(PERCENT.search(output.get("text", "")))
    data = output.get("data", {})
    return any(k in data for k in ("image/png", "image/svg+xml", "text/markdown", "text/html"))


def unbannered_results(nb, same_in_smoke: dict[str, str] | None = None) -> list[str]:
    """The code cells of an executed notebook that show results without the banner as their first output
    (``same_in_smoke``: code fragment -> why that cell needs none)."""
    bad, same_in_smoke = [], same_in_smoke or {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or any(fragment in cell.source for fragment in same_in_smoke):
            continue
        outputs = cell.get("outputs", [])
        if any(_shows_results(o) for o in outputs) and not _is_banner(outputs[0]):
            bad.append(f"cell {i} ({cell.source.strip().splitlines()[0][:60]!r})")
    return bad


# ---- the library function


@pytest.mark.parametrize("value, expected", [(None, False), ("", False), ("0", False), ("1", True), (" 1 ", True)])
def test_is_smoke_reads_simclr_smoke(value, expected):
    env = {} if value is None else {"SIMCLR_SMOKE": value}
    assert smoke.is_smoke(env) is expected


@pytest.mark.parametrize("value", ["true", "yes", "2", "on"])
def test_is_smoke_names_a_bad_value(value):
    with pytest.raises(ValueError, match=rf"SIMCLR_SMOKE='{value}'.*use 1"):
        smoke.is_smoke({"SIMCLR_SMOKE": value})


def test_outside_smoke_mode_the_banner_shows_nothing():
    with mock.patch("IPython.display.display") as display:
        for env in ({}, {"SIMCLR_SMOKE": "0"}):
            assert smoke.smoke_banner(env) is None
            assert smoke.show_smoke_banner(env) is None
    display.assert_not_called()


def test_in_smoke_mode_the_banner_is_shown_in_both_languages():
    with mock.patch("IPython.display.display") as display:
        assert smoke.show_smoke_banner({"SIMCLR_SMOKE": "1"}) is None  # nothing more under the banner
    (banner,), _ = display.call_args
    page = banner._repr_html_()
    assert smoke.CSS_CLASS in page and "these numbers mean nothing" in page.lower() and "没有任何意义" in page
    assert "mean nothing" in repr(banner) and "没有任何意义" in repr(banner)  # a terminal's text/plain


def test_the_environment_is_read_when_called():
    with mock.patch.dict("os.environ", {"SIMCLR_SMOKE": "1"}):
        assert smoke.smoke_banner() is not None
    with mock.patch.dict("os.environ", {"SIMCLR_SMOKE": "0"}):
        assert smoke.smoke_banner() is None


# ---- the prose that interprets results


def _markdown(source, *tags):
    return nbformat.v4.new_markdown_cell(source, metadata={"tags": list(tags)} if tags else {})


def test_marked_prose_opens_with_the_note_under_its_heading():
    nb = nbformat.v4.new_notebook(cells=[_markdown("\n## 4. What the measurement shows\nSimCLR wins.", smoke.PROSE_TAG),
                                         _markdown("**Why h beats z.** Invariance.", smoke.PROSE_TAG, "other"),
                                         _markdown("## 1. Data\nNot about results."), _cell("x = 1")])
    before = [c.source for c in nb.cells]
    assert smoke.mark_results_prose(nb) == 2
    first, second = nb.cells[0].source, nb.cells[1].source
    assert first == "\n## 4. What the measurement shows\n\n" + smoke.PROSE_NOTE + "SimCLR wins."
    assert second == smoke.PROSE_NOTE + before[1]
    assert [c.source for c in nb.cells[2:]] == before[2:]  # untagged cells and code cells are left alone
    assert smoke.mark_results_prose(nb) == 2 and nb.cells[0].source == first  # marking twice changes nothing
    assert "full run" in smoke.PROSE_NOTE and "完整运行" in smoke.PROSE_NOTE


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_prose_that_interprets_results_is_tagged(name):
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if smoke.PROSE_TAG in c.metadata.get("tags", [])]
    assert tagged and all(c.cell_type == "markdown" for c in tagged), (
        f"{name}: tag the markdown cells that interpret its results {smoke.PROSE_TAG!r} (the smoke site marks them)")


def _site_conf(monkeypatch, value: str):
    monkeypatch.setenv("SIMCLR_SMOKE", value)
    spec = importlib.util.spec_from_file_location("site_conf", ROOT / "site" / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    app = mock.Mock()
    conf.setup(app)
    return conf, [c.args for c in app.connect.call_args_list]


def test_the_site_configuration_marks_a_smoke_build_only(monkeypatch):
    conf, hooks = _site_conf(monkeypatch, "1")
    assert conf.html_theme_options["announcement"] == smoke.SMOKE_NOTICE_HTML
    assert hooks == [("source-read", conf._mark_results_prose)]
    nb = nbformat.v4.new_notebook(cells=[_markdown("## Results\ntext", smoke.PROSE_TAG)])
    source = [json.dumps(nb)]
    conf._mark_results_prose(None, "notebooks/06_augmentation_ablation", source)
    assert smoke.PROSE_CSS_CLASS in json.loads(source[0])["cells"][0]["source"]
    conf, hooks = _site_conf(monkeypatch, "0")
    assert "announcement" not in conf.html_theme_options and hooks == []


# ---- the checker, on hand-made notebooks: it must catch a results cell without the banner


def _cell(source, *outputs):
    return nbformat.v4.new_code_cell(source, outputs=list(outputs))


BANNER = nbformat.v4.new_output("display_data", data={"text/html": smoke.SmokeBanner()._repr_html_(), "text/plain": "!!!"})
FIGURE = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
TABLE = nbformat.v4.new_output("display_data", data={"text/markdown": "| a |\n|---|\n| 1 |", "text/plain": "<Markdown>"})
PERCENT_LINE = nbformat.v4.new_output("stream", name="stdout", text="SimCLR kNN 12.5%\n")
PLAIN_LINE = nbformat.v4.new_output("stream", name="stdout", text="device=cpu smoke=True\n")


def test_the_checker_accepts_bannered_results_and_result_free_cells():
    nb = nbformat.v4.new_notebook(cells=[_cell("setup()", PLAIN_LINE), _cell("plot()", BANNER, FIGURE),
                                         _cell("table()", BANNER, PLAIN_LINE, TABLE), _cell("x = 1")])
    assert unbannered_results(nb) == []


@pytest.mark.parametrize("outputs", [(FIGURE,), (TABLE,), (PERCENT_LINE,), (PLAIN_LINE, BANNER, FIGURE)],
                         ids=["figure", "table", "percentage", "banner-not-first"])
def test_the_checker_catches_results_without_the_banner_first(outputs):
    nb = nbformat.v4.new_notebook(cells=[_cell("setup()", PLAIN_LINE), _cell("results()", *outputs)])
    assert unbannered_results(nb) == ["cell 1 ('results()')"]
    assert unbannered_results(nb, {"results()": "listed as the same in smoke"}) == []


# ---- the smoke build: the notebooks as it executed them, and its pages


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_results_cell_of_a_smoke_run_starts_with_the_banner(name, smoke_executed):
    nb = smoke_executed(name)
    missing = unbannered_results(nb, SAME_IN_SMOKE.get(name, {}))
    assert not missing, f"{name}: results without the smoke banner first (call show_smoke_banner()): {missing}"
    calls = sum(c.source.count("show_smoke_banner()") for c in nb.cells if c.cell_type == "code")
    shown = sum(_is_banner(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert calls >= 2 and shown == calls, f"{name}: {calls} calls of show_smoke_banner(), {shown} banners shown"


@pytest.mark.slow
def test_the_smoke_site_says_so_on_every_page(smoke_site):
    info = json.loads((smoke_site / "html" / "build_info.json").read_text())
    if info["mode"] != "smoke":
        pytest.skip("SIMCLR_SITE_BUILD names a full build")
    for page in info["pages"]:
        text = (smoke_site / "html" / page).read_text(encoding="utf-8")
        assert f"{smoke.CSS_CLASS}-page" in text, f"{page}: no smoke notice on top"
    for name in NOTEBOOKS:
        text = (smoke_site / "html" / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
        assert f'class="{smoke.CSS_CLASS}"' in text, f"{name}.html shows no smoke banner above its results"
        assert smoke.PROSE_CSS_CLASS in text, f"{name}.html: the prose that interprets results is not marked"
