"""Temperature explorer: drag tau, watch the NT-Xent / InfoNCE loss of a similarity matrix.

Chen et al. 2020 (arXiv:2002.05709), eq. (1): anchor i with positive j(i) puts a softmax over every
candidate k != i with logits sim(z_i, z_k) / tau, and pays l(i, j) = -log p_i(j). Small tau sharpens
the softmax (hard negatives dominate, the loss of a correctly ranked positive goes to 0); large tau
flattens it towards the uniform softmax, whose loss is log(2N - 1) whatever the similarities (the
paper's Table 5 sweeps tau in {0.05, ..., 1}). All numbers shown come from
``simclr_core.nn.loss.info_nce_from_similarity``; the default matrix is the seed exercise's (``simclr_core.teaching.sheet``).

Read bottom-up: pure helpers (no widgets) first, then the widget that shows them.
"""

from __future__ import annotations

import html
import math

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn.functional as F

from ... import checks
from ...nn.loss import info_nce_from_similarity, nt_xent, positive_pairs
from ..plotting import fmt, plain_tick_labels, text_pt
from ..sheet import SEED_POSITIVES, SEED_S
from .figure_image import FigureImage
from .one_thread import one_thread
from .snapshot import SnapshotMixin

__all__ = ["TAU_MIN", "TAU_MAX", "TAU_LOG_STEP", "TemperatureExplorer", "temperature_explorer", "similarity_from_embeddings", "candidate_softmax",
           "tau_text"]

TAU_MIN, TAU_MAX = 0.01, 5.0  # slider range (log scale); the paper's sweep 0.05..1 sits inside
TAU_READOUT = ".3g"  # the tau sliders' readout (d3-format)
# One arrow-key press multiplies tau by 10**0.05 = 1.12: 0.1 -> 0.5 in 14 presses, the whole range in 54. The grid
# 10**(k / 20) holds 0.1 and 1 exactly and the paper's other temperatures to 0.3% (0.0501, 0.200, 0.501).
TAU_LOG_STEP = 0.05
POSITIVE_COLOR, NEGATIVE_COLOR = "#d95f02", "#7570b3"
MAX_BARS = 32  # more candidates than this: show the positive and the most probable negatives


