"""A matplotlib figure shown as a PNG inside an ``ipywidgets.Image``, redrawn in place.

Why PNG-in-an-Image and not ``%matplotlib widget``: ipympl is not a dependency, and an Image widget
behaves identically in JupyterLab 4, Notebook 7, on a projector and headless (tests, nbgrader). The
explorers keep one Figure and its artists for their whole life and only move data
(``set_height``/``set_data``/``set_ydata``), then re-encode the PNG.

What a slider moves is drawn on every frame; the rest of the figure (axes, ticks, labels, legends, curves
that do not depend on the slider) is drawn once and kept as a pixel background (matplotlib's blitting:
``copy_from_bbox`` / ``restore_region``). The explorer declares the moving artists with ``set_dynamic``
and calls ``invalidate`` when something in the background changes (another anchor, new axis limits).
A frame is then a restore, a few ``draw_artist`` calls and one PNG encoding: a few tens of ms, where a
full draw of a two-panel figure with log axes costs ~0.1-0.2 s on a laptop core.

No recomputation storms while a slider is dragged: the ipywidgets front end keeps at most one state
update in flight per widget and coalesces the ones that arrive meanwhile into the latest value
(``WidgetModel._pending_msgs`` / ``_msg_buffer`` in @jupyter-widgets/base), so the kernel handles one
cheap update at a time and always ends on the value the slider was released at.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ..plotting import use_workbook_style

__all__ = ["FigureImage"]


class FigureImage:
    """One ``Figure`` (never touches pyplot state) and the ``Image`` widget that shows it."""

    def __init__(self, figsize: tuple[float, float], dpi: float | None = None):
        use_workbook_style()
        dpi = dpi or mpl.rcParams["figure.dpi"]  # the workbook's 100, or the projector's 150 (plotting.PROJECTOR_STYLE)
        width_px = int(round(figsize[0] * dpi))  # at 100 dpi the explorers keep this <= DISPLAY_WIDTH_PX: shown unscaled
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.figure)
        # native size at most, shrinking with the output area; minus the widget's 2 x 2 px margin, so that no
        # horizontal scrollbar appears (JupyterLab 4 / Notebook 7, --jp-widgets-margin)
        self.widget = widgets.Image(format="png", layout=widgets.Layout(width="calc(100% - 6px)", max_width=f"{width_px}px", height="auto"))
        self.renders = 0  # how many PNGs were produced (tests check that updates redraw)
        self.full_draws = 0  # how many of them drew the whole figure
        self._dynamic: list = []
        self._background = None

    def set_dynamic(self, artists) -> None:
        """The artists drawn on every frame, over the cached background (in zorder, after the static ones)."""
        for a in self._dynamic:
            a.set_animated(False)
        self._dynamic = sorted(artists, key=lambda a: a.get_zorder())
        for a in self._dynamic:
            a.set_animated(True)
        self.invalidate()

    def invalidate(self) -> None:
        """Draw the whole figure on the next render (call after changing anything not in ``set_dynamic``)."""
        self._background = None

    def relayout(self) -> None:
        """Recompute the layout on the next render (call after changing tick labels' widths or axes contents)."""
        self.figure.set_layout_engine("constrained")
        self.invalidate()

    def render(self) -> bytes:
        """Encode the figure as PNG and push it into the widget; returns the PNG bytes.

        The constrained layout is solved on a full draw after ``relayout`` (and on the first frame) and then
        frozen, so a full draw is one pass, and a slider frame only redraws the dynamic artists.
        """
        canvas = self.figure.canvas
        if self._background is None:
            canvas.draw()  # everything but the dynamic artists (animated: skipped by a full draw)
            self.figure.set_layout_engine("none")  # keep the axes where this layout put them
            self._background = canvas.copy_from_bbox(self.figure.bbox)
            self.full_draws += 1
        else:
            canvas.restore_region(self._background)
        for a in self._dynamic:
            self.figure.draw_artist(a)
        buf = io.BytesIO()
        Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).save(
            buf, format="png", compress_level=3)
        png = buf.getvalue()
        self.widget.value = png
        self.renders += 1
        return png
