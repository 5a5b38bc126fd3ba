"""``figure_facts``: what a reader sees of one matplotlib figure (tests/test_figures.py checks it).

It is self-contained (its imports inside), because the smoke build of the site (``smoke_site`` in tests/conftest.py)
runs its source in every notebook kernel: ``record_in_kernels`` writes an IPython startup file that puts the facts
of each figure the inline backend displays into that PNG output's metadata, under ``FACTS_KEY``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

FACTS_KEY = "simclr_figure_facts"


def figure_facts(fig, png_width=None, display_width=950):
    """What a reader sees of ``fig``: PNG width, smallest text on screen (px), offset texts, legends over data."""
    import io as _io
    import struct

    import numpy as _np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure: draw it with Agg, as pyplot's inline backend does
        FigureCanvasAgg(fig)
    if png_width is None:  # what the inline backend sends: savefig(bbox_inches="tight") at the figure's dpi
        buf = _io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        png_width = struct.unpack(">II", buf.getvalue()[16:24])[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    scale = min(1.0, display_width / png_width)
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    smallest = min(texts, key=lambda t: t.get_fontsize())
    offsets = [a.get_offset_text().get_text() for ax in fig.axes for a in (ax.xaxis, ax.yaxis)]

    def data_pixels(ax):
        """(label, (P, 2) display points along every line and patch outline, inside the axes) for ax's data."""
        for artist in [*ax.lines, *ax.patches]:
            if not artist.get_visible():
                continue
            if isinstance(artist, Rectangle) and artist.get_fill():  # a bar: all of its area
                e = artist.get_window_extent(renderer)
                gx, gy = _np.meshgrid(_np.linspace(e.x0, e.x1, 25), _np.linspace(e.y0, e.y1, 25))
                pts = _np.column_stack([gx.ravel(), gy.ravel()])
            else:
                if isinstance(artist, Line2D):
                    xy = artist.get_transform().transform(artist.get_xydata())
                else:  # a histogram step, a polygon: its outline
                    xy = artist.get_transform().transform(artist.get_path().vertices)
                xy = xy[_np.isfinite(xy).all(axis=1)]
                if len(xy) < 2:
                    pts = xy
                else:  # 20 points along every segment: a line crossing the legend is caught, not only its vertices
                    t = _np.linspace(0, 1, 20)[:, None, None]
                    pts = (xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2)
            box = ax.bbox
            inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
            label = artist.get_label()
            yield (type(artist).__name__ if label.startswith("_") else label), pts[inside]

    # titles and axis labels that run into each other (a long title over its neighbour's): every pair of them, and
    # each against the other axes' tick labels
    labels = [t for ax in fig.axes for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label)]
    labels += [t for t in (getattr(fig, "_suptitle", None),) if t is not None]
    labels = [(t, t.get_window_extent(renderer)) for t in labels if t.get_visible() and t.get_text().strip()]
    clashes = [f"{a.get_text()!r} / {b.get_text()!r}" for k, (a, ea) in enumerate(labels) for b, eb in labels[k + 1:]
               if ea.padded(-1).overlaps(eb.padded(-1))]
    legends = [(ax.get_legend(), [ax]) for ax in fig.axes if ax.get_legend() is not None]
    legends += [(lg, fig.axes) for lg in fig.legends]
    covered = []
    for legend, axes in legends:
        e = legend.get_window_extent(renderer).padded(-1)  # a touch along the border is not covering
        hits = [label for ax in axes for label, pts in data_pixels(ax)
                if ((pts[:, 0] > e.x0) & (pts[:, 0] < e.x1) & (pts[:, 1] > e.y0) & (pts[:, 1] < e.y1)).any()]
        covered.append(hits)
    return {
        "png_width": int(png_width),
        "min_text_px": smallest.get_fontsize() * fig.dpi / 72 * scale,
        "smallest_text": smallest.get_text(),
        "offset_texts": [o for o in offsets if o],
        "legends_cover": covered,
        "text_clashes": clashes,
        "xlabels": [ax.get_xlabel() for ax in fig.axes],
    }


def record_in_kernels(ipython_dir: Path) -> Path:
    """An IPython folder (for IPYTHONDIR) whose startup file wraps the inline backend's figure metadata: every figure
    it displays carries ``figure_facts`` of itself under ``FACTS_KEY`` (or the error measuring it raised)."""
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-figure-facts.py").write_text(
        "import matplotlib_inline.backend_inline as _inline\n\n" + inspect.getsource(figure_facts) + "\n\n"
        "_metadata = _inline._fetch_figure_metadata\n\n\n"
        "def _metadata_with_facts(fig):\n"
        "    try:\n"
        "        facts = figure_facts(fig)\n"
        "    except Exception as e:  # the test names it\n"
        "        facts = {'error': repr(e)}\n"
        f"    return {{**(_metadata(fig) or {{}}), {FACTS_KEY!r}: facts}}\n\n\n"
        "_inline._fetch_figure_metadata = _metadata_with_facts\n", encoding="utf-8")
    return ipython_dir
