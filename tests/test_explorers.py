"""Headless tests of the interactive explorers (simclr_core.teaching.explorers).

Every test drives a widget the way the front end does (``slider.value = x``) and compares what the
widget shows (its ``state`` and the numbers in its HTML) with an independent reference: the library's
loss functions called here, a naive per-anchor loop, or a closed form.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from simclr_core.data.augment import AugmentConfig
from simclr_core.teaching.explorers import augmentation_explorer, batch_size_explorer, temperature_explorer
from simclr_core.teaching.explorers.augmentation import sample_images
from simclr_core.teaching.explorers.batch_size import slider_grid
from simclr_core.teaching.explorers.temperature import TAU_MAX, TAU_MIN, TemperatureExplorer, tau_text
from simclr_core.nn.loss import info_nce_from_similarity, nt_xent, positive_pairs
from simclr_core.teaching.sheet import SEED_POSITIVES, SEED_S

from simclr_core.data.synthetic import write_fake_cifar10


def shown(html: str, css_class: str) -> str:
    """The text of the element with class ``css_class`` in the widget's HTML."""
    m = re.search(rf'class="{css_class}"[^>]*>([^<]*)<', html)
    assert m, f"no element with class {css_class} in {html[:200]}"
    return m.group(1)


def naive_softmax_row(S: torch.Tensor, i: int, tau: float) -> dict[int, float]:
    """p_i(k) for k != i, with plain Python floats (the reference for the bar chart)."""
    n = S.shape[0]
    e = {k: math.exp(float(S[i, k]) / tau) for k in range(n) if k != i}
    z = sum(e.values())
    return {k: v / z for k, v in e.items()}


# ---------------------------------------------------------------- temperature explorer


@pytest.fixture(scope="module")
def seed_explorer():
    """One explorer on the seed matrix, moved from tau to tau by the tests that use it."""
    return temperature_explorer()


def test_temperature_default_is_seed_matrix_at_tau_0_1():
    w = temperature_explorer()
    expected = info_nce_from_similarity(SEED_S, SEED_POSITIVES, 0.1)  # (6,)
    assert w.state["tau"] == pytest.approx(0.1)
    assert w.state["losses"] == pytest.approx(expected.tolist(), rel=1e-12)
    assert float(shown(w.table.value, "simclr-batch-loss")) == pytest.approx(float(expected.mean()), abs=5e-5)
    assert w.plot.widget.value[:8] == b"\x89PNG\r\n\x1a\n"  # a real PNG is shown


@pytest.mark.parametrize("tau", [0.013, 0.05, 0.5, 1.0, 4.2])
def test_temperature_slider_updates_shown_loss(tau, seed_explorer):
    w = seed_explorer
    renders = w.plot.renders
    w.tau_slider.value = tau  # what dragging the slider does
    expected = info_nce_from_similarity(SEED_S, SEED_POSITIVES, tau)  # (6,)
    assert w.state["tau"] == pytest.approx(tau)
    assert w.state["loss"] == pytest.approx(float(expected.mean()), rel=1e-12)
    assert float(shown(w.table.value, "simclr-batch-loss")) == pytest.approx(float(expected.mean()), abs=5e-5)
    for i in range(6):  # every per-anchor cell of the table
        cell = re.search(rf'data-anchor="{i}">([^<]*)<', w.table.value).group(1)
        assert float(cell) == pytest.approx(float(expected[i]), abs=5e-5)
    assert w.plot.renders == renders + 1  # the figure was redrawn once, in place
    assert list(w.batch_marker.get_xdata()) == pytest.approx([tau])
    assert list(w.batch_marker.get_ydata()) == pytest.approx([float(expected.mean())])


