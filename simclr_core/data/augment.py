"""The SimCLR data augmentation, t ~ T, built from torchvision.transforms.v2.

Chen et al. 2020 (arXiv:2002.05709), Sec. 3 and Appendix A: random resized crop (scale 0.08-1, aspect
3/4-4/3) with horizontal flip, colour distortion of strength s (ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)
applied with p = 0.8, then grayscale with p = 0.2), and Gaussian blur (p = 0.5, kernel 10% of the image
side). Defaults follow the paper's CIFAR-10 recipe (Appendix B.9): s = 0.5 and no blur. Every op can be
switched off for ablations (the paper's Figure 5).

Randomness is per image: a ``SimCLRAugment`` called on a batch (B, C, H, W) draws fresh parameters for
every image, never one crop for the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torchvision.transforms import v2

from .. import checks

__all__ = ["AugmentConfig", "SimCLRAugment", "TwoViews", "build_transform", "check_float_images", "MAX_SIZE"]

MAX_SIZE = 1024  # output side in pixels: ImageNet's 224 and STL-10's 96 fit; 100000 would ask for terabytes


@dataclass(frozen=True)
class AugmentConfig:
    """Which ops run and how strong. Defaults: the paper's CIFAR-10 augmentation."""

    size: int = 32
    crop: bool = True
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    color_jitter: bool = True
    strength: float = 0.5  # s in the paper; 1.0 for ImageNet, 0.5 for CIFAR-10
    jitter_p: float = 0.8
    grayscale: bool = True
    grayscale_p: float = 0.2
    blur: bool = False
    blur_p: float = 0.5
    normalize: bool = False  # standardise with mean/std below after the random ops
    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, ...] = (0.2470, 0.2435, 0.2616)

    def __post_init__(self):
        checks.int_in_range("size (output side in pixels)", self.size, 1, MAX_SIZE)
        cs = self.crop_scale
        if (not isinstance(cs, (tuple, list)) or len(cs) != 2 or not all(isinstance(v, (int, float)) and
                                                                          not isinstance(v, bool) for v in cs)
                or not 0 < cs[0] <= cs[1] <= 1):
            raise ValueError(f"crop_scale must be a pair (low, high) with 0 < low <= high <= 1, got {cs!r}")
        checks.nonnegative_float("strength (s)", self.strength)
        for name in ("jitter_p", "grayscale_p", "blur_p"):
            checks.probability(name, getattr(self, name))
        for name in ("crop", "flip", "color_jitter", "grayscale", "blur", "normalize"):
            checks.boolean(name, getattr(self, name))
        if (not isinstance(self.mean, (tuple, list)) or not isinstance(self.std, (tuple, list))
                or len(self.mean) != len(self.std) or len(self.mean) not in (1, 3)
                or any(not (isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m)) for m in self.mean)
                or any(not (isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < math.inf) for s in self.std)):
            raise ValueError(f"mean and std must be 1 or 3 finite numbers each (one per channel), std > 0, got "
                             f"{self.mean!r}, {self.std!r}")

    def without(self, *ops: str) -> "AugmentConfig":
        """A copy with the named ops switched off, e.g. ``cfg.without("color_jitter", "grayscale")``."""
        for op in ops:
            checks.known_name("augmentation", op, ("crop", "flip", "color_jitter", "grayscale", "blur"))
        return replace(self, **{op: False for op in ops})


def build_transform(cfg: AugmentConfig = AugmentConfig()) -> v2.Compose:
    """The per-image v2 pipeline for one view; input: a uint8 or float image tensor (C, H, W) or PIL."""
    s = cfg.strength
    ops: list = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if cfg.crop:
        ops.append(v2.RandomResizedCrop(cfg.size, scale=cfg.crop_scale, antialias=True))
    else:
        ops.append(v2.Resize((cfg.size, cfg.size), antialias=True))
    if cfg.flip:
        ops.append(v2.RandomHorizontalFlip(p=0.5))
    if cfg.color_jitter and s > 0:
        jitter = v2.ColorJitter(brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=min(0.2 * s, 0.5))
        ops.append(v2.RandomApply([jitter], p=cfg.jitter_p))
    if cfg.grayscale:
        ops.append(v2.RandomGrayscale(p=cfg.grayscale_p))
    if cfg.blur:
        k = max(3, int(0.1 * cfg.size) // 2 * 2 + 1)  # odd kernel, ~10% of the side
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel_size=k, sigma=(0.1, 2.0))], p=cfg.blur_p))
    if cfg.normalize:
        ops.append(v2.Normalize(mean=list(cfg.mean), std=list(cfg.std)))
    return v2.Compose(ops)


ROUNDING = 1e-5  # resampling in float may land a few ulp outside [0, 1]; that much is not a wrong range


def check_float_images(x: torch.Tensor) -> None:
    """Float images must be finite and in [0, 1] (uint8 images are 0..255 by their type). One host read."""
    if x.numel() == 0:
        return
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("float images hold non-finite values (NaN or inf); pixels must be finite numbers in [0, 1]")
    if lo < -ROUNDING or hi > 1 + ROUNDING:
        hint = " (divide by 255, or pass uint8)" if hi > 1.5 else " (undo the normalisation first, e.g. x * 0.5 + 0.5)"
        raise ValueError(f"float images must be in [0, 1], got values from {lo:g} up to {hi:g}{hint}")


class SimCLRAugment:
    """One random view t(x). Works on one image (C, H, W) or a batch (B, C, H, W), per image."""

    def __init__(self, cfg: AugmentConfig = AugmentConfig()):
        self.cfg = cfg
        self.transform = build_transform(cfg)

    def __call__(self, x):
        if isinstance(x, torch.Tensor):
            if x.is_floating_point():
                check_float_images(x)
            elif x.dtype != torch.uint8:
                raise ValueError(f"images must be uint8 (0..255) or float (0..1), got dtype {x.dtype}")
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            return torch.stack([self.transform(img) for img in x])  # (B, C, size, size), one draw per image
        if isinstance(x, torch.Tensor) and x.dim() != 3:
            raise ValueError(f"expected an image (C, H, W) or a batch (B, C, H, W), got shape {tuple(x.shape)}")
        return self.transform(x)  # (C, size, size)

    def __repr__(self) -> str:
        return f"SimCLRAugment({self.cfg})"


class TwoViews:
    """x -> (t(x), t'(x)): two independent random views of the same image (the positive pair)."""

    def __init__(self, augment):
        self.augment = augment

    def __call__(self, x):
        return self.augment(x), self.augment(x)
