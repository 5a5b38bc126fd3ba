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
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import AugmentConfig, check_float_images

__all__ = ["BatchAugment", "sample_crop_boxes", "resample_weights", "crop_flip", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "adjust_hue", "to_grayscale", "gaussian_blur", "LUMA"]

LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights (ITU-R 601-2)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)  # (n,)


# ---------------------------------------------------------------- geometry: crop + flip in one resample

def sample_crop_boxes(B: int, H: int, W: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), g=None, tries: int = 10):
    """Per-image crop boxes as fractions of the image: centre (cx, cy) and size (w, h), each (B,).

    torchvision's RandomResizedCrop.get_params, vectorised: ``tries`` proposals per image, the first
    that fits is kept; images with none that fits get the whole image clamped to the ratio range.
    """
    area = _uniform(B * tries, scale[0], scale[1], g).view(B, tries) * (H * W)  # (B, T) target area, px^2
    log_r = _uniform(B * tries, math.log(ratio[0]), math.log(ratio[1]), g).view(B, tries)  # (B, T)
    r = torch.exp(log_r)  # (B, T) aspect ratio w/h
    w = torch.sqrt(area * r).round()  # (B, T) px
    h = torch.sqrt(area / r).round()  # (B, T) px
    ok = (w > 0) & (h > 0) & (w <= W) & (h <= H)  # (B, T)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((B,), -1))  # (B,) first fitting try
    pick = first.clamp(min=0)
    w_px = w.gather(1, pick[:, None]).squeeze(1)  # (B,)
    h_px = h.gather(1, pick[:, None]).squeeze(1)  # (B,)
    # fallback (torchvision): the whole image, cropped to the nearest allowed ratio
    in_ratio = W / H
    if in_ratio < min(ratio):
        fw, fh = W, round(W / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(H * max(ratio)), H
    else:
        fw, fh = W, H
    none = first < 0
    w_px = torch.where(none, torch.full_like(w_px, fw), w_px)
    h_px = torch.where(none, torch.full_like(h_px, fh), h_px)
    # top-left corner uniform over the integer positions where the box fits, as torchvision does
    top = torch.floor(torch.rand(B, generator=g) * (H - h_px + 1))  # (B,)
    left = torch.floor(torch.rand(B, generator=g) * (W - w_px + 1))  # (B,)
    top = torch.where(none, ((H - h_px) / 2).round(), top)
    left = torch.where(none, ((W - w_px) / 2).round(), left)
    cx = (left + w_px / 2) / W  # (B,) in [0, 1]
    cy = (top + h_px / 2) / H  # (B,)
    return cx, cy, w_px / W, h_px / H


def _output_centres(lo: torch.Tensor, length: torch.Tensor, n_out: int) -> torch.Tensor:
    """(B, n_out) px: where output pixel i sits in the input when [lo_b, lo_b + length_b) is resized to n_out
    pixels: lo + scale (i + 0.5), scale = length / n_out (align_corners=False, as torchvision)."""
    return lo[:, None] + (length / n_out)[:, None] * (torch.arange(n_out, dtype=torch.float32) + 0.5)


def resample_weights(lo: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """Row b, i: the weights over the n_in input pixels of output pixel i when [lo_b, lo_b + length_b)
    (in pixels, (B,) each) is resized to n_out pixels; (B, n_out, n_in), rows sum to 1.

    Antialiased bilinear, as torchvision's ``resize(antialias=True)`` (PyTorch's ``_upsample_bilinear2d_aa``,
    ported from PIL): output pixel i reads the input pixels inside the box through a triangle filter centred
    on ``_output_centres`` and widened to max(scale, 1) pixels, so a downscale averages over every input
    pixel it covers (no aliasing) and an upscale is plain bilinear.
    """
    scale = (length / n_out).view(-1, 1, 1)  # (B, 1, 1) input px per output px
    centre = _output_centres(lo, length, n_out)[:, :, None]  # (B, n_out, 1)
    j = torch.arange(n_in, dtype=torch.float32).view(1, 1, -1) + 0.5  # (1, 1, n_in) input pixel centres
    wt = (1 - (j - centre).abs() / scale.clamp(min=1)).clamp(min=0)  # (B, n_out, n_in) triangle filter
    lo, hi = lo.view(-1, 1, 1), (lo + length).view(-1, 1, 1)
    wt = wt * ((j > lo) & (j < hi))  # only pixels inside the box
    return wt / wt.sum(-1, keepdim=True)


def _upsample_coords(top, left, hp, wp, flip, H: int, W: int, size: int):
    """Boxes no larger than the output on both axes: there the antialiased filter is bilinear interpolation at the
    output centres clamped to the box's first and last pixel centres. gx, gy: (b, size) each, the grid_sample
    coordinates (in [-1, 1]) of the output columns (mirrored where flip) and rows."""
    def coords(lo, length, n_in):  # (b, size) in grid_sample's [-1, 1] units
        c = _output_centres(lo, length, size)  # (b, size) px
        c = torch.minimum(torch.maximum(c, lo[:, None] + 0.5), (lo + length)[:, None] - 0.5)
        return 2 * c / n_in - 1

    gx = coords(left, wp, W)
    gx = torch.where(flip.view(-1, 1), gx.flip(1), gx)  # mirrored where flip
    return gx, coords(top, hp, H)


def _resample_mats(top, left, hp, wp, flip, H: int, W: int, size: int):
    """Any boxes: the ``resample_weights`` of rows (b, size, H) and columns (b, size, W), columns mirrored where flip."""
    rows = resample_weights(top, hp, H, size)  # (b, size, H)
    cols = resample_weights(left, wp, W, size)  # (b, size, W)
    return rows, torch.where(flip.view(-1, 1, 1), cols.flip(1), cols)


def _crop_plan(H: int, W: int, cx, cy, w, h, flip, size: int) -> list:
    """The CPU half of ``crop_flip``: from the (B,) boxes, which resample each image takes and its weights.

    A list of (kind, idx, weights): kind "up" with weights (gx, gy) from ``_upsample_coords``, or "resample" with
    (rows, cols) from ``_resample_mats``; idx (b,) the images of that kind, None when it is all of them.
    """
    hp, wp = h * H, w * W  # (B,) box height and width in px
    box = ((cy - h / 2) * H, (cx - w / 2) * W, hp, wp, flip)  # top, left, height, width, flip: (B,) each
    up = (hp <= size + 1e-4) & (wp <= size + 1e-4)  # (B,) upsampled (or kept) on both axes
    if up.all():
        return [("up", None, _upsample_coords(*box, H, W, size))]
    if not up.any():
        return [("resample", None, _resample_mats(*box, H, W, size))]
    plan = []
    for kind, m, weights in (("up", up, _upsample_coords), ("resample", ~up, _resample_mats)):
        i = m.nonzero().squeeze(1)  # (b,) the images of this kind
        plan.append((kind, i, weights(*(t[i] for t in box), H, W, size)))
    return plan


def _crop_apply(x: torch.Tensor, plan: list, size: int) -> torch.Tensor:
    """The device half of ``crop_flip``: ``plan`` from ``_crop_plan``, its tensors on x's device."""
    out = None
    for kind, i, (a, b) in plan:
        xi = x if i is None else x.index_select(0, i)
        if kind == "up":  # a, b = gx, gy: one grid_sample
            grid = torch.stack(torch.broadcast_tensors(a[:, None, :], b[:, :, None]), -1)  # (b, size, size, 2)
            y = F.grid_sample(xi, grid.to(x), mode="bilinear", padding_mode="border", align_corners=False)
        else:  # a, b = rows, cols: y_b = A_b x_b B_b^T
            y = a.to(x).unsqueeze(1) @ xi @ b.to(x).unsqueeze(1).transpose(-1, -2)  # (b, C, size, size)
        if i is None:
            return y
        if out is None:
            out = x.new_empty(x.shape[0], x.shape[1], size, size)
        out.index_copy_(0, i, y)
    return out


def crop_flip(x: torch.Tensor, cx, cy, w, h, flip, size: int) -> torch.Tensor:
    """Resample box b of image b to (size, size), mirrored where flip[b]; x (B, C, H, W) float.

    The box has centre (cx, cy) and size (w, h) as fractions of the image, (B,) CPU tensors each. For an integer box
    this is exactly torchvision's ``resized_crop(..., antialias=True)`` (the v2 pipeline in
    ``simclr_core.data.augment``): the resample is separable, y_b = A_b x_b B_b^T, with A_b the
    ``resample_weights`` of the rows (size, H) and B_b those of the columns (size, W), the rows of B_b
    reversed to mirror. Images whose box is no larger than the output on both axes (every CIFAR-10 crop
    at 32 px) are only upsampled, where that filter is bilinear interpolation at positions clamped into the
    box, so they take one cheaper ``grid_sample`` call instead. The full box at the input size is the identity.
    The weights are computed on the CPU and reach x's device in one copy.
    """
    plan = _crop_plan(x.shape[2], x.shape[3], cx, cy, w, h, flip, size)
    return _crop_apply(x, _to_device(plan, x.device), size)


def _to_device(tree, device: torch.device):
    """``tree`` (nested lists/tuples whose tensors are on the CPU; other leaves kept) with every tensor on ``device``
    in one host-to-device copy (``_packed_copy``); on the CPU, ``tree`` itself."""
    return tree if device.type == "cpu" else _packed_copy(tree, device)


def _packed_copy(tree, device: torch.device):
    """``_to_device`` for any device: the tensors are packed into one flat float buffer (pinned for CUDA, so the
    copy is asynchronous), copied with non_blocking=True and split back into their shapes and dtypes (bool and
    integer tensors travel as floats: exact for the masks, op indices and image indices packed here, |v| < 2**24)."""
    leaves: list[torch.Tensor] = []

    def collect(t):
        if isinstance(t, torch.Tensor):
            leaves.append(t)
        elif isinstance(t, (list, tuple)):
            for u in t:
                collect(u)

    collect(tree)
    if not leaves:
        return tree
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in leaves) else torch.float32
    sizes = [t.numel() for t in leaves]
    buf = torch.empty(sum(sizes), dtype=dtype, pin_memory=device.type == "cuda")
    torch.cat([t.reshape(-1).to(dtype) for t in leaves], out=buf)
    parts = iter(buf.to(device, non_blocking=True).split(sizes))

    def build(t):
        if isinstance(t, torch.Tensor):
            return next(parts).view(t.shape).to(t.dtype)
        if isinstance(t, (list, tuple)):
            return type(t)(build(u) for u in t)
        return t

    return build(tree)


# ---------------------------------------------------------------- colour ops, per-image factors (B,)

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
        if cpu_threads is not None and (isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int) or cpu_threads < 1):
            raise ValueError(f"cpu_threads must be a positive integer or None, got {cpu_threads!r}")
        self.cfg = cfg
        self.cpu_threads = cpu_threads
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
        cfg, g = self.cfg, generator
        B, C, H, W = x.shape
        s = cfg.strength

        # All random parameters first, drawn on the CPU in a fixed order (crop, flip, jitter, grayscale, blur),
        # then everything the device needs in one copy: nothing below waits for the device.
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
            apply = torch.rand(B, generator=g) < cfg.jitter_p  # (B,)
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
            host["jitter"] = (f, sat, con, active, hue_at)
        if cfg.grayscale and C > 1:
            host["gray"] = torch.rand(B, generator=g) < cfg.grayscale_p  # (B,)
        if cfg.blur:
            sigma = _uniform(B, 0.1, 2.0, g)
            host["blur"] = (sigma, torch.rand(B, generator=g) < cfg.blur_p)  # (B,) each
        if cfg.normalize:
            if len(cfg.mean) != C:
                raise ValueError(f"normalize: mean/std have {len(cfg.mean)} channels, images have {C}")
            if self.mean.device != x.device:
                host["norm"] = (self.mean, self.std)
        keys = list(host)
        dev = dict(zip(keys, _to_device([host[k] for k in keys], x.device)))

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
