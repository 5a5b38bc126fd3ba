"""Augmentation explorer: switch SimCLR's augmentations on and off, change their strength, look at views.

Chen et al. 2020 (arXiv:2002.05709), Sec. 3 and Fig. 5: no single augmentation suffices; the
composition of random crop and colour distortion matters most, because crops alone let the network
match views by their colour histograms (Fig. 6). The pipeline is ``simclr_core.data.augment.build_transform``
(defaults: the paper's CIFAR-10 recipe, Appendix B.9); this module only draws views with a fixed seed
and shows them.

Images: a few CIFAR-10 test images when the dataset is in ``simclr_core.data.default_root()``, else two
photos that ship with matplotlib (``mpl-data/sample_data``: grace_hopper.jpg and a gift box), so the
explorer works offline everywhere.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn.functional as F

from ...data.augment import AugmentConfig, build_transform
from ...data.datasets import DatasetUnavailable, default_root, load_dataset
from ..plotting import DISPLAY_WIDTH_PX, text_pt
from .figure_image import FigureImage
from .one_thread import one_thread
from .snapshot import SnapshotMixin

__all__ = ["AugmentationExplorer", "augmentation_explorer", "draw_views", "sample_images", "describe_pipeline"]

SAMPLE_FILES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
TOGGLE_W, PARAM_W, P_W = "215px", "330px", "250px"  # the controls' three columns: op, its parameter, its probability


def _matplotlib_samples(side: int) -> torch.Tensor:
    """matplotlib's bundled photos, centre-cropped square and resized to side x side: (K, 3, side, side) uint8."""
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    out = []
    for name in SAMPLE_FILES:
        a = np.asarray(mpimg.imread(cbook.get_sample_data(name, asfileobj=False)), dtype=np.float32)  # (H, W, C)
        if a.max() > 1.0:  # jpg: uint8 range
            a = a / 255.0
        if a.shape[2] == 4:  # RGBA: composite onto white
            a = a[..., :3] * a[..., 3:] + (1.0 - a[..., 3:])
        h, w = a.shape[:2]
        m = min(h, w)
        a = a[(h - m) // 2 : (h - m) // 2 + m, (w - m) // 2 : (w - m) // 2 + m]  # (m, m, 3) centre square
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # (1, 3, m, m)
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        out.append((x[0].clamp(0, 1) * 255).round().to(torch.uint8))  # (3, side, side)
    return torch.stack(out)  # (K, 3, side, side)


def sample_images(n: int = 4, seed: int = 0, root=None, side: int = 96) -> tuple[torch.Tensor, str]:
    """(images (n', 3, H, W) uint8, source name): n CIFAR-10 images if present, else matplotlib's photos."""
    for train in (False, True):
        try:
            ds = load_dataset("cifar10", root=root if root is not None else default_root(), train=train)
        except (DatasetUnavailable, ValueError):
            continue
        sub = ds.subset(min(n, len(ds)), seed=seed)
        return sub.images, f"CIFAR-10 ({'train' if train else 'test'} split, {len(sub)} random images, seed {seed})"
    return _matplotlib_samples(side), "matplotlib sample photos (CIFAR-10 not found in " + str(root or default_root()) + ")"


def draw_views(images: torch.Tensor, cfg: AugmentConfig, n_views: int, seed: int) -> torch.Tensor:
    """n_views independent draws t(x) for every image, reproducible from ``seed``: (B, V, C, S, S) float in [0, 1].

    Uses its own RNG state (``torch.random.fork_rng``), so the caller's random stream is untouched.
    """
    transform = build_transform(replace(cfg, normalize=False))  # show pixels, not standardised values
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)
        return torch.stack([torch.stack([transform(x) for _ in range(n_views)]) for x in images])  # (B, V, C, S, S)


def describe_pipeline(cfg: AugmentConfig) -> list[str]:
    """The ops of ``build_transform(cfg)`` after the dtype conversion, one readable line each."""
    return [repr(op).replace("\n", " ") for op in build_transform(cfg).transforms[2:]]