def test_temperature_loss_rises_towards_uniform_limit():
    """tau -> infinity: the softmax becomes uniform over 2N - 1 = 5 candidates, loss -> log 5 from below."""
    w = temperature_explorer()
    losses = []
    for tau in (0.05, 0.1, 0.3, 1.0, 5.0):
        w.tau_slider.value = tau
        losses.append(w.state["loss"])
    assert losses == sorted(losses)  # positives are the most similar rows: loss grows with tau
    assert math.log(5) - 0.2 < losses[-1] < math.log(5)
    assert w.uniform_loss == pytest.approx(math.log(5))


def test_temperature_curve_is_the_library_loss_on_the_grid():
    w = temperature_explorer()
    for t in (0, 40, 80, len(w.taus) - 1):
        ref = info_nce_from_similarity(SEED_S, SEED_POSITIVES, float(w.taus[t]))
        assert w.curves[t] == pytest.approx(ref.numpy(), rel=1e-12)
    assert w.taus[0] == pytest.approx(TAU_MIN) and w.taus[-1] == pytest.approx(TAU_MAX)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_anchor_choice_changes_bar_chart(tau):
    w = temperature_explorer(tau=tau)
    losses = info_nce_from_similarity(SEED_S, SEED_POSITIVES, tau)  # (6,)
    heights_by_anchor = []
    for i in range(6):
        w.anchor_dropdown.value = i
        s = w.state
        assert s["anchor"] == i and i not in s["candidates"] and len(s["candidates"]) == 5  # self excluded
        assert sum(s["probs"]) == pytest.approx(1.0, abs=1e-12)
        ref = naive_softmax_row(SEED_S, i, tau)
        assert s["probs"] == pytest.approx([ref[k] for k in s["candidates"]], rel=1e-9)
        j = int(SEED_POSITIVES[i])
        assert s["positive"] == j
        assert s["positive_prob"] == pytest.approx(math.exp(-float(losses[i])), rel=1e-9)  # p_i(j) = exp(-l(i, j))
        heights = [bar.get_height() for bar in w.bars]
        assert heights == pytest.approx(s["probs"])
        colors = [bar.get_facecolor() for bar in w.bars]
        jx = s["candidates"].index(j)
        assert all((c == colors[jx]) == (x == jx) for x, c in enumerate(colors))  # only the positive is highlighted
        heights_by_anchor.append(heights)
    assert heights_by_anchor[0] != pytest.approx(heights_by_anchor[2])


def test_temperature_on_embeddings_matches_nt_xent():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(7, 16, generator=g)
    z2 = z1 + 0.7 * torch.randn(7, 16, generator=g)
    w = temperature_explorer(embeddings=(z1, z2), tau=0.5)
    assert w.S.shape == (14, 14)
    assert w.state["loss"] == pytest.approx(float(nt_xent(z1.double(), z2.double(), 0.5)), rel=1e-9)
    w.tau_slider.value = 0.07
    per_anchor = nt_xent(z1.double(), z2.double(), 0.07, reduction="none")  # (14,) order [z1 rows, z2 rows]
    assert w.state["losses"] == pytest.approx(per_anchor.tolist(), rel=1e-9)
    assert w.state["positive"] == 7  # z1[0] pairs with z2[0], row N


def test_many_candidates_show_positive_and_most_probable_negatives():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(40, 8, generator=g, dtype=torch.float64)
    z2 = z1 + torch.randn(40, 8, generator=g, dtype=torch.float64)
    w = temperature_explorer(embeddings=(z1, z2), tau=0.3)
    w.anchor_dropdown.value = 5
    s = w.state
    probs = dict(zip(s["candidates"], s["probs"]))  # all 79 candidates
    assert len(probs) == 79 and sum(probs.values()) == pytest.approx(1.0)
    negatives = sorted((k for k in probs if k != 45), key=lambda k: -probs[k])
    assert s["shown"] == [45] + negatives[:31]  # positive z2[5] first, then the 31 most probable negatives
    assert [bar.get_height() for bar in w.bars] == pytest.approx([probs[k] for k in s["shown"]])