def similarity_from_embeddings(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine-similarity matrix of the 2N rows [z1; z2] and their positive partners (k <-> k + N)."""
    nt_xent(z1, z2, temperature=1.0)  # validates shapes, dtype, finiteness (raises ValueError)
    z = F.normalize(torch.cat([z1, z2]).detach().double(), dim=1)  # (2N, D) unit rows
    return z @ z.T, positive_pairs(z1.shape[0])  # (2N, 2N), (2N,)


def candidate_softmax(S: torch.Tensor, i: int, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax anchor i puts over its candidates k != i at temperature tau.

    Returns (candidates (2N-1,) row indices, probs (2N-1,) summing to 1); self is excluded.
    """
    n = S.shape[0]
    candidates = torch.tensor([k for k in range(n) if k != i])  # (2N-1,)
    logits = S[i, candidates] / tau  # (2N-1,) sim(z_i, z_k) / tau
    return candidates, torch.softmax(logits, dim=0)  # (2N-1,)


def tau_text(tau: float) -> str:
    """tau as the slider's readout shows it: d3-format's ".3g" keeps trailing zeros (0.100), like Python's "#.3g"."""
    return format(tau, "#" + TAU_READOUT)


def loss_curves(S: torch.Tensor, positives: torch.Tensor, taus: np.ndarray) -> np.ndarray:
    """Per-anchor losses at every tau of a grid: (T, 2N), computed once so dragging is cheap."""
    return np.stack([info_nce_from_similarity(S, positives, float(t)).numpy() for t in taus])  # (T, 2N)


def _check_tau_in_range(tau) -> float:
    tau = checks.temperature("temperature (tau)", tau)
    if not TAU_MIN <= tau <= TAU_MAX:
        raise ValueError(f"tau must lie in the explorer's range [{TAU_MIN}, {TAU_MAX}], got {tau!r}")
    return tau


def _problem(S, positives, embeddings):
    """(S (2N, 2N) float64, positives (2N,) long, labels) from whichever input was given."""
    if embeddings is not None:
        if S is not None or positives is not None:
            raise ValueError("pass either embeddings=(z1, z2) or S (+ positives), not both")
        if not isinstance(embeddings, (tuple, list)) or len(embeddings) != 2:
            raise ValueError(f"embeddings must be a pair (z1, z2) of (N, D) tensors, got {type(embeddings).__name__}")
        S, positives = similarity_from_embeddings(*embeddings)
        N = S.shape[0] // 2
        labels = [f"z1[{k}]" for k in range(N)] + [f"z2[{k}]" for k in range(N)]
        return S, positives, labels
    if S is None:
        if positives is not None:
            raise ValueError("positives given without S; pass S too (or neither for the seed matrix)")
        S, positives = SEED_S, SEED_POSITIVES
    S = torch.as_tensor(S, dtype=torch.float64) if not isinstance(S, torch.Tensor) else S.detach().double()
    if S.dim() != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square (2N, 2N) similarity matrix, got shape {tuple(S.shape)}")
    if positives is None:  # the exercise sheet's layout: (z_1, z_2), (z_3, z_4), ...
        if S.shape[0] < 2 or S.shape[0] % 2:
            raise ValueError(f"S must be (2N, 2N) with an even size >= 2, got size {S.shape[0]}")
        positives = positive_pairs(S.shape[0] // 2, layout="adjacent")
    info_nce_from_similarity(S, positives, 1.0)  # validates S and the pairing (raises ValueError)
    positives = torch.as_tensor(positives).long()
    return S, positives, [f"z_{k + 1}" for k in range(S.shape[0])]


class TemperatureExplorer(SnapshotMixin, widgets.VBox):
    """Slider for tau (log scale), anchor dropdown, loss table, softmax bars, loss-vs-tau curve.

    ``state`` holds the numbers currently shown (tau, anchor, per-anchor losses, batch loss,
    candidate indices and their softmax probabilities); ``update()`` is the slider/dropdown callback.
    """

    def __init__(self, S=None, positives=None, tau: float = 0.1, embeddings=None, anchor: int = 0, curve_points: int = 161):
        tau = _check_tau_in_range(tau)
        self.S, self.positives, self.labels = _problem(S, positives, embeddings)
        n = self.S.shape[0]
        if isinstance(anchor, bool) or not isinstance(anchor, int) or not 0 <= anchor < n:
            raise ValueError(f"anchor must be a row index in 0..{n - 1}, got {anchor!r}")
        self.taus = np.geomspace(TAU_MIN, TAU_MAX, curve_points)  # (T,)
        with one_thread():
            self.curves = loss_curves(self.S, self.positives, self.taus)  # (T, 2N)
        self.uniform_loss = math.log(n - 1)  # the tau -> infinity limit: uniform softmax over 2N - 1 candidates

        self.tau_slider = widgets.FloatLogSlider(
            value=tau, base=10, min=math.log10(TAU_MIN), max=math.log10(TAU_MAX), step=TAU_LOG_STEP,
            description="τ (tau)", readout_format=TAU_READOUT, continuous_update=True,
            style={"description_width": "initial"}, layout=widgets.Layout(width="60%"),
        )
        self.anchor_dropdown = widgets.Dropdown(
            options=[(f"{self.labels[i]}  (positive {self.labels[int(self.positives[i])]})", i) for i in range(n)],
            value=anchor, description="anchor", layout=widgets.Layout(width="auto"),
        )
        self.table = widgets.HTML()
        self.plot = FigureImage(figsize=(9.4, 4.0))
        self._build_figure()
        self._static_key = None  # what the cached background shows: anchor, bars shown, bar axis limits
        self.state: dict = {}
        super().__init__([widgets.HBox([self.tau_slider, self.anchor_dropdown]), self.table, self.plot.widget])
        self.add_class("simclr-temperature-explorer")
        self.tau_slider.observe(self.update, names="value")
        self.anchor_dropdown.observe(self.update, names="value")
        self.update()

    def _build_figure(self) -> None:
        fig, n = self.plot.figure, self.S.shape[0]
        self.ax_bars, self.ax_curve = fig.subplots(1, 2, width_ratios=[1, 1.1])
        self.n_bars = min(n - 1, MAX_BARS)
        self.bars = self.ax_bars.bar(range(self.n_bars), np.zeros(self.n_bars), color=NEGATIVE_COLOR)
        self.ax_bars.set_ylim(0, 1.1)
        self.uniform_prob_line = self.ax_bars.axhline(1 / (n - 1), color="grey", ls=":", lw=1.2)
        self.ax_bars.set_ylabel("softmax probability  p_i(k)")
        n_texts = self.n_bars if self.n_bars <= 12 else 1  # a value over every bar when they fit, else over the positive only
        self.bar_texts = [self.ax_bars.text(0, 0, "", ha="center", va="bottom", fontsize=text_pt("note")) for _ in range(n_texts)]
        self.title_pt = text_pt("title")  # the style in force when the figure was made (the projector's, on a lecture page)
        self.ax_curve.plot(self.taus, self.curves.mean(axis=1), color="black", lw=2, label="batch loss L (mean over 2N anchors)")
        (self.anchor_line,) = self.ax_curve.plot(self.taus, self.curves[:, 0], color=POSITIVE_COLOR, ls="--", label="anchor loss")
        self.ax_curve.axhline(self.uniform_loss, color="grey", ls=":", label=f"uniform softmax: log(2N-1) = {self.uniform_loss:.3g}")
        (self.batch_marker,) = self.ax_curve.plot([], [], "o", color="black", ms=8)
        (self.anchor_marker,) = self.ax_curve.plot([], [], "o", color=POSITIVE_COLOR, ms=7)
        self.tau_line = self.ax_curve.axvline(1.0, color="grey", lw=0.8)
        self.ax_curve.set_xscale("log")
        self.ax_curve.set_xlabel("temperature τ (markers: the slider's τ)")
        self.ax_curve.set_ylabel("loss")
        # above the axes, where no curve can run under it
        self.curve_legend = self.ax_curve.legend(loc="lower left", bbox_to_anchor=(0, 1.02, 1, 0.1), mode="expand", borderaxespad=0)
        plain_tick_labels(self.ax_bars, self.ax_curve)
        # what a tau step moves; the bottom spine and the uniform line are redrawn over the bars, as a full draw has them
        self.plot.set_dynamic([*self.bars, *self.bar_texts, self.ax_bars.title, self.uniform_prob_line, self.ax_bars.spines["bottom"],
                               self.batch_marker, self.anchor_marker, self.tau_line])

    def update(self, change=None) -> None:
        """Recompute the numbers at the current tau/anchor and redraw in place (cheap: O(4N^2))."""
        tau, i = float(self.tau_slider.value), int(self.anchor_dropdown.value)
        with one_thread():
            losses = info_nce_from_similarity(self.S, self.positives, tau)  # (2N,) l(i, j(i))
            candidates, probs = candidate_softmax(self.S, i, tau)  # (2N-1,), (2N-1,)
        j = int(self.positives[i])
        self.state = {
            "tau": tau, "anchor": i, "positive": j,
            "losses": losses.tolist(), "loss": float(losses.mean()),
            "candidates": candidates.tolist(), "probs": probs.tolist(),
            "positive_prob": float(probs[candidates.tolist().index(j)]),
        }
        self._draw()  # figure first: the numbers and the plot then reach the page together
        self.table.value = self._table_html()

    def _table_html(self) -> str:
        s, n = self.state, self.S.shape[0]
        rows = range(n) if n <= 16 else sorted({s["anchor"], s["positive"]})
        cell = 'style="padding:2px 10px; text-align:right"'
        body = []
        for r in rows:
            hl = ' style="background:#fde0c5; font-weight:bold"' if r == s["anchor"] else ""
            p = int(self.positives[r])
            body.append(
                f"<tr{hl}><td {cell}>{html.escape(self.labels[r])}</td><td {cell}>{html.escape(self.labels[p])}</td>"
                f"<td {cell}>{fmt(float(self.S[r, p]), '.3f')}</td>"
                f'<td {cell} class="simclr-anchor-loss" data-anchor="{r}">{fmt(s["losses"][r], ".4f")}</td>'
                f"<td {cell}>{math.exp(-s['losses'][r]):.4f}</td></tr>"
            )
        phrase = '<span class="simclr-phrase" style="white-space:nowrap">'
        more = "" if n <= 16 else f"<p>({n} anchors; the table lists the selected anchor and its positive)</p>"
        return (
            # three phrases, each kept on one line (white-space: nowrap), so a narrow column breaks between them only
            f'<div class="simclr-readout" style="font-size:15px">{phrase}<b>τ = <span class="simclr-tau" data-value="{s["tau"]!r}">'
            f'{tau_text(s["tau"])}</span></b></span> &nbsp; {phrase}batch loss L = mean<sub>i</sub> l(i, j) = '
            f'<b><span class="simclr-batch-loss">{fmt(s["loss"], ".4f")}</span></b></span>'
            f" &nbsp; {phrase}(uniform softmax: log(2N-1) = {self.uniform_loss:.4f})</span></div>"
            f'<table style="border-collapse:collapse; font-size:14px"><tr><th {cell}>anchor i</th><th {cell}>positive j</th>'
            f"<th {cell}>sim(i, j)</th><th {cell}>l(i, j)</th><th {cell}>p<sub>i</sub>(j) = exp(-l)</th></tr>"
            + "".join(body) + "</table>" + more
        )

    def _draw(self) -> None:
        s = self.state
        i, j, tau = s["anchor"], s["positive"], s["tau"]
        n_cand, jx = len(s["candidates"]), s["candidates"].index(j)
        if n_cand <= MAX_BARS:
            shown = list(range(n_cand))  # bar x <-> candidate position x
            what = "its softmax over the candidates k ≠ i"
        else:  # the positive first, then the most probable negatives
            negatives = sorted((x for x in range(n_cand) if x != jx), key=lambda x: -s["probs"][x])
            shown = [jx] + negatives[: MAX_BARS - 1]
            what = f"its positive and top {MAX_BARS - 1} of {n_cand - 1} negatives"
        s["shown"] = [s["candidates"][x] for x in shown]  # candidate row index of each bar
        # zoom to what is shown when hundreds of candidates make every probability small
        top = 1.1 if n_cand <= MAX_BARS else 1.15 * max(s["probs"][shown[0]], s["probs"][shown[1]], 2 / n_cand)
        for bar, x in zip(self.bars, shown):
            bar.set_height(s["probs"][x])
            bar.set_color(POSITIVE_COLOR if x == jx else NEGATIVE_COLOR)
        texts_at = range(len(shown)) if len(self.bar_texts) == len(shown) else [shown.index(jx)]
        for text, b in zip(self.bar_texts, texts_at):
            p = s["probs"][shown[b]]
            text.set_position((b, p + 0.01 * top))
            text.set_text(f"{p:.3f}" if p >= 0.001 else f"{p:.0e}")
            text.set_color(POSITIVE_COLOR if shown[b] == jx else "black")
        self.ax_bars.set_title(f"anchor {self.labels[i]} at τ = {tau_text(tau)}:\n{what}\n"
                               f"orange: positive {self.labels[j]}; dotted: uniform 1/(2N-1)", fontsize=self.title_pt)
        self.batch_marker.set_data([tau], [s["loss"]])
        self.anchor_marker.set_data([tau], [s["losses"][i]])
        self.tau_line.set_xdata([tau, tau])
        key = (i, tuple(s["shown"]), round(top, 12))
        if key != self._static_key:  # the background changes: other anchor, other bars, other limits
            self._static_key = key
            self._draw_static(i, top)
        self.plot.render()

    def _draw_static(self, i: int, top: float) -> None:
        """What depends on the anchor (or the bars' zoom), not on tau: tick labels, limits, the anchor's curve."""
        shown = self.state["shown"]
        if len(shown) <= 24:
            self.ax_bars.set_xticks(range(len(shown)), [self.labels[k] for k in shown], rotation=45 if len(shown) > 8 else 0)
        else:
            self.ax_bars.set_xticks([])
        if self.ax_bars.get_ylim()[1] != top:
            self.ax_bars.set_ylim(0, top)
            self.plot.relayout()  # the y tick labels change width with the zoom
        self.anchor_line.set_ydata(self.curves[:, i])
        self.curve_legend.get_texts()[1].set_text(f"anchor {self.labels[i]}: loss l(i, j)")
        self.ax_curve.set_ylim(0, 1.08 * max(self.curves.mean(axis=1).max(), self.curves[:, i].max(), self.uniform_loss, 1.0))
        self.plot.invalidate()


def temperature_explorer(S=None, positives=None, tau: float = 0.1, embeddings=None) -> TemperatureExplorer:
    """The temperature explorer widget.

    Args:
        S: (2N, 2N) similarity matrix (diagonal ignored); default: the seed exercise's 6 x 6 matrix.
        positives: positives[i] = index of anchor i's positive; default for a given S: the exercise
            sheet's adjacent layout (0 <-> 1, 2 <-> 3, ...).
        tau: initial temperature, in [0.01, 5].
        embeddings: alternatively a pair (z1, z2) of (N, D) tensors; S becomes their cosine
            similarities and row k pairs with row k + N (the order of ``nt_xent``).
    """
    return TemperatureExplorer(S=S, positives=positives, tau=tau, embeddings=embeddings)
