"""Smoke mode: the notebooks run on synthetic or tiny data for a few steps (``SIMCLR_SMOKE=1``, set by CI and by
``scripts/build_site.py --smoke``), only to show that every cell runs. Their numbers then say nothing about SimCLR,
while the prose beside them describes the full run. So every results cell starts with :func:`show_smoke_banner`,
and the smoke build of the site (``site/conf.py``) puts :data:`SMOKE_NOTICE_HTML` at the top of every page and
:data:`PROSE_NOTE` at the top of every markdown cell tagged :data:`PROSE_TAG` (:func:`mark_results_prose`).

    from simclr_core.teaching.smoke import is_smoke, show_smoke_banner
    SMOKE = is_smoke()        # the setup cell
    show_smoke_banner()       # first line of a results cell: the banner in smoke mode, nothing otherwise
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_VAR = "SIMCLR_SMOKE"
_ON, _OFF = ("1",), ("", "0")

BANNER_EN = ("SMOKE RUN (SIMCLR_SMOKE=1): synthetic or tiny data and a few training steps, only to check that the "
             "code runs. These numbers mean nothing; the text on this page describes the full run, not them.")
BANNER_ZH = ("冒烟测试运行(SIMCLR_SMOKE=1):合成数据或极少的数据,只训练几步,仅用于检查代码能否运行。"
             "这些数字没有任何意义;本页的文字描述的是完整运行的结果,而不是它们。")
# the class that marks the banner in a notebook's HTML output (tests find it by this, not by its wording)
CSS_CLASS = "simclr-smoke-banner"
_STYLE = ("border: 3px solid #c62828; background: #fff3e0; color: #4a1c00; padding: 0.5em 0.8em; "
          "margin: 0.3em 0; font-weight: bold; border-radius: 4px;")

# the smoke build of the site shows this at the top of every page (pydata/sphinx-book theme "announcement")
SMOKE_NOTICE_HTML = (
    f'<div class="{CSS_CLASS}-page">SMOKE BUILD: the notebooks on this site ran in smoke mode (SIMCLR_SMOKE=1): '
    "a few training steps on synthetic or tiny data, smaller sweeps elsewhere. The numbers under a red smoke-run "
    "banner mean nothing, and the text beside them describes the full run. Build the real site with "
    "<code>make site</code>.<br>"
    "冒烟测试构建:本网站的笔记本都以冒烟测试模式运行(SIMCLR_SMOKE=1):在合成数据或极少的数据上只训练几步,其余部分的扫描范围也更小。"
    "红色冒烟测试横幅下的数字没有任何意义,旁边的文字描述的是完整运行的结果。用 <code>make site</code> 构建真正的网站。</div>")


# markdown cells that interpret measured results carry this tag; the smoke site puts PROSE_NOTE at their top
PROSE_TAG = "results-prose"
PROSE_CSS_CLASS = f"{CSS_CLASS}-prose"
PROSE_NOTE = (f":::{{admonition}} Smoke build · 冒烟测试构建\n:class: warning {PROSE_CSS_CLASS}\n"
              "The text below describes the results of the full run, not the smoke numbers on this page.\n\n"
              "下面的文字描述的是完整运行的结果,而不是本页上冒烟测试得到的数字。\n:::\n\n")


def is_smoke(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``SIMCLR_SMOKE`` is ``1``; unset, empty or ``0`` is the full run. Any other value is an error,
    so that a typo (``true``, ``yes``) does not silently start the long full run or a smoke run."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if not isinstance(value, str) or value.strip() not in _ON + _OFF:
        raise ValueError(f"{ENV_VAR}={value!r}: use 1 (smoke mode: tiny data, seconds) or 0 / unset (the full run)")
    return value.strip() in _ON


@dataclass(frozen=True)
class SmokeBanner:
    """The banner as a display object: HTML in Jupyter and on the site, plain text in a terminal."""

    english: str = BANNER_EN
    chinese: str = BANNER_ZH

    def _repr_html_(self) -> str:
        return (f'<div class="{CSS_CLASS}" style="{_STYLE}">&#9888; {html.escape(self.english)}<br>'
                f"&#9888; {html.escape(self.chinese)}</div>")

    def __repr__(self) -> str:
        return f"!!! {self.english}\n!!! {self.chinese}"


def smoke_banner(environ: Mapping[str, str] | None = None) -> SmokeBanner | None:
    """The banner in smoke mode, None otherwise (``environ``: the environment to read, default ``os.environ``)."""
    return SmokeBanner() if is_smoke(environ) else None


def show_smoke_banner(environ: Mapping[str, str] | None = None) -> None:
    """Display the banner in smoke mode and nothing otherwise. Call it first in a cell, so that the banner sits right
    above that cell's tables and figures; it returns None, so a cell that ends with it shows nothing more."""
    banner = smoke_banner(environ)
    if banner is not None:
        from IPython.display import display  # only needed where there is a banner to show

        display(banner)


def mark_results_prose(nb: dict) -> int:
    """Put :data:`PROSE_NOTE` (a MyST admonition) at the top of every markdown cell tagged :data:`PROSE_TAG` in a
    notebook's JSON, under the cell's heading line when it starts with one; returns how many cells it marked.
    Marking twice changes nothing."""
    marked = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown" or PROSE_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if PROSE_CSS_CLASS not in text:
            lines = text.splitlines(keepends=True)
            first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
            if first < len(lines) and lines[first].startswith("#"):  # under the cell's heading
                head, rest = "".join(lines[: first + 1]).rstrip("\n") + "\n\n", "".join(lines[first + 1:])
            else:
                head, rest = "", text
            text = head + PROSE_NOTE + rest
        cell["source"] = text
        marked += 1
    return marked