def test_temperature_on_a_given_matrix_with_halves_positives():
    S = torch.tensor([[0.0, 0.2, 0.8, -0.1], [0.2, 0.0, 0.3, 0.6], [0.8, 0.3, 0.0, 0.1], [-0.1, 0.6, 0.1, 0.0]])
    pos = positive_pairs(2)  # [2, 3, 0, 1]
    w = temperature_explorer(S, pos, tau=0.25)
    assert w.state["losses"] == pytest.approx(info_nce_from_similarity(S, pos, 0.25).tolist(), rel=1e-6)
    # closed form for anchor 0: -log(e^{0.8/t} / (e^{0.2/t} + e^{0.8/t} + e^{-0.1/t}))
    t = 0.25
    l0 = -math.log(math.exp(0.8 / t) / (math.exp(0.2 / t) + math.exp(0.8 / t) + math.exp(-0.1 / t)))
    assert w.state["losses"][0] == pytest.approx(l0, rel=1e-6)
    # a given S without positives uses the exercise sheet's adjacent layout
    assert temperature_explorer(S).state["positive"] == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tau=0.0), "0.0"),
        (dict(tau=-1), "-1"),
        (dict(tau=50.0), r"\[0.01, 5.0\]"),
        (dict(tau=0.001), "0.001"),
        (dict(tau="warm"), "warm"),
        (dict(S=torch.zeros(3, 4)), r"\(3, 4\)"),
        (dict(S=torch.zeros(3, 3)), "even"),
        (dict(S=torch.zeros(4, 4), positives=[1, 0, 3, 3]), "pairing"),
        (dict(S=torch.zeros(4, 4), positives=[1, 0]), "4 integer"),
        (dict(positives=[1, 0, 3, 2, 5, 4]), "without S"),
        (dict(S=SEED_S, embeddings=(torch.zeros(3, 2), torch.zeros(3, 2))), "not both"),
        (dict(embeddings=torch.zeros(3, 2)), "pair"),
        (dict(embeddings=(torch.zeros(3, 2), torch.zeros(4, 2))), "same shape"),
    ],
)
def test_temperature_bad_inputs_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        temperature_explorer(**kwargs)


def test_temperature_bad_anchor_raises():
    with pytest.raises(ValueError, match="0..5"):
        TemperatureExplorer(anchor=6)


def test_header_shows_tau_as_the_slider_readout_does(seed_explorer):
    """One readout per value: d3-format's ".3g" (the slider) keeps trailing zeros, so the header does too."""
    assert seed_explorer.tau_slider.readout_format == ".3g"
    assert [tau_text(t) for t in (0.1, 10**-0.3, 5.0, 0.0123, 1.0)] == ["0.100", "0.501", "5.00", "0.0123", "1.00"]
    seed_explorer.tau_slider.value = 10**-0.3  # where typing 0.5 lands on the slider's grid
    assert shown(seed_explorer.table.value, "simclr-tau") == "0.501"
    assert "τ = 0.501:" in seed_explorer.ax_bars.get_title()


def test_an_arrow_press_moves_tau_by_a_step_a_lecturer_can_use():
    """The slider's step is in log10(tau): 0.1 -> 0.5 takes a handful of presses, not seventy, the range still has
    dozens of positions, and 0.1 and 1 lie on the grid (the browser test presses the keys: tests/test_lecture.py)."""
    for slider in (temperature_explorer().tau_slider, batch_size_explorer(N=2, D=8).tau_slider):
        assert slider.base == 10 and slider.min == pytest.approx(math.log10(TAU_MIN))
        presses = math.log10(0.5 / 0.1) / slider.step
        assert 10 <= presses <= 16, f"0.1 -> 0.5 takes {presses:.0f} arrow presses at step {slider.step}"
        assert (slider.max - slider.min) / slider.step >= 40, "too coarse to follow a curve"
        for on_grid in (0.1, 1.0):
            k = (math.log10(on_grid) - slider.min) / slider.step
            assert k == pytest.approx(round(k), abs=1e-9), f"{on_grid} is not on the slider's grid"


