"""Colour operators for a whole batch, with per-image factors (B,): brightness, contrast, saturation, hue,
grayscale and Gaussian blur, with the formulas of ``torchvision.transforms.v2.functional``. The pipeline that uses
them is ``data.fast_augment``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LUMA", "to_grayscale", "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue",
           "gaussian_blur"]

LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights (ITU-R 601-2)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma; a 1-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)  # (B, 1, H, W)


def _blend(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = f.view(-1, 1, 1, 1).to(x)  # (B, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def adjust_brightness(x, f):
    """x * f, clamped to [0, 1] (f = 1: identity)."""
    return _blend(x, torch.zeros_like(x), f)


def adjust_contrast(x, f):
    """Blend with the mean luma of each image."""
    mean = to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return _blend(x, mean, f)


def adjust_saturation(x, f):
    """Blend with the image's own grayscale version (1-channel images are returned unchanged)."""
    if x.shape[1] == 1:
        return x
    return _blend(x, to_grayscale(x), f)


def _rgb_to_hsv(x):
    r, g, b = x.unbind(1)  # (B, H, W) each
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h, s, v):
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0, 1)
    q = (v * (1.0 - s * f)).clamp(0, 1)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1)
    sel = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros(h.shape[0], 3, *h.shape[1:], dtype=v.dtype, device=v.device)
    for k, (a, b_, c) in enumerate(sel):
        m = (i == k).unsqueeze(1)  # (B, 1, H, W)
        out = torch.where(m, torch.stack([a, b_, c], 1), out)
    return out


def adjust_hue(x, f):
    """Rotate the hue by f (in turns, |f| <= 0.5) per image (1-channel images are returned unchanged)."""
    if x.shape[1] == 1:
        return x
    h, s, v = _rgb_to_hsv(x)
    h = torch.remainder(h + f.view(-1, 1, 1).to(h), 1.0)
    return _hsv_to_rgb(h, s, v)


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur, sigma (B,): separable, reflect padding, one grouped conv per axis."""
    B, C, H, W = x.shape
    half = (kernel_size - 1) / 2
    t = torch.linspace(-half, half, kernel_size, device=x.device, dtype=x.dtype)  # (k,)
    k = torch.exp(-0.5 * (t[None] / sigma.to(x)[:, None]) ** 2)  # (B, k)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B*C, k)
    pad = kernel_size // 2
    y = x.reshape(1, B * C, H, W)
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=B * C)  # (1, B*C, H+2p, W) horizontal
    y = F.conv2d(y, k[:, None, :, None], groups=B * C)  # (1, B*C, H, W) vertical
    return y.view(B, C, H, W)


def _blend_step(x: torch.Tensor, f: torch.Tensor, sat: torch.Tensor, con: torch.Tensor,
                active: torch.Tensor) -> torch.Tensor:
    """One step of the jitter for the whole batch, index-free: where active[b], image b is blended with factor f[b]
    as ``_blend`` does, f x + (1 - f) other, where (1 - f) other = sat[b] gray + con[b] mean-luma, sat = 1 - f for
    saturation, con = 1 - f for contrast, both 0 for brightness (other = 0); elsewhere it stays as it is.
    Exactly the values of ``adjust_brightness`` / ``adjust_contrast`` / ``adjust_saturation`` (one term is 0)."""
    gray = to_grayscale(x)  # (B, 1, H, W)
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1) contrast's mean luma
    rest = gray * sat.view(-1, 1, 1, 1) + mean * con.view(-1, 1, 1, 1)  # (B, 1, H, W): (1 - f) other
    y = (f.view(-1, 1, 1, 1) * x).add_(rest).clamp_(0, 1)
    return torch.where(active.view(-1, 1, 1, 1), y, x, out=y)  # in place: one new (B, C, H, W) tensor per step
