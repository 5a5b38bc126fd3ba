"""Lecture mode: an explorer sized for a projector, one per page (the notebooks in lecture/, ``make lecture``).

``on_projector(temperature_explorer)`` switches the kernel to the projector's matplotlib sizes
(``plotting.PROJECTOR_STYLE``: figures at 1.5 times the dpi) *before* the explorer draws its figure, then builds
the explorer and marks it ``simclr-lecture``. The page's style sheet (``PROJECTOR_CSS``, shown once per page as
an invisible HTML output) zooms that explorer's controls and tables by the same ``PROJECTOR_SCALE`` so they match
the figure, which is not zoomed: it already has 1.5 times the pixels and stays sharp. The temperature explorer's
table goes beside its figure, so that slider, numbers and figure fit one 1920 x 1080 screen. On a Voila page
(``body[data-voila]``) the page's text grows too; in JupyterLab only the explorer changes.
"""

from __future__ import annotations

from IPython.display import HTML, display

from .plotting import PROJECTOR_SCALE, use_projector_style

__all__ = ["PROJECTOR_CSS", "on_projector"]

PROJECTOR_CSS = f"""
.simclr-lecture > :not(.widget-image) {{ zoom: {PROJECTOR_SCALE:g}; }}
.simclr-lecture > .widget-image {{ margin-top: 8px; }}
.simclr-lecture.simclr-temperature-explorer.widget-vbox {{
  display: grid; grid-template-columns: min-content minmax(0, 1fr); column-gap: 16px; align-items: start;
}}
.simclr-lecture.simclr-temperature-explorer > :first-child {{ grid-column: 1 / -1; }}
.simclr-lecture.simclr-temperature-explorer th {{ white-space: nowrap; }}
body[data-voila] .jp-RenderedHTMLCommon {{ font-size: 24px; line-height: 1.4; }}
body[data-voila] .jp-RenderedHTMLCommon h1 {{ font-size: 40px; margin: 0 0 0.3em; }}
body[data-voila] .jp-RenderedHTMLCommon code {{ font-size: 22px; }}
body[data-voila] #rendered_cells {{ padding: 4px 24px; }}
"""


def on_projector(make_explorer, /, *args, **kwargs):
    """``make_explorer(*args, **kwargs)`` (an explorer factory, e.g. ``temperature_explorer``) at projector size."""
    use_projector_style()  # before the explorer creates its figure: its size in pixels comes from figure.dpi
    display(HTML(f'<style class="simclr-lecture-style">{PROJECTOR_CSS}</style>'))
    explorer = make_explorer(*args, **kwargs)
    explorer.add_class("simclr-lecture")
    return explorer
