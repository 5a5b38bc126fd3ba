"""Random resized crop + horizontal flip for a whole batch in one resample, and the one host-to-device copy of
``BatchAugment``'s parameters.

The crop box is sampled as torchvision's ``RandomResizedCrop`` does (scale U(lo, hi) of the area, log-uniform aspect
ratio in [3/4, 4/3], 10 tries, then the whole image), on the CPU; the resample is torchvision's antialiased bilinear
filter, as two batched matrix products whose per-image weights encode the crop box and the flip, or one
``grid_sample`` call for boxes that are only upsampled. The pipeline that uses them is ``data.fast_augment``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["sample_crop_boxes", "resample_weights", "crop_flip"]


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)  # (n,)


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