class AugmentationExplorer(SnapshotMixin, widgets.VBox):
    """Toggles + strength sliders per augmentation, a 'new draw' button, and a grid of views.

    Row b of the grid: the original image b (resized to cfg.size), then ``n_views`` random views.
    ``cfg`` is the AugmentConfig the controls currently describe; ``views`` the (B, V, C, S, S) tensor shown.
    """

    def __init__(self, images=None, cfg: AugmentConfig | None = None, n_views: int = 6, seed: int = 0):
        self.source = None
        if images is None:
            images, self.source = sample_images()
        images = torch.as_tensor(images)
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
            raise ValueError(f"images must be (B, C, H, W) with C in (1, 3), got shape {tuple(images.shape)}")
        self.source = self.source or f"{images.shape[0]} image{'s' if images.shape[0] > 1 else ''} passed in"
        if isinstance(n_views, bool) or not isinstance(n_views, int) or not 1 <= n_views <= 16:
            raise ValueError(f"n_views must be an integer in 1..16, got {n_views!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if cfg is None:
            cfg = AugmentConfig(size=int(images.shape[-1]))
        if not isinstance(cfg, AugmentConfig):
            raise ValueError(f"cfg must be a simclr_core.data.augment.AugmentConfig, got {type(cfg).__name__}")
        self.images, self.base_cfg, self.n_views, self.seed = images, cfg, n_views, seed
        self.draw, self._held = 0, False

        slider = dict(continuous_update=False, style={"description_width": "75px"}, readout_format=".2f")
        toggle = dict(indent=False, layout=widgets.Layout(width=TOGGLE_W))
        param, prob = dict(slider, layout=widgets.Layout(width=PARAM_W)), dict(slider, layout=widgets.Layout(width=P_W))
        self.controls = {
            "crop": widgets.Checkbox(value=cfg.crop, description="random resized crop", **toggle),
            "crop_scale": widgets.FloatRangeSlider(value=cfg.crop_scale, min=0.01, max=1.0, step=0.01, description="crop area", **param),
            "flip": widgets.Checkbox(value=cfg.flip, description="horizontal flip (p = 0.5)", **toggle),
            "color_jitter": widgets.Checkbox(value=cfg.color_jitter, description="colour jitter", **toggle),
            "strength": widgets.FloatSlider(value=cfg.strength, min=0.0, max=1.5, step=0.05, description="strength s", **param),
            "jitter_p": widgets.FloatSlider(value=cfg.jitter_p, min=0.0, max=1.0, step=0.05, description="p", **prob),
            "grayscale": widgets.Checkbox(value=cfg.grayscale, description="random grayscale", **toggle),
            "grayscale_p": widgets.FloatSlider(value=cfg.grayscale_p, min=0.0, max=1.0, step=0.05, description="p", **prob),
            "blur": widgets.Checkbox(value=cfg.blur, description="Gaussian blur", **toggle),
            "blur_p": widgets.FloatSlider(value=cfg.blur_p, min=0.0, max=1.0, step=0.05, description="p", **prob),
        }
        c = self.controls
        self.new_draw_button = widgets.Button(description="new draw", icon="refresh", button_style="info")
        self.info = widgets.HTML()
        B, S = images.shape[0], cfg.size
        cell = min(1.3, (DISPLAY_WIDTH_PX - 20) / 100 / (n_views + 1))  # inches per image: the grid fits the output area
        self.plot = FigureImage(figsize=(cell * (n_views + 1), cell * B + 0.3))
        axes = np.asarray(self.plot.figure.subplots(B, n_views + 1, squeeze=False))  # (B, V + 1)
        self.artists = np.empty(axes.shape, dtype=object)
        for (b, v), ax in np.ndenumerate(axes):
            self.artists[b, v] = ax.imshow(np.zeros((S, S, 3)), vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if b == 0:  # short titles when many narrow columns
                names = ("original", f"view {v}") if n_views <= 8 else ("orig.", str(v))
                ax.set_title(names[v > 0], fontsize=text_pt("note"))
        self.plot.set_dynamic(self.artists.flat)  # a new draw changes the pixels only
        empty = lambda width: widgets.Box(layout=widgets.Layout(width=width))  # noqa: E731
        grid = [c["crop"], c["crop_scale"], empty(P_W), c["flip"], empty(PARAM_W), empty(P_W),
                c["color_jitter"], c["strength"], c["jitter_p"], c["grayscale"], empty(PARAM_W), c["grayscale_p"],
                c["blur"], empty(PARAM_W), c["blur_p"]]
        rows = [widgets.GridBox(grid, layout=widgets.Layout(grid_template_columns=f"{TOGGLE_W} {PARAM_W} {P_W}", align_items="center")),
                widgets.HBox([self.new_draw_button])]
        super().__init__([*rows, self.info, self.plot.widget])
        self.add_class("simclr-augmentation-explorer")
        for w in c.values():
            w.observe(self.update, names="value")
        self.new_draw_button.on_click(self.new_draw)
        self.update()

    @property
    def cfg(self) -> AugmentConfig:
        """The AugmentConfig the controls describe (raises ValueError for an invalid combination)."""
        return replace(self.base_cfg, **{k: (tuple(w.value) if k == "crop_scale" else w.value) for k, w in self.controls.items()})

    @contextmanager
    def hold(self):
        """Change several controls at once with one redraw: ``with ex.hold(): ex.controls["crop"].value = False; ...``."""
        self._held = True
        try:
            yield self
        finally:
            self._held = False
            self.update()

    def new_draw(self, button=None) -> None:
        """Button callback: the next reproducible draw (seed + 1)."""
        self.draw += 1
        self.update()

    def update(self, change=None) -> None:
        if self._held:
            return
        cfg = self.cfg
        for k in ("crop_scale", "strength", "jitter_p", "grayscale_p", "blur_p"):  # grey out what is off
            op = {"crop_scale": "crop", "strength": "color_jitter", "jitter_p": "color_jitter"}.get(k, k.replace("_p", ""))
            self.controls[k].disabled = not getattr(cfg, op)
        seed = self.seed + self.draw
        self.views = draw_views(self.images, cfg, self.n_views, seed)  # (B, V, C, S, S)
        originals = F.interpolate(self.images.float() / 255, size=(cfg.size, cfg.size), mode="bilinear", antialias=True, align_corners=False)
        self.state = {"cfg": cfg, "seed": seed, "draw": self.draw, "pipeline": describe_pipeline(cfg), "source": self.source}
        for b in range(self.views.shape[0]):
            self.artists[b, 0].set_data(_hwc(originals[b]))
            for v in range(self.n_views):
                self.artists[b, v + 1].set_data(_hwc(self.views[b, v]))
        self.plot.render()
        ops = " → ".join(self.state["pipeline"]) or "(no random op: every view is the resized image)"
        self.info.value = (f'<div style="font-size:13px"><b>draw #{self.draw}</b> (seed {seed}) · {self.source}<br>'
                           f'<span class="simclr-pipeline">{ops}</span></div>')


def _hwc(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, 3) for imshow (grey images repeated to RGB)."""
    x = x.clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.permute(1, 2, 0).numpy()


def augmentation_explorer(images=None, cfg: AugmentConfig | None = None) -> AugmentationExplorer:
    """The augmentation explorer widget.

    Args:
        images: (B, C, H, W) uint8 images (a few: each is one row); default: 4 CIFAR-10 images if the
            dataset is present, else matplotlib's bundled photos.
        cfg: the starting AugmentConfig; default: the paper's CIFAR-10 recipe at the images' size.
    """
    return AugmentationExplorer(images=images, cfg=cfg)
