"""The SimCLR augmentation t ~ T on a whole batch at once, on the training device.

Same ops and ranges as ``simclr_core.data.augment`` (Chen et al. 2020, arXiv:2002.05709, Sec. 3 and
Appendix A; defaults = the CIFAR-10 recipe of Appendix B.9: strength s = 0.5, no blur), but instead of
a Python loop over images every op is one tensor operation over the batch with per-image parameters:

- random resized crop + horizontal flip: one separable resample with torchvision's antialiased bilinear
  filter, as two batched matrix products whose per-image weights encode the crop box and the flip (one
  ``grid_sample`` call for boxes that are only upsampled); the box is sampled as torchvision does: scale
  U(lo, hi) of the area, log-uniform aspect ratio in [3/4, 4/3], 10 tries, then the whole image;
- colour jitter with p = jitter_p: brightness, contrast, saturation factors U(max(0, 1 - 0.8s), 1 + 0.8s)
  and hue shift U(-0.2s, 0.2s) per image, the four ops in a per-image random order (as torchvision's
  ColorJitter draws a fresh order for every call), formulas as in torchvision.transforms.v2.functional;
- grayscale with p = grayscale_p (luma 0.2989 R + 0.587 G + 0.114 B, kept as C channels);
- optional Gaussian blur with p = blur_p, sigma U(0.1, 2.0), per-image kernels in one grouped conv.

Float input is checked to be finite and in [0, 1] (one host read); uint8 input needs no check.
Random parameters are drawn on the CPU from the ``torch.Generator`` you pass (so a seed gives the
same views on CPU and GPU); they and what is computed from them there (crop weights, each jitter step's
factors, the indices of the images whose hue shift comes at that step) reach the images' device in one
non-blocking copy per call. The pixels never leave the device, and for uint8 input nothing waits for it: no
``.item()``, ``.any()`` or boolean-mask indexing of device tensors, so a GPU's queue is never drained mid-call.

The batched operators are ``data.batch_crop`` (crop + flip, and the one host-to-device copy) and ``data.batch_colour``
(the colour ops and the blur); their public names are importable from here as well. This module is the pipeline: which
ops run, with which probability and parameters, in which order.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .. import checks
from .augment import AugmentConfig, check_float_images
from .batch_colour import (LUMA, _blend_step, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation,
                           gaussian_blur, to_grayscale)
from .batch_crop import _crop_apply, _crop_plan, _to_device, _uniform, crop_flip, resample_weights, sample_crop_boxes

__all__ = ["BatchAugment", "sample_crop_boxes", "resample_weights", "crop_flip", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "adjust_hue", "to_grayscale", "gaussian_blur", "LUMA"]


def _float_images(x) -> torch.Tensor:
    """A (B, C, H, W) batch of 1- or 3-channel uint8 (0..255) or float (0..1) images as float32 in [0, 1]."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"expected a batch tensor (B, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[1] not in (1, 3) or x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"expected a non-empty batch of 1-channel (grayscale) or 3-channel (RGB) images, got shape "
                         f"{tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    elif x.is_floating_point():
        check_float_images(x)  # the one host read, for float input only: uint8, the training path, needs none
        x = x.float()
    else:
        raise ValueError(f"images must be uint8 (0..255) or float (0..1), got dtype {x.dtype}")
    return x


def _jitter_params(B: int, C: int, s: float, p: float, g: torch.Generator | None) -> tuple:
    """The colour jitter's parameters, drawn on the CPU: for each of the four steps (columns of the (B, 4) tensors)
    the blend factor f, the (1 - f) weights of the grayscale (sat) and of the mean luma (con), whether a blend happens
    (active), and the images whose hue shift comes at that step with their shifts ((b,), (b,)) or None."""
    apply = torch.rand(B, generator=g) < p  # (B,)
    lo = max(0.0, 1 - 0.8 * s)
    factors = torch.stack([_uniform(B, lo, 1 + 0.8 * s, g) for _ in range(3)], 1)  # (B, 3) bright., contr., sat.
    hue = min(0.2 * s, 0.5)
    shift = _uniform(B, -hue, hue, g)  # (B,)
    order = torch.argsort(torch.rand(B, 4, generator=g), dim=1)  # (B, 4): op done at each step, per image
    n_blend = 3 if C > 1 else 2  # saturation and hue do nothing on one channel
    active = apply[:, None] & (order < n_blend)  # (B, 4): a blend at this step
    f = factors.gather(1, order.clamp(max=2))  # (B, 4) its factor
    sat = torch.where(active & (order == 2), 1 - f, 0.0)  # (B, 4)
    con = torch.where(active & (order == 1), 1 - f, 0.0)  # (B, 4)
    hue_at = [None] * 4  # per step: (the images whose hue shift comes now (b,), their shifts (b,)) or None
    for step in range(4 if C > 1 else 0):
        i = (apply & (order[:, step] == 3)).nonzero().squeeze(1)  # CPU tensors: no device sync
        if len(i):
            hue_at[step] = (i, shift[i])
    return f, sat, con, active, hue_at


class BatchAugment(nn.Module):
    """x (B, C, H, W) uint8 or float in [0, 1] -> one random view (B, C, size, size) float32.

    Every image draws its own crop, flip, jitter factors and order, grayscale and blur coins.
    Call it twice for the two views of SimCLR. ``generator``: a CPU ``torch.Generator`` (or None for
    the global RNG) from which all random parameters are drawn. ``cpu_threads``: torch threads used
    while augmenting CPU tensors (None: leave the setting alone).
    """

    def __init__(self, cfg: AugmentConfig = AugmentConfig(), cpu_threads: int | None = 1):
        super().__init__()
        if not isinstance(cfg, AugmentConfig):
            raise ValueError(f"cfg must be an AugmentConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.cpu_threads = checks.optional(checks.positive_int, "cpu_threads", cpu_threads)
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, -1, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # On the CPU these are many small element-wise ops: one thread avoids OpenMP barrier overhead,
        # which dominates them on a busy laptop.
        if isinstance(x, torch.Tensor) and x.device.type == "cpu" and self.cpu_threads is not None:
            prev = torch.get_num_threads()
            if prev != self.cpu_threads:
                torch.set_num_threads(self.cpu_threads)
                try:
                    return self._forward(x, generator)
                finally:
                    torch.set_num_threads(prev)
        return self._forward(x, generator)

    def _forward(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _float_images(x)
        host = self._draw(x.shape, x.device, generator)
        keys = list(host)
        dev = dict(zip(keys, _to_device([host[k] for k in keys], x.device)))
        return self._run_ops(x, dev)

    def _draw(self, shape: torch.Size, device: torch.device, g: torch.Generator | None) -> dict:
        """All random parameters, drawn on the CPU in a fixed order (crop, flip, jitter, grayscale, blur), and what is
        computed from them there; ``_forward`` copies them to the device in one go, so nothing in ``_run_ops`` waits
        for the device."""
        cfg = self.cfg
        B, C, H, W = shape
        s = cfg.strength
        host: dict = {}
        if cfg.crop:
            cx, cy, w, h = sample_crop_boxes(B, H, W, cfg.crop_scale, g=g)
        else:
            cx = cy = torch.full((B,), 0.5)
            w = h = torch.ones(B)
        flip = torch.rand(B, generator=g) < 0.5 if cfg.flip else torch.zeros(B, dtype=torch.bool)
        if cfg.crop or cfg.flip or (H, W) != (cfg.size, cfg.size):
            host["crop"] = _crop_plan(H, W, cx, cy, w, h, flip, cfg.size)
        if cfg.color_jitter and s > 0:
            host["jitter"] = _jitter_params(B, C, s, cfg.jitter_p, g)
        if cfg.grayscale and C > 1:
            host["gray"] = torch.rand(B, generator=g) < cfg.grayscale_p  # (B,)
        if cfg.blur:
            sigma = _uniform(B, 0.1, 2.0, g)
            host["blur"] = (sigma, torch.rand(B, generator=g) < cfg.blur_p)  # (B,) each
        if cfg.normalize:
            if len(cfg.mean) != C:
                raise ValueError(f"normalize: mean/std have {len(cfg.mean)} channels, images have {C}")
            if self.mean.device != device:
                host["norm"] = (self.mean, self.std)
        return host

    def _run_ops(self, x: torch.Tensor, dev: dict) -> torch.Tensor:
        """The ops on the images, with the parameters of ``_draw`` on x's device."""
        cfg = self.cfg

        # 1. random resized crop + flip (or plain resize), one resample for the whole batch
        if "crop" in dev:
            x = _crop_apply(x, dev["crop"], cfg.size)  # (B, C, size, size)

        # 2. colour jitter with probability jitter_p, four ops in a per-image random order: at each step one
        #    batched blend (brightness, contrast or saturation, per image) and the hue shift of the images whose
        #    turn it is (their indices drawn on the CPU)
        if "jitter" in dev:
            f, sat, con, active, hue_at = dev["jitter"]
            for step in range(4):
                x = _blend_step(x, f[:, step], sat[:, step], con[:, step], active[:, step])  # a new tensor
                if hue_at[step] is not None:
                    i, shift = hue_at[step]
                    x.index_copy_(0, i, adjust_hue(x.index_select(0, i), shift))

        # 3. grayscale with probability grayscale_p
        if "gray" in dev:
            x = torch.where(dev["gray"].view(-1, 1, 1, 1), to_grayscale(x).expand_as(x), x)

        # 4. Gaussian blur with probability blur_p, kernel ~10% of the side, sigma U(0.1, 2.0)
        if "blur" in dev:
            k = max(3, int(0.1 * cfg.size) // 2 * 2 + 1)
            sigma, m = dev["blur"]
            x = torch.where(m.view(-1, 1, 1, 1), gaussian_blur(x, k, sigma), x)

        if cfg.normalize:
            mean, std = dev.get("norm", (self.mean, self.std))
            x = (x - mean.to(x)) / std.to(x)
        return x.contiguous()

    def extra_repr(self) -> str:
        return repr(self.cfg)
