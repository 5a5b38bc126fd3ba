"""Smoke mode: the notebooks run on synthetic or tiny data for a few steps (``SIMCLR_SMOKE=1``, set by CI and by
``scripts/build_site.py --smoke``), only to show that every cell runs. Their numbers then say nothing about SimCLR,
while the prose beside them describes the full run; so every results cell starts with :func:`show_smoke_banner`,
and the smoke build of the site puts :data:`SMOKE_NOTICE_HTML` at the top of every page (``site/conf.py``).

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
    f'<div class="{CSS_CLASS}-page">SMOKE BUILD: every notebook on this site ran on synthetic or tiny data for a '
    "few steps (SIMCLR_SMOKE=1). Their numbers and figures mean nothing, and the text beside them describes the "
    "full run, not them. Build the real site with <code>make site</code>.<br>"
    "冒烟测试构建:本网站的每个笔记本都只在合成数据或极少的数据上运行了几步(SIMCLR_SMOKE=1)。其中的数字和图没有任何意义,"
    "旁边的文字描述的是完整运行的结果,而不是它们。用 <code>make site</code> 构建真正的网站。</div>")


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