def test_no_negative_zero_in_the_table():
    """A loss that rounds to zero reads 0.0000, also when float rounding leaves it at -1e-17."""
    S = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # one pair: every loss is -log 1
    w = temperature_explorer(S, tau=0.05)
    w.state["losses"] = [-1e-17, -0.0]  # what rounding can leave (forced here, the table formats state)
    w.state["loss"] = -0.0
    cells = re.findall(r'data-anchor="\d">([^<]*)<', w._table_html())
    assert cells == ["0.0000", "0.0000"] and shown(w._table_html(), "simclr-batch-loss") == "0.0000"


def test_a_tau_step_redraws_only_what_moves_and_matches_a_full_draw():
    """Slider frames draw the moving artists over a cached background; the pixels are those of a full redraw."""
    w = temperature_explorer()
    full = w.plot.full_draws
    for tau in (0.2, 0.7, 0.05):
        w.tau_slider.value = tau
    assert w.plot.full_draws == full  # no anchor change: background reused
    fast = w.plot.widget.value
    w.plot.invalidate()
    assert w.plot.render() == fast  # the same PNG bytes from a full draw
    w.anchor_dropdown.value = 3
    assert w.plot.full_draws == full + 2  # a new anchor changes the background (its curve, tick labels)


# ---------------------------------------------------------------- batch-size explorer


