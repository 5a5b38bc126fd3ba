"""Batch-size explorer: slide N, watch the number of negatives, the loss and its gradient.

Chen et al. 2020 (arXiv:2002.05709), Sec. 3 and Fig. 9: with N pairs every anchor sees 2N - 2
negatives, and SimCLR benefits from large batches (4096-8192 in the paper) because more negatives
make the softmax task harder. Two references sit next to the measured loss L(N):

- log(2N - 1): the loss of a uniform softmax over the 2N - 1 candidates (what an encoder that maps
  everything to the same point pays; the tau -> infinity limit);
- log(2N - 1) - L: the InfoNCE lower bound on the mutual information between the two views
  (van den Oord et al. 2018, arXiv:1807.03748, eq. 10 with 2N - 1 candidates), which can never exceed
  log(2N - 1): a small batch caps what the loss can certify.

N = 1 leaves no negatives: the positive is the only candidate, so the loss and its gradient are exactly 0
(exercise Q3). The marked point's loss and gradient come from ``simclr_core.nn.loss.nt_xent`` and autograd; the
curves over N (41 batch sizes, recomputed on every tau) from ``prefix_curves``, the same gradient written out.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
import torch

from ... import checks
from ...nn.loss import nt_xent, positive_pairs, unit_rows
from ..plotting import fmt, plain_tick_labels, text_pt
from .figure_image import FigureImage
from .one_thread import one_thread
from .snapshot import SnapshotMixin
from .temperature import TAU_LOG_STEP, TAU_MAX, TAU_MIN, TAU_READOUT, _check_tau_in_range, tau_text

__all__ = ["BatchSizeExplorer", "batch_size_explorer", "loss_and_grad_norm", "prefix_curves", "random_pairs",
           "slider_grid"]

FILL_COLOR, MARKER_COLOR = "#1b9e77", "#d95f02"
# gradient norms below this are float64 rounding, not signal (a tiny tau: softmax of the positive = 1 - 1e-30,
# stored as 1): the curve shows them as 0 rather than as noise on a 1e-13 scale
GRAD_NOISE = 1e-12


def random_pairs(N: int, D: int, seed: int = 0, noise: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """N random positive pairs: z1 ~ N(0, I), z2 = z1 + noise * N(0, I) (cosine ~ 1/sqrt(1 + noise^2))."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(N, D, generator=g, dtype=torch.float64)  # (N, D)
    z2 = z1 + noise * torch.randn(N, D, generator=g, dtype=torch.float64)  # (N, D)
    return z1, z2


def loss_and_grad_norm(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> tuple[float, float]:
    """NT-Xent loss of the pairs and the norm of its gradient w.r.t. all 2N embeddings (autograd)."""
    z1 = z1.detach().clone().requires_grad_(True)  # (N, D)
    z2 = z2.detach().clone().requires_grad_(True)  # (N, D)
    loss = nt_xent(z1, z2, temperature=tau)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))  # (N, D) each
    return float(loss.detach()), float(torch.sqrt((g1**2).sum() + (g2**2).sum()))


@torch.no_grad()
def prefix_curves(z1: torch.Tensor, z2: torch.Tensor, tau: float, Ns) -> tuple[np.ndarray, np.ndarray]:
    """``loss_and_grad_norm(z1[:n], z2[:n], tau)`` for every n in Ns, without autograd (a slider step's budget):
    with u = z / |z|, logits l = u u^T / tau (diagonal -inf), P = softmax(l) and Y the positives' one-hot,
    dL/dl = (P - Y) / 2n, so dL/du = (A + A^T) u / tau with A = (P - Y) / 2n, and dL/dz = (I - u u^T) dL/du / |z|.
    The unit vectors of a prefix are the prefix of the unit vectors, so they are computed once."""
    u1, u2 = unit_rows(z1), unit_rows(z2)  # (M, D) each
    r1, r2 = (z.norm(dim=1, keepdim=True).clamp_min(1e-30) for z in (z1, z2))  # (M, 1) each; a zero row: 0 gradient
    losses, norms = [], []
    for n in Ns:
        u, r = torch.cat([u1[:n], u2[:n]]), torch.cat([r1[:n], r2[:n]])  # (2n, D), (2n, 1)
        logits = (u / tau) @ u.T  # (2n, 2n)
        logits.fill_diagonal_(float("-inf"))
        logp = torch.log_softmax(logits, dim=1)  # (2n, 2n)
        j = positive_pairs(n)  # (2n,) the positive of each anchor
        rows = torch.arange(2 * n)
        losses.append(float(-logp[rows, j].mean()))
        A = logp.exp()  # (2n, 2n) P
        A[rows, j] -= 1.0  # P - Y
        A /= 2 * n
        gu = (A + A.T) @ u / tau  # (2n, D) dL/du
        gz = (gu - (gu * u).sum(1, keepdim=True) * u) / r  # (2n, D) dL/dz
        norms.append(float(gz.norm()))
    return np.array(losses), np.array(norms)


