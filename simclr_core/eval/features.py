"""Frozen features: h = f(x) for every image, the encoder in eval mode, no augmentation; and raw pixels.

The device, autocast dtype and memory format come from a ``simclr_core.precision.Precision``: the same policy
the run trained with (``--no-amp`` gives float32 features too). A device name stands for that device's policy
(``precision.as_precision``), never for a silent float32.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .. import checks
from ..precision import Precision, as_precision

__all__ = ["extract_features", "raw_pixel_features"]


@torch.no_grad()
def extract_features(encoder: nn.Module, images_uint8: torch.Tensor, batch_size: int = 512,
                     precision: Precision | str | torch.device | None = None, mean=None, std=None) -> torch.Tensor:
    """h = encoder(x / 255) for images (N, C, H, W) uint8 -> (N, d) float32 on the CPU.

    ``precision``: where and how to run (a device name: the policy a run there trains with, ``precision_for``;
    None: float32 on the encoder's device). ``mean``/``std``: per-channel
    standardisation after /255 (as the augmentation did in training), or None. The encoder is put in eval mode
    (BatchNorm uses its running statistics) and restored after.
    """
    if not isinstance(images_uint8, torch.Tensor) or images_uint8.dim() != 4 or images_uint8.dtype != torch.uint8:
        raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {getattr(images_uint8, 'shape', type(images_uint8).__name__)} "
                         f"{getattr(images_uint8, 'dtype', '')}")
    checks.positive_int("batch_size", batch_size)
    precision = as_precision(precision, encoder)
    device = precision.device
    param = next(encoder.parameters(), None)
    if param is not None and param.device.type != device.type:
        raise ValueError(f"the encoder is on {param.device} but the features are asked for on {device}: "
                         f"move it first (precision.prepare(encoder))")
    was_training = encoder.training
    encoder.eval()
    m = s = None
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    out = []
    try:
        for i in range(0, images_uint8.shape[0], batch_size):
            x = images_uint8[i:i + batch_size].to(device, non_blocking=True).float().div_(255)  # (b, C, H, W)
            if m is not None:
                x = (x - m) / s
            with precision.autocast():
                h = encoder(precision.inputs(x))  # (b, d)
            out.append(h.float().cpu())
    finally:
        encoder.train(was_training)
    return torch.cat(out)  # (N, d)


def raw_pixel_features(images_uint8: torch.Tensor) -> torch.Tensor:
    """The raw-pixel baseline: each image flattened to a (C*H*W,) vector in [0, 1]."""
    return images_uint8.reshape(images_uint8.shape[0], -1).float() / 255  # (N, C*H*W)