def naive_loss(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """NT-Xent as a per-anchor Python loop (the reference for loss and, through autograd, the gradient)."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n, N = z.shape[0], z1.shape[0]
    total = 0.0
    for i in range(n):
        j = (i + N) % n
        others = [k for k in range(n) if k != i]
        denom = sum(torch.exp(z[i] @ z[k] / tau) for k in others)
        total = total - torch.log(torch.exp(z[i] @ z[j] / tau) / denom)
    return total / n


def test_batch_size_one_pair_shows_zero_loss_and_zero_gradient():
    w = batch_size_explorer(N=1)
    s = w.state
    assert s["N"] == 1 and s["negatives"] == 0
    assert s["loss"] == 0.0 and s["grad_norm"] == 0.0  # exactly: the positive is the only candidate
    assert s["uniform_loss"] == 0.0  # log(2N - 1) = log 1
    assert shown(w.table.value, "simclr-loss") == "0.0000"
    assert float(shown(w.table.value, "simclr-grad-norm")) == 0.0
    assert shown(w.table.value, "simclr-negatives") == "0"


@pytest.mark.parametrize("N", [2, 5, 24])
def test_batch_size_slider_matches_naive_loss_and_autograd(N):
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(24, 8, generator=g, dtype=torch.float64)
    z2 = z1 + torch.randn(24, 8, generator=g, dtype=torch.float64)
    w = batch_size_explorer(N=1, embeddings=(z1, z2))
    assert w.n_slider.options[-1] == 24
    w.n_slider.value = N
    a = z1[:N].clone().requires_grad_(True)
    b = z2[:N].clone().requires_grad_(True)
    ref = naive_loss(a, b, 0.5)
    ga, gb = torch.autograd.grad(ref, (a, b))
    ref_grad = math.sqrt(float((ga**2).sum() + (gb**2).sum()))
    s = w.state
    assert s["negatives"] == 2 * N - 2
    ref = ref.detach()
    assert s["loss"] == pytest.approx(float(ref), rel=1e-9)
    assert s["loss"] == pytest.approx(float(nt_xent(z1[:N], z2[:N], 0.5)), rel=1e-12)
    assert s["grad_norm"] == pytest.approx(ref_grad, rel=1e-7)
    assert s["uniform_loss"] == pytest.approx(math.log(2 * N - 1))
    assert s["infonce_bound"] == pytest.approx(math.log(2 * N - 1) - float(ref), rel=1e-9)
    assert float(shown(w.table.value, "simclr-loss")) == pytest.approx(float(ref), abs=5e-5)
    assert int(shown(w.table.value, "simclr-negatives")) == 2 * N - 2


def test_batch_size_slider_is_log_spaced():
    grid = slider_grid(256, 1)
    assert grid[0] == 1 and grid[-1] == 256 and grid[:9] == list(range(1, 10))
    ratios = np.array(grid[13:]) / np.array(grid[12:-1])  # from N = 16 on: equal steps are equal factors
    assert np.allclose(ratios, 256 ** (1 / 40), rtol=0.08)
    w = batch_size_explorer(N=100)
    assert 100 in w.n_slider.options and list(w.n_slider.options) == slider_grid(256, 100)
    assert w.state["N"] == 100 and w.n_slider.readout  # the readout shows the N in the header
    w.n_slider.value = 64
    assert shown(w.table.value, "simclr-N") == "64" and w.plot.full_draws == 1


def test_batch_size_tau_slider_recomputes():
    w = batch_size_explorer(N=16, D=32, seed=2)
    z1, z2 = w.z1[:16], w.z2[:16]
    w.tau_slider.value = 0.1
    assert w.state["loss"] == pytest.approx(float(nt_xent(z1, z2, 0.1)), rel=1e-12)
    k = int(np.nonzero(w.Ns == 16)[0][0])
    assert w.loss_curve[k] == pytest.approx(w.state["loss"], rel=1e-12)  # the precomputed curve is for the new tau


def test_batch_size_random_pairs_are_seeded():
    a, b = batch_size_explorer(N=8, D=16, seed=0, max_N=64), batch_size_explorer(N=8, D=16, seed=0, max_N=64)
    c = batch_size_explorer(N=8, D=16, seed=1, max_N=64)
    assert a.state["loss"] == b.state["loss"] != c.state["loss"]
    assert a.z1.shape == (64, 16) and batch_size_explorer(D=4).z1.shape == (256, 4)
    # more negatives, higher loss: L(64) > L(8)
    a.n_slider.value = 64
    assert a.state["loss"] > b.state["loss"] and a.state["negatives"] == 126


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(N=0), "N must be an integer in 1..256"),
        (dict(N=300), "300"),
        (dict(N=2.5), "2.5"),
        (dict(D=0), "D must"),
        (dict(max_N=0), "max_N"),
        (dict(tau=0), "temperature"),
        (dict(embeddings=(torch.zeros(3, 2), torch.zeros(2, 2))), "same shape"),
        (dict(N=4, embeddings=(torch.ones(3, 2), torch.ones(3, 2))), "1..3"),
    ],
)
def test_batch_size_bad_inputs_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        batch_size_explorer(**kwargs)


# ---------------------------------------------------------------- augmentation explorer


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)  # (B, C, H, W)


def switch(w, **values):
    """Set several controls like a user would, redrawing once at the end."""
    renders = w.plot.renders
    with w.hold():
        for name, value in values.items():
            w.controls[name].value = value
    assert w.plot.renders == renders + 1


def test_views_equal_original_when_every_random_op_is_off(images):
    w = augmentation_explorer(images)
    switch(w, crop=False, flip=False, color_jitter=False, grayscale=False, blur=False)
    assert w.cfg == AugmentConfig(size=32).without("crop", "flip", "color_jitter", "grayscale", "blur")
    assert len(w.state["pipeline"]) == 1 and w.state["pipeline"][0].startswith("Resize(size=[32, 32]")
    assert w.views.shape == (3, 6, 3, 32, 32)
    ref = images.float() / 255  # (B, C, H, W) resizing 32 -> 32 is the identity
    for v in range(6):
        assert torch.allclose(w.views[:, v], ref, atol=1e-6)


def test_flip_only_gives_original_or_mirror(images):
    w = augmentation_explorer(images)
    switch(w, crop=False, color_jitter=False, grayscale=False, blur=False)
    ref = images.float() / 255
    kinds = set()
    for b in range(3):
        for v in range(6):
            x = w.views[b, v]
            same, mirrored = torch.allclose(x, ref[b], atol=1e-6), torch.allclose(x, ref[b].flip(-1), atol=1e-6)
            assert same or mirrored
            kinds.add("same" if same else "mirrored")
    assert kinds == {"same", "mirrored"}  # 18 fair coin flips


def test_grayscale_always_gives_luma_of_original(images):
    w = augmentation_explorer(images)
    switch(w, crop=False, flip=False, color_jitter=False, grayscale_p=1.0)
    assert w.state["pipeline"][-1] == "RandomGrayscale(p=1.0)"
    r, g, b = (images.float() / 255).unbind(1)  # (B, H, W) each
    luma = 0.2989 * r + 0.587 * g + 0.114 * b  # ITU-R 601-2 luma, the weights torchvision uses
    for v in range(6):
        for c in range(3):
            assert torch.allclose(w.views[:, v, c], luma, atol=1e-5)


def test_crop_and_colour_change_views_and_pipeline(images):
    w = augmentation_explorer(images, AugmentConfig(size=32, crop_scale=(0.08, 0.3), jitter_p=1.0))
    names = " ".join(w.state["pipeline"])
    assert "RandomResizedCrop" in names and "ColorJitter" in names
    ref = images.float() / 255
    assert all(not torch.allclose(w.views[b, v], ref[b], atol=0.05) for b in range(3) for v in range(6))
    switch(w, color_jitter=False)
    assert "ColorJitter" not in " ".join(w.state["pipeline"])
    assert w.controls["strength"].disabled and w.controls["jitter_p"].disabled  # its sliders are greyed out
    switch(w, strength=1.0, color_jitter=True)
    lo, hi = re.search(r"brightness=\(([\d.]+), ([\d.]+)\)", " ".join(w.state["pipeline"])).groups()
    assert (float(lo), float(hi)) == pytest.approx((0.2, 1.8))  # 1 -+ 0.8 s with s = 1


def test_new_draw_is_reproducible(images):
    a, b = augmentation_explorer(images), augmentation_explorer(images)
    assert torch.equal(a.views, b.views)  # the same seed gives the same views
    first = a.views.clone()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a.new_draw()  # what the button does
    assert torch.equal(torch.rand(1), before)  # the explorer leaves the caller's RNG alone
    assert a.state["draw"] == 1 and a.state["seed"] == 1
    assert not torch.equal(a.views, first)
    b.new_draw_button.click()
    assert torch.equal(a.views, b.views)


def test_passed_images_are_named_once(images):
    w = augmentation_explorer(images)
    assert w.state["source"] == "3 images passed in"
    assert "images: images" not in w.info.value and "· 3 images passed in" in w.info.value


def test_default_images_fall_back_to_matplotlib_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_DATA", str(tmp_path))  # no CIFAR-10 here
    x, source = sample_images()
    assert x.shape == (2, 3, 96, 96) and x.dtype == torch.uint8 and "matplotlib" in source
    assert x.float().std() > 20  # real photos, not blank
    w = augmentation_explorer()
    assert w.views.shape == (2, 6, 3, 96, 96) and "matplotlib" in w.state["source"]


def test_default_images_use_cifar10_when_present(tmp_path, monkeypatch):
    write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    monkeypatch.setenv("SIMCLR_DATA", str(tmp_path))
    x, source = sample_images(n=4)
    assert x.shape == (4, 3, 32, 32) and source.startswith("CIFAR-10 (test split")
    w = augmentation_explorer()
    assert w.views.shape == (4, 6, 3, 32, 32) and w.cfg.size == 32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(images=torch.zeros(2, 5, 8, 8, dtype=torch.uint8)), r"\(2, 5, 8, 8\)"),
        (dict(images=torch.zeros(8, 8, dtype=torch.uint8)), r"\(8, 8\)"),
        (dict(images=torch.zeros(1, 3, 8, 8, dtype=torch.uint8), cfg={"size": 8}), "AugmentConfig"),
    ],
)
def test_augmentation_bad_inputs_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augmentation_explorer(**kwargs)


# ---------------------------------------------------------------- notebook 04, headless


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_notebook_04_runs_headless_and_shows_the_shortcut(tmp_path, monkeypatch):
    """nbclient runs 04_augmentations.ipynb in smoke mode (no display, as nbgrader would): no errors, the
    explorer is a widget output, and the measured colour-histogram shortcut is weaker with colour jitter."""
    import shutil
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    src = Path(__file__).resolve().parent.parent / "notebooks" / "04_augmentations.ipynb"
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(src, work / src.name)
    monkeypatch.setenv("SIMCLR_SMOKE", "1")
    monkeypatch.setenv("SIMCLR_DATA", str(tmp_path / "no-data"))  # the offline fallback images
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(work / src.name, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    acc = {m[0].strip(): float(m[1]) for m in re.findall(r"^\s+(.+?)\s+histogram retrieval accuracy = ([\d.]+)$", text, re.M)}
    assert set(acc) == {"no augmentation", "crop + flip only", "crop + flip + colour (s=0.5)", "crop + flip + colour (s=1)"}
    assert acc["no augmentation"] > acc["crop + flip only"] > 2 * acc["crop + flip + colour (s=0.5)"]


@pytest.mark.parametrize("tau", [0.01, 0.1, 0.5, 5.0])
def test_prefix_curves_are_autograd_on_every_prefix(tau):
    """The batch-size explorer's curves (the gradient written out) against nt_xent + autograd, N by N."""
    from simclr_core.teaching.explorers.batch_size import loss_and_grad_norm, prefix_curves

    g = torch.Generator().manual_seed(4)
    z1 = 3.0 * torch.randn(40, 16, generator=g, dtype=torch.float64)  # not unit rows: the 1/|z| factor counts
    z2 = z1 + torch.randn(40, 16, generator=g, dtype=torch.float64)
    Ns = [1, 2, 3, 7, 16, 40]
    losses, norms = prefix_curves(z1, z2, tau, Ns)
    for n, loss, norm in zip(Ns, losses, norms):
        ref_loss, ref_norm = loss_and_grad_norm(z1[:n], z2[:n], tau)
        assert loss == pytest.approx(ref_loss, rel=1e-9, abs=1e-12), n
        assert norm == pytest.approx(ref_norm, rel=1e-7, abs=1e-12), n
    assert losses[0] == 0 and norms[0] == 0  # N = 1: no negatives


def test_the_setup_cells_of_01_to_04_show_no_output_value():
    """The setup cell of notebooks 01-04 ends with the call ``use_workbook_style()``, and Jupyter shows a cell's last
    value as ``Out[n]``: the call returns None, so nothing (no font name) is shown under the cell."""
    import ast
    from pathlib import Path

    import nbformat

    from simclr_core.teaching import plotting

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    for name in ("01_similarity_matrix", "02_temperature", "03_batch_size", "04_augmentations"):
        setup = next(c.source for c in nbformat.read(notebooks / f"{name}.ipynb", as_version=4).cells
                     if c.cell_type == "code" and "use_workbook_style" in c.source)
        python = "\n".join(line for line in setup.splitlines() if not line.lstrip().startswith("%"))  # IPython magics
        last = ast.parse(python).body[-1]
        assert isinstance(last, ast.Expr) and ast.unparse(last.value) == "use_workbook_style()", f"{name}: {ast.unparse(last)}"
    try:
        assert plotting.use_workbook_style() is None
        assert plotting.use_projector_style() is None
    finally:
        plotting.use_projector_style(False)
