"""A static HTML picture of an explorer, for pages that have no kernel behind them.

A live explorer needs a running kernel: its figure is computed in Python on every slider step. A page
without one (the rendered workbook site, nbconvert's HTML, a notebook viewer) cannot move it, and the
ipywidgets view it would otherwise embed is an empty box there. So every explorer's display bundle also
carries ``text/html``: the controls with their current values, the explorer's own HTML (tables, readouts)
and its figure as an inline PNG, under a line that says how to run it live. Jupyter front ends with a
kernel keep preferring the widget view (its MIME type ranks first), so nothing changes in JupyterLab.
"""

from __future__ import annotations

import base64
import html

import ipywidgets as widgets

__all__ = ["SnapshotMixin", "snapshot_html", "LIVE_HINT"]

LIVE_HINT = ("Static snapshot of an interactive explorer (its controls do nothing here). To move them, open the "
             "notebook in Jupyter: <code>make lab</code>.")


def _control_value(w: widgets.Widget) -> str:
    if isinstance(w, widgets.Checkbox):
        return "on" if w.value else "off"
    if isinstance(w, widgets.FloatLogSlider):
        return format(w.value, "#" + w.readout_format) if w.readout_format.endswith("g") else format(w.value, w.readout_format)
    if isinstance(w, (widgets.FloatRangeSlider, widgets.IntRangeSlider)):
        fmt = getattr(w, "readout_format", "")
        return " – ".join(format(v, fmt) for v in w.value)
    if isinstance(w, (widgets.FloatSlider, widgets.IntSlider, widgets.BoundedFloatText)):
        return format(w.value, getattr(w, "readout_format", "") or "")
    if isinstance(w, (widgets.Dropdown, widgets.SelectionSlider, widgets.Select, widgets.ToggleButtons, widgets.RadioButtons)):
        return str(w.label or w.value)  # the label is filled in lazily for some option types
    return str(getattr(w, "value", ""))


def _render(w: widgets.Widget) -> str:
    """HTML for one widget of the tree; containers keep their row/column arrangement."""
    if isinstance(w, widgets.Image):
        data = base64.b64encode(bytes(w.value)).decode("ascii")
        return f'<img class="simclr-snapshot-figure" alt="the explorer\'s figure" src="data:image/{w.format};base64,{data}">'
    if isinstance(w, (widgets.HTML, widgets.HTMLMath)):
        return f"<div>{w.value}</div>"
    if isinstance(w, widgets.Button):
        return f'<span class="simclr-snapshot-control simclr-snapshot-button">{html.escape(w.description)}</span>'
    if isinstance(w, widgets.Box):
        inner = "".join(_render(c) for c in w.children)  # an empty child keeps its grid cell
        if isinstance(w, widgets.GridBox) and w.layout.grid_template_columns:
            return f'<div style="display:grid; grid-template-columns:{w.layout.grid_template_columns}; gap:4px 0">{inner}</div>'
        direction = "row" if isinstance(w, widgets.HBox) else "column"
        return f'<div style="display:flex; flex-direction:{direction}; flex-wrap:wrap; gap:4px 18px">{inner}</div>'
    if hasattr(w, "value"):
        label = html.escape(w.description or "")
        off = " simclr-snapshot-disabled" if getattr(w, "disabled", False) else ""
        return (f'<span class="simclr-snapshot-control{off}">{label}{": " if label else ""}'
                f"<b>{html.escape(_control_value(w))}</b></span>")
    return ""


def snapshot_html(explorer: widgets.Box) -> str:
    """The explorer as it looks now, as self-contained HTML (figure inlined)."""
    classes = " ".join(explorer._dom_classes)
    return (f'<div class="simclr-explorer-snapshot {html.escape(classes)}-snapshot">'
            f'<p class="simclr-snapshot-hint">{LIVE_HINT}</p>{_render(explorer)}</div>')


class SnapshotMixin:
    """Adds the static snapshot to a widget's display bundle (the widget view itself stays first)."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:  # ipywidgets returns None for a widget that has no model view
            return None
        bundle["text/html"] = snapshot_html(self)
        return bundle
