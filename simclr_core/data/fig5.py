"""The seven augmentation operators of Chen et al. 2020 (arXiv:2002.05709), Figures 4 and 5, batched.

crop, cutout, colour, Sobel, noise, blur, rotate: each maps x (B, C, H, W) float in [0, 1] to a view of the same
shape, with per-image randomness drawn from the CPU generator g (so a seed gives the same views on CPU and GPU).
``compose(names)`` applies them in order (Figure 5's "1st transformation", then "2nd") and takes uint8 images, as
the trainer's ``augment`` argument does.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from .. import checks
from .augment import MAX_SIZE, AugmentConfig, check_float_images
from .batch_colour import gaussian_blur, to_grayscale
from .batch_crop import crop_flip, sample_crop_boxes
from .fast_augment import BatchAugment

__all__ = ["FIG5_OPS", "compose"]


def op_crop(x, g=None):
    """Random resized crop (scale 0.08-1, aspect 3/4-4/3) back to the full size, no flip."""
    B, _, H, W = x.shape
    cx, cy, w, h = sample_crop_boxes(B, H, W, (0.08, 1.0), g=g)
    return crop_flip(x, cx, cy, w, h, torch.zeros(B, dtype=torch.bool), H)


def op_cutout(x, g=None):
    """Erase (set to 0) one square per image, side U(0.25, 0.5) of the image side, centre anywhere."""
    B, _, H, W = x.shape
    side = (0.25 + 0.25 * torch.rand(B, generator=g)) * H  # (B,) px
    cy, cx = torch.rand(B, generator=g) * H, torch.rand(B, generator=g) * W  # (B,)
    rows = torch.arange(H).view(1, H, 1)
    cols = torch.arange(W).view(1, 1, W)
    inside = ((rows - cy.view(B, 1, 1)).abs() < side.view(B, 1, 1) / 2) & ((cols - cx.view(B, 1, 1)).abs() < side.view(B, 1, 1) / 2)
    return x.masked_fill(inside.unsqueeze(1).to(x.device), 0.0)  # (B, C, H, W)


_COLOR = AugmentConfig(crop=False, flip=False, color_jitter=True, strength=1.0, jitter_p=0.8, grayscale=True, grayscale_p=0.2)


def op_color(x, g=None):
    """The paper's colour distortion, s = 1: jitter (p = 0.8) then grayscale (p = 0.2).

    On 1-channel images only brightness and contrast remain (saturation, hue and grayscale do nothing).
    """
    return BatchAugment(replace(_COLOR, size=x.shape[-1]))(x.clamp(0, 1), generator=g)  # the previous op's rounding


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def op_sobel(x, g=None):
    """Sobel gradient magnitude of the luma, scaled to [0, 1] per image, copied to every channel (deterministic)."""
    y = to_grayscale(x)  # (B, 1, H, W)
    k = torch.stack([_SOBEL, _SOBEL.T]).unsqueeze(1).to(x)  # (2, 1, 3, 3)
    grad = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k)  # (B, 2, H, W)
    mag = grad.pow(2).sum(1, keepdim=True).sqrt()  # (B, 1, H, W)
    mag = mag / mag.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return mag.expand_as(x).contiguous()


def op_noise(x, g=None):
    """Additive Gaussian noise, std U(0.05, 0.25) per image, clamped to [0, 1]."""
    B = x.shape[0]
    std = (0.05 + 0.2 * torch.rand(B, generator=g)).view(B, 1, 1, 1).to(x)
    eps = torch.randn(x.shape, generator=g).to(x)
    return (x + std * eps).clamp(0, 1)


def op_blur(x, g=None):
    """Gaussian blur, sigma U(0.1, 2.0), kernel 10% of the side (at least 3), always applied."""
    k = max(3, int(0.1 * x.shape[-1]) // 2 * 2 + 1)
    return gaussian_blur(x, k, 0.1 + 1.9 * torch.rand(x.shape[0], generator=g))


def op_rotate(x, g=None):
    """Rotation by 0, 90, 180 or 270 degrees, drawn per image (square images)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotate needs square images, got {tuple(x.shape[-2:])}")
    k = torch.randint(0, 4, (x.shape[0],), generator=g).to(x.device).view(-1, 1, 1, 1)
    out = x
    for r in (1, 2, 3):
        out = torch.where(k == r, torch.rot90(x, r, dims=(2, 3)), out)
    return out


FIG5_OPS = {"crop": op_crop, "cutout": op_cutout, "color": op_color, "sobel": op_sobel,
            "noise": op_noise, "blur": op_blur, "rotate": op_rotate}


class compose:
    """A view function x -> op_k(...op_1(x)); ``compose(["crop", "color"])`` is Figure 5's (crop, color) cell.
    ``size``: resize the views to size x size at the end (as the training presets do: cheaper steps)."""

    def __init__(self, names, size: int | None = None):
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            checks.known_name("augmentation", n, FIG5_OPS)
        if size is not None and not (isinstance(size, int) and not isinstance(size, bool) and 4 <= size <= MAX_SIZE):
            raise ValueError(f"size must be an integer >= 4 and <= {MAX_SIZE} (pixels) or None, got {size!r}")
        self.names, self.size = names, size

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3) or 0 in x.shape:
            raise ValueError(f"expected a non-empty batch (B, C, H, W) of 1- or 3-channel images, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.dtype == torch.uint8:
            x = x.float().div(255)
        elif x.is_floating_point():
            check_float_images(x)
            x = x.float()
        else:
            raise ValueError(f"images must be uint8 (0..255) or float (0..1), got dtype {x.dtype}")
        for n in self.names:
            x = FIG5_OPS[n](x, g)
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return x.clamp(0, 1)

    def __repr__(self) -> str:
        return f"compose({self.names})" if self.size is None else f"compose({self.names}, size={self.size})"
