"""Figures are legible where they are shown: the explorers' figures and those every notebook (01-10) draws.

JupyterLab 4 / Notebook 7 show an image at its own width up to about ``DISPLAY_WIDTH_PX`` (950 px) and scale a
wider one down, text included. Every figure is checked for

(a) a PNG at most ``MAX_PNG_WIDTH`` (1000) px wide,
(b) its smallest text (tick labels, legends, titles, annotations) >= ``MIN_TEXT_PX`` (10) px on screen: the font
    size in px at the figure's dpi, times display width / PNG width when the browser scales the image down,
(c) no "Glyph ... missing from font(s)" warning for Chinese text once the CJK fallback font is in use,
(d) no legend drawn over data: the legend's box against the lines' and patches' (bars, histogram steps) pixels,
    notebook 04's colour-histogram figure in particular,

plus no shared offset / multiplier text ("1e-13") over an axis and no titles or axis labels running into each other.
``figure_facts`` (tests/figure_facts.py) measures one figure. The notebooks' figures are those of the session's smoke
build of the site (``smoke_executed``): its kernels measured every figure they displayed and put the facts in the
PNG output's metadata.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path

import nbformat
import pytest
import torch
from matplotlib.figure import Figure

from simclr_core.teaching.explorers import AugmentationExplorer, augmentation_explorer, batch_size_explorer, temperature_explorer
from simclr_core.teaching.plotting import DISPLAY_WIDTH_PX, MIN_TEXT_PX, cjk_font, use_workbook_style

from .figure_facts import FACTS_KEY, figure_facts

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
MAX_PNG_WIDTH = 1000


def assert_legible(facts: dict, what: str) -> None:
    assert facts["png_width"] <= MAX_PNG_WIDTH, f"{what}: {facts['png_width']} px wide, scaled down on screen"
    assert facts["min_text_px"] >= MIN_TEXT_PX, (
        f"{what}: text {facts['smallest_text']!r} is {facts['min_text_px']:.1f} px on screen (< {MIN_TEXT_PX})")
    assert not facts["offset_texts"], f"{what}: offset / multiplier text over an axis: {facts['offset_texts']}"
    assert not any(facts["legends_cover"]), f"{what}: a legend covers {facts['legends_cover']}"
    assert not facts["text_clashes"], f"{what}: titles or labels run into each other: {facts['text_clashes']}"


# ---------------------------------------------------------------- the checks can fail


def test_the_checks_catch_a_wide_figure_small_text_an_offset_and_a_covering_legend():
    fig = Figure(figsize=(14.9, 4), dpi=100, layout="constrained")  # the old three-panel layout of notebooks 02 and 03
    axes = fig.subplots(1, 3)
    for ax in axes:
        ax.plot([1, 2, 3], [1, 2, 3])
    facts = figure_facts(fig)
    assert facts["png_width"] > MAX_PNG_WIDTH and facts["min_text_px"] < MIN_TEXT_PX  # 10 pt * 950 / 1490 ~ 8.9 px

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    ax.bar(range(5), [1, 1, 1, 1, 1], label="bars")
    ax.plot([0, 4], [1e-10 + 1e-14, 1e-10 + 2e-14])
    ax2 = ax.twinx()
    ax2.plot([0, 4], [1 + 1e-9, 1 + 2e-9])  # matplotlib writes "+1" offset over this axis
    ax2.ticklabel_format(useOffset=True)
    ax.legend(loc="center")  # over the bars
    ax.set_title("small", fontsize=6)
    facts = figure_facts(fig)
    assert facts["png_width"] <= MAX_PNG_WIDTH
    assert facts["min_text_px"] < MIN_TEXT_PX and facts["smallest_text"] == "small"
    assert facts["offset_texts"] and len(facts["legends_cover"]) == 1 and "Rectangle" in facts["legends_cover"][0]
    ax.get_legend().remove()
    ax.legend(loc="upper left", bbox_to_anchor=(1.1, 1))  # outside the axes: covers nothing
    assert figure_facts(fig)["legends_cover"] == [[]]

    fig = Figure(figsize=(7, 3), dpi=100)  # notebook 08's old histogram titles: each wider than its panel
    axes = fig.subplots(1, 3)
    for ax in axes:
        ax.set_title("median: same 0.50 ± 0.01, different 1.45 ± 0.00")
    assert len(figure_facts(fig)["text_clashes"]) >= 2  # left/middle and middle/right at least
    for ax in axes:
        ax.set_title("same 0.50, different 1.45", fontsize=9)
    assert figure_facts(fig)["text_clashes"] == []


# ---------------------------------------------------------------- (c) Chinese text


def glyph_warnings(fig) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    return [str(w.message) for w in caught if re.search(r"Glyph .* missing from font", str(w.message))]


def chinese_figure() -> Figure:
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot([0.01, 1], [0, 1.6])
    ax.set_title("温度参数的影响 (temperature τ)")
    ax.set_xlabel("温度 τ")
    return fig


@pytest.fixture
def cjk():
    name = cjk_font()
    if name is None:
        pytest.skip("no CJK font for matplotlib (Debian: apt-get install fonts-noto-cjk; make test does it as root)")
    use_workbook_style()
    return name


def test_chinese_title_has_every_glyph(cjk):
    import matplotlib as mpl
    from matplotlib import font_manager

    assert mpl.rcParams["font.sans-serif"][:2] == ["DejaVu Sans", cjk]  # Latin text keeps DejaVu Sans
    assert font_manager.findfont(font_manager.FontProperties()).endswith("DejaVuSans.ttf")
    assert glyph_warnings(chinese_figure()) == []
    with mpl.rc_context({"font.family": ["sans-serif"]}):  # without the fallback: the check sees the empty boxes
        assert glyph_warnings(chinese_figure())


def test_cjk_font_installed_after_matplotlib_listed_the_fonts_is_found(cjk, monkeypatch):
    """apt-get install fonts-noto-cjk after matplotlib wrote its font cache: the font is not in fontManager's
    list, and ``cjk_font`` adds it from the system's font files."""
    from matplotlib import font_manager

    fm = font_manager.fontManager
    monkeypatch.setattr(fm, "ttflist", [f for f in fm.ttflist if "CJK" not in f.name])
    cjk_font.cache_clear()
    try:
        assert cjk_font() == cjk
        assert any(f.name == cjk for f in fm.ttflist)
    finally:
        cjk_font.cache_clear()
        fm._findfont_cached.cache_clear()