def slider_grid(max_N: int, N: int, points: int = 41) -> list[int]:
    """The N slider's values: ~``points`` log-spaced integers 1..max_N (every integer where they crowd) and N itself,
    so that equal slider steps are equal factors of N, as on the plots' log axis."""
    return sorted({*np.geomspace(1, max_N, points).round().astype(int).tolist(), N})


class BatchSizeExplorer(SnapshotMixin, widgets.VBox):
    """Slider for N (pairs in the batch), tau slider, numbers table, loss and gradient-norm curves.

    The first N rows of z1 and z2 form the batch; the N slider steps through ``slider_grid`` (log-spaced, like
    the plots' axis). ``state`` holds the numbers shown; ``update()`` is the N-slider callback, ``set_tau()``
    recomputes the curves when tau is released.
    """

    def __init__(self, N: int = 1, D: int = 128, seed: int = 0, embeddings=None, tau: float = 0.5, max_N: int = 256, noise: float = 1.0):
        tau = _check_tau_in_range(tau)
        if embeddings is not None:
            if not isinstance(embeddings, (tuple, list)) or len(embeddings) != 2:
                raise ValueError(f"embeddings must be a pair (z1, z2) of (N, D) tensors, got {type(embeddings).__name__}")
            z1, z2 = embeddings
            nt_xent(z1, z2, tau)  # validates shapes, dtype, finiteness (raises ValueError)
            self.z1, self.z2 = z1.detach(), z2.detach()
        else:
            max_N = checks.int_in_range("max_N", max_N, 1)
            D = checks.int_in_range("D", D, 1)
            seed = checks.int_in_range("seed", seed, 0)
            if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
                raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
            self.z1, self.z2 = random_pairs(max_N, D, seed, noise)  # (max_N, D) each
        self.max_N = self.z1.shape[0]
        N = checks.int_in_range("N", N, 1, self.max_N)
        # the curves' N grid: every N up to 16, then the slider's log-spaced values (the marker sits on a vertex)
        grid = slider_grid(self.max_N, N)
        self.Ns = np.unique(np.concatenate([np.arange(1, min(16, self.max_N) + 1), grid]))

        self.n_slider = widgets.SelectionSlider(options=grid, value=N, description="N (pairs)", continuous_update=True,
                                                style={"description_width": "initial"}, layout=widgets.Layout(width="60%"))
        self.tau_slider = widgets.FloatLogSlider(value=tau, base=10, min=math.log10(TAU_MIN), max=math.log10(TAU_MAX), step=TAU_LOG_STEP,
                                                 description="τ", readout_format=TAU_READOUT, continuous_update=False)
        self.table = widgets.HTML()
        self.plot = FigureImage(figsize=(9.4, 4.0))
        self.ax_loss, self.ax_grad = self.plot.figure.subplots(1, 2, width_ratios=[1.7, 1])  # the loss panel carries a 3-line legend
        self.state: dict = {}
        self._tick_widths = None  # characters of the widest y tick label per panel, as last laid out
        super().__init__([widgets.HBox([self.n_slider, self.tau_slider]), self.table, self.plot.widget])
        self.add_class("simclr-batch-size-explorer")
        self._build_figure()
        self._compute_curves(tau)
        self.n_slider.observe(self.update, names="value")
        self.tau_slider.observe(self.set_tau, names="value")
        self.update()

    def _compute_curves(self, tau: float) -> None:
        """Loss and gradient norm on the N grid (once per tau), drawn in place."""
        with one_thread():
            self.loss_curve, self.grad_curve = prefix_curves(self.z1, self.z2, tau, self.Ns)  # (G,) each
        self.loss_line.set_ydata(self.loss_curve)
        shown = np.where(self.grad_curve < GRAD_NOISE, 0.0, self.grad_curve)  # (G,)
        self.grad_line.set_ydata(shown)
        self.fill.remove()
        self.fill = self.ax_loss.fill_between(self.Ns, self.loss_curve, self.uniform_curve, color=FILL_COLOR, alpha=0.2)
        self.loss_legend.get_texts()[1].set_text(f"NT-Xent loss L (τ = {tau_text(tau)})")
        self.loss_marker.set_data([], []), self.grad_marker.set_data([], [])  # the limits are the curves'
        for ax in (self.ax_loss, self.ax_grad):
            ax.relim(), ax.autoscale_view()
        self.ax_grad.set_ylim(0, 1.08 * (shown.max() or 1e-3))  # small gradients on their own scale; all noise: flat 0
        widths = [max(map(len, ax.yaxis.get_major_formatter().format_ticks(ax.get_yticks()))) for ax in (self.ax_loss, self.ax_grad)]
        if widths != self._tick_widths:  # wider or narrower tick labels: lay the panels out again
            self._tick_widths = widths
            self.plot.relayout()
        self.plot.invalidate()

    def _build_figure(self) -> None:
        ax, axg = self.ax_loss, self.ax_grad
        self.uniform_curve = np.log(2 * self.Ns - 1)  # (G,) log(2N - 1)
        ax.plot(self.Ns, self.uniform_curve, color="grey", ls=":", label="log(2N-1): uniform softmax")
        (self.loss_line,) = ax.plot(self.Ns, self.uniform_curve, color="black", lw=2, label="NT-Xent loss L")
        self.fill = ax.fill_between(self.Ns, self.uniform_curve, self.uniform_curve, color=FILL_COLOR, alpha=0.2,
                                    label="log(2N-1) - L: InfoNCE bound on I(view1; view2)")
        (self.loss_marker,) = ax.plot([], [], "o", color=MARKER_COLOR, ms=8)
        ax.set_xscale("log"), ax.set_xlabel("N (pairs; 2N-2 negatives per anchor)"), ax.set_ylabel("nats")
        # above the axes, where no curve or area can run under it
        self.loss_legend = ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02, 1, 0.1), mode="expand", borderaxespad=0)
        (self.grad_line,) = axg.plot(self.Ns, self.uniform_curve, color="#7570b3", lw=2)
        (self.grad_marker,) = axg.plot([], [], "o", color=MARKER_COLOR, ms=8)
        axg.set_xscale("log"), axg.set_xlabel("N"), axg.set_ylabel("‖∂L/∂z‖ (all 2N embeddings)")
        axg.set_title("gradient norm (autograd);\nN = 1 gives exactly 0", fontsize=text_pt("title"))
        plain_tick_labels(ax, axg)
        self.readout = self.plot.figure.suptitle(" ", fontsize=text_pt("heading"))  # the numbers at the slider's N
        self.plot.set_dynamic([self.loss_marker, self.grad_marker, self.readout])

    def set_tau(self, change=None) -> None:
        """tau-slider callback: recompute the precomputed curves, then the numbers."""
        self._compute_curves(float(self.tau_slider.value))
        self.update()

    def update(self, change=None) -> None:
        N, tau = int(self.n_slider.value), float(self.tau_slider.value)
        with one_thread():
            loss, grad = loss_and_grad_norm(self.z1[:N], self.z2[:N], tau)
        uniform = math.log(2 * N - 1)
        self.state = {"N": N, "tau": tau, "negatives": 2 * N - 2, "loss": loss, "grad_norm": grad,
                      "uniform_loss": uniform, "infonce_bound": uniform - loss}
        s = self.state
        self.loss_marker.set_data([N], [loss])
        self.grad_marker.set_data([N], [grad])
        self.readout.set_text(f"N = {N}, τ = {tau_text(tau)}: L = {fmt(loss, '.4f')}, log(2N-1) = {uniform:.4f}, "
                              f"‖∂L/∂z‖ = {fmt(grad, '.4g')}")
        self.plot.render()
        self.table.value = (  # after the figure: numbers and plot reach the page together
            '<table style="font-size:15px; border-collapse:collapse">'
            f'<tr><td>N (pairs) = <b class="simclr-N">{N}</b>, 2N = {2 * N} views, τ = {tau_text(tau)}</td></tr>'
            f'<tr><td>negatives per anchor 2N-2 = <b class="simclr-negatives">{s["negatives"]}</b></td></tr>'
            f'<tr><td>NT-Xent loss L = <b class="simclr-loss">{fmt(loss, ".4f")}</b> &nbsp; '
            f'gradient norm ‖∂L/∂z‖ = <b class="simclr-grad-norm">{fmt(grad, ".4g")}</b></td></tr>'
            f'<tr><td>uniform softmax loss log(2N-1) = <span class="simclr-uniform">{uniform:.4f}</span> &nbsp; '
            f'InfoNCE bound log(2N-1) - L = <span class="simclr-bound">{fmt(s["infonce_bound"], ".4f")}</span> nats</td></tr></table>'
        )


def batch_size_explorer(N: int = 1, D: int = 128, seed: int = 0, embeddings=None, tau: float = 0.5, max_N: int = 256) -> BatchSizeExplorer:
    """The batch-size explorer widget: random correlated pairs (N <= max_N, dim D, fixed seed) or the
    given ``embeddings=(z1, z2)`` (the slider then runs up to their N). tau defaults to the paper's
    CIFAR-10 value 0.5 (Appendix B.9)."""
    return BatchSizeExplorer(N=N, D=D, seed=seed, embeddings=embeddings, tau=tau, max_N=max_N)
