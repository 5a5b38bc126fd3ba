"""A matplotlib figure shown as a PNG inside an ``ipywidgets.Image``, redrawn in place.

Why PNG-in-an-Image and not ``%matplotlib widget``: ipympl is not a dependency, and an Image widget
behaves identically in JupyterLab 4, Notebook 7, on a projector and headless (tests, nbgrader). The
explorers keep one Figure and its artists for their whole life and only move data
(``set_height``/``set_data``/``set_ydata``), then re-encode the PNG: a few tens of ms per update.

No recomputation storms while a slider is dragged: the ipywidgets front end keeps at most one state
update in flight per widget and coalesces the ones that arrive meanwhile into the latest value
(``WidgetModel._pending_msgs`` / ``_msg_buffer`` in @jupyter-widgets/base), so the kernel handles one
cheap update at a time and always ends on the value the slider was released at.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["FigureImage"]


class FigureImage:
    """One ``Figure`` (never touches pyplot state) and the ``Image`` widget that shows it."""

    def __init__(self, figsize: tuple[float, float], dpi: int = 100):
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.figure)
        width_px = int(figsize[0] * dpi)
        # native size at most, shrinking with the output area; minus the widget's 2 x 2 px margin, so that no
        # horizontal scrollbar appears (JupyterLab 4 / Notebook 7, --jp-widgets-margin)
        self.widget = widgets.Image(format="png", layout=widgets.Layout(width="calc(100% - 6px)", max_width=f"{width_px}px", height="auto"))
        self.renders = 0  # how many PNGs were produced (tests check that updates redraw)

    def relayout(self) -> None:
        """Recompute the layout on the next render (call after rebuilding axes contents)."""
        self.figure.set_layout_engine("constrained")

    def render(self) -> bytes:
        """Encode the figure as PNG and push it into the widget; returns the PNG bytes.

        The constrained layout is solved on the first frame (or after ``relayout``) and then frozen,
        so a slider update costs one draw, not two.
        """
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png")
        self.figure.set_layout_engine("none")  # keep the axes where the last layout put them
        png = buf.getvalue()
        self.widget.value = png
        self.renders += 1
        return png
