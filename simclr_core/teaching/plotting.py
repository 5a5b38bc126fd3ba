"""The workbook's matplotlib style: Chinese text through a CJK fallback font, sizes legible where figures are shown.

``use_workbook_style()`` is called by the explorers and by the setup cell of notebooks 01-04 (after
``%matplotlib inline``, which would otherwise reset the rc parameters it sets).

- Fonts: Latin text keeps DejaVu Sans, matplotlib's default; a CJK font found on the system (Noto Sans CJK,
  from Debian's ``fonts-noto-cjk``, which ``scripts/setup_system.sh`` installs) follows it in the sans-serif
  list and in ``font.family``, so matplotlib takes the glyphs DejaVu Sans lacks (Chinese) from it instead of
  drawing empty boxes.
- Sizes: JupyterLab 4 and Notebook 7 show an image at its own width up to about ``DISPLAY_WIDTH_PX`` and scale
  wider ones down. Figures of the workbook are laid out at most that wide at 100 dpi, and the smallest text
  (tick labels, legends: 10 pt) is 10 / 72 * 100 = 14 px, so every text stays >= ``MIN_TEXT_PX`` on screen.
- Projector: ``use_projector_style()`` switches the kernel to ``PROJECTOR_STYLE`` (the lecture pages, ``make lecture``):
  ``PROJECTOR_SCALE`` = 1.5 times the dpi and ``PROJECTOR_EXTRA_PT`` = 3 more points for every text, so the smallest
  text is 13 / 72 * 150 = 27 px, legible from the back of a room on a 1920 x 1080 projector. Every later
  ``use_workbook_style()`` in that kernel (the explorers call it) keeps the projector's sizes. Texts the explorers
  size themselves take their size from these rc parameters (``text_pt``), never a number of their own.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager, ticker

__all__ = ["DISPLAY_WIDTH_PX", "MIN_TEXT_PX", "STYLE", "PROJECTOR_SCALE", "PROJECTOR_STYLE", "cjk_font", "use_workbook_style",
           "use_projector_style", "text_pt", "plain_tick_labels", "fmt"]

DISPLAY_WIDTH_PX = 950  # the widest an image is shown in JupyterLab's notebook at its default layout on a laptop
MIN_TEXT_PX = 10  # smallest legible text on screen (font size in px after the browser's scaling)
# preferred first: Debian's Noto Sans CJK (simplified Chinese face first), then what macOS / Windows ship
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK JP", "Source Han Sans SC", "Noto Sans SC",
                "PingFang SC", "Heiti SC", "Microsoft YaHei", "SimHei", "WenQuanYi Zen Hei")
STYLE = {
    "figure.dpi": 100, "savefig.dpi": "figure",
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "figure.titlesize": 13,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10, "legend.title_fontsize": 10,
    "axes.formatter.useoffset": False,  # no "+1e-10" offset text over the axes
}
# The lecture pages on a projector: the only place where its sizes are set. A figure has 1.5 times the pixels, and
# every text in it PROJECTOR_EXTRA_PT more points: the smallest (13 pt at 150 dpi) is 27 px, >= 24 px on a
# 1920 x 1080 screen as long as the page shows the figure at >= 89 % of its width.
PROJECTOR_SCALE = 1.5
PROJECTOR_EXTRA_PT = 3
_TEXT_SIZES = ("font.size", "axes.titlesize", "axes.labelsize", "figure.titlesize", "xtick.labelsize", "ytick.labelsize",
               "legend.fontsize", "legend.title_fontsize")
PROJECTOR_STYLE = {**STYLE, "figure.dpi": STYLE["figure.dpi"] * PROJECTOR_SCALE,
                   **{k: STYLE[k] + PROJECTOR_EXTRA_PT for k in _TEXT_SIZES}}


def _known_families() -> set[str]:
    return {f.name for f in font_manager.fontManager.ttflist}


@functools.cache
def cjk_font() -> str | None:
    """The family name of a CJK font matplotlib can use, or None.

    matplotlib lists the system's fonts once, in a cache file; a font installed after that (``apt-get install
    fonts-noto-cjk``) is not in the list, so font files whose names say CJK are added here when needed."""
    found = [name for name in CJK_FAMILIES if name in _known_families()]
    if not found:
        for path in font_manager.findSystemFonts():
            if "cjk" in Path(path).name.lower() and "serif" not in Path(path).name.lower():
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # unreadable font file: skip it
                    continue
        found = [name for name in CJK_FAMILIES if name in _known_families()]
    return found[0] if found else None


def use_workbook_style() -> None:
    """Set the workbook's rc parameters (``STYLE``, or ``PROJECTOR_STYLE`` after ``use_projector_style()``) and the
    CJK fallback font (``cjk_font()`` names it). Returns None: a notebook's setup cell ends with this call, and a
    value would be shown under it as an ``Out[1]:`` the student has no use for."""
    projector = mpl.rcParams["figure.dpi"] == PROJECTOR_STYLE["figure.dpi"]  # set by use_projector_style(): kept
    mpl.rcParams.update(PROJECTOR_STYLE if projector else STYLE)
    cjk = cjk_font()
    if cjk is not None:
        rest = [f for f in mpl.rcParams["font.sans-serif"] if f not in ("DejaVu Sans", cjk)]
        mpl.rcParams["font.sans-serif"] = ["DejaVu Sans", cjk, *rest]
        # a generic family ("sans-serif") resolves to one font; glyph fallback goes along font.family's list
        mpl.rcParams["font.family"] = [*(f for f in mpl.rcParams["font.family"] if f != cjk), cjk]


def use_projector_style(on: bool = True) -> None:
    """Switch this kernel to the projector's sizes (``PROJECTOR_STYLE``), or back with ``on=False``; then apply them."""
    mpl.rcParams["figure.dpi"] = (PROJECTOR_STYLE if on else STYLE)["figure.dpi"]
    use_workbook_style()


def text_pt(role: str) -> float:
    """The size in points of a text of ``role`` in the style in force ("title": axes.labelsize, "note": legend.fontsize,
    "heading": axes.titlesize): annotations drawn by the explorers grow with the projector's sizes like the rest."""
    keys = {"title": "axes.labelsize", "note": "legend.fontsize", "heading": "axes.titlesize"}
    if role not in keys:
        raise ValueError(f"role must be one of {sorted(keys)}, got {role!r}")
    return float(mpl.rcParams[keys[role]])


def fmt(x: float, spec: str) -> str:
    """``format(x, spec)`` without a sign on zero: -0.0 and -1e-17 at ".4f" both read 0.0000."""
    s = format(x, spec)
    return s[1:] if s.startswith("-") and float(s) == 0 else s


class _OwnExponentFormatter(ticker.ScalarFormatter):
    """matplotlib's tick labels (0.0, 0.2, ...), except where matplotlib would write a shared multiplier over the
    axis ("1e-13", for values below 1e-5, say): then every tick carries its own exponent (0, 2e-14, 4e-14)."""

    def __init__(self):
        super().__init__(useOffset=False)
        self._own = False

    def set_locs(self, locs):
        super().set_locs(locs)
        self._own = bool(super().get_offset())

    def __call__(self, x, pos=None):
        return fmt(x, ".3g") if self._own else super().__call__(x, pos)

    def get_offset(self):
        return "" if self._own else super().get_offset()


def plain_tick_labels(*axes) -> None:
    """No multiplier or offset text over the y axis of ``axes``, where it runs into the title."""
    for ax in axes:
        ax.yaxis.set_major_formatter(_OwnExponentFormatter())