# ---------------------------------------------------------------- the explorers


def explorer_figures():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(40, 8, generator=g, dtype=torch.float64)
    z2 = z1 + torch.randn(40, 8, generator=g, dtype=torch.float64)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    w = temperature_explorer()
    yield "temperature explorer", w
    w.anchor_dropdown.value = 5
    w.tau_slider.value = 0.012
    yield "temperature explorer, anchor z_6, tau 0.012", w
    w = temperature_explorer(embeddings=(z1, z2), tau=0.02)
    w.anchor_dropdown.value = 17
    yield "temperature explorer, 80 embeddings (zoomed bars)", w
    w = batch_size_explorer()
    yield "batch-size explorer", w
    w.tau_slider.value = 0.02  # gradients ~1e-8: no "1e-8" over the axis
    yield "batch-size explorer at tau 0.02", w
    w.tau_slider.value = 0.01  # gradients below 1e-13, float rounding: drawn as 0
    w.n_slider.value = 64
    yield "batch-size explorer at tau 0.01", w
    yield "augmentation explorer", augmentation_explorer(images)
    yield "augmentation explorer, 16 views", AugmentationExplorer(images, n_views=16)


def test_explorer_figures_are_legible():
    import struct

    for what, w in explorer_figures():
        png = w.plot.widget.value
        width = struct.unpack(">II", png[16:24])[0]
        assert width == w.plot.figure.canvas.get_width_height()[0]
        assert_legible(figure_facts(w.plot.figure, png_width=width, display_width=DISPLAY_WIDTH_PX), what)


# ---------------------------------------------------------------- the notebooks


def shown_figures(nb) -> tuple[list[dict], list[str], str]:
    """(facts, PNGs, stderr) of an executed notebook: every image/png output with the facts its kernel measured."""
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    shown = [o for o in outputs if "image/png" in o.get("data", {})]
    facts = [o.get("metadata", {}).get(FACTS_KEY) for o in shown]
    stderr = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stderr")
    return facts, [o["data"]["image/png"] for o in shown], stderr


NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00"))


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_figures_are_legible(name, smoke_executed):
    import base64
    import struct

    facts, pngs, stderr = shown_figures(smoke_executed(name.removesuffix(".ipynb")))
    assert pngs, f"{name}: no figure shown"
    for k, (f, png) in enumerate(zip(facts, pngs)):
        assert isinstance(f, dict) and "error" not in f, f"{name}, figure {k + 1} was not measured: {f}"
        shown_width = struct.unpack(">II", base64.b64decode(png)[16:24])[0]
        assert shown_width == f["png_width"], f"{name}, figure {k + 1}: measured another PNG than the one shown"
        assert_legible(f, f"{name}, figure {k + 1} ({', '.join(x for x in f['xlabels'] if x)})")
    assert not re.search(r"Glyph .* missing from font", stderr), stderr
    if name.startswith("04"):  # the colour-histogram figure: its legend is off the bars
        hist = [f for f in facts if any("histogram intersection" in x for x in f["xlabels"])]
        assert len(hist) == 1 and len(hist[0]["legends_cover"]) == 2 and not any(hist[0]["legends_cover"])
