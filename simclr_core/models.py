"""Encoders f(.) and the projection head g(.) of SimCLR, read bottom-up.

Chen et al. 2020 (arXiv:2002.05709): h = f(x) is the representation used downstream (linear probe,
fine-tuning), z = g(h) is where the contrastive loss is applied (Sec. 2.1, Fig. 2).
- ``resnet18_cifar``: torchvision's ResNet-18 with the CIFAR stem of the paper's appendix B.9 (3x3
  stride-1 first convolution, no max-pool), returning 512-d features h.
- ``small_cnn``: a 4-block CNN that trains at a few hundred images/s on a laptop CPU. Its 2x2 max-pools round
  up (``ceil_mode``), so an odd-sized map keeps its last row and column: a 28x28 Fashion-MNIST image pools
  28 -> 14 -> 7 -> 4, where flooring gave 3 and dropped the bottom and right of the 7x7 map (measured: +0.4 kNN /
  +0.5 linear-probe points on held-out images, docs/tuning.md). Its convolutions are ``Conv3x3``: an
  nn.Conv2d that computes a 2x2 input map (the last block of 16x16 views) as one matrix product, which skips
  the multiply-adds with the zero padding.
- ``ProjectionHead``: the paper's 2-layer MLP (Linear-BN-ReLU-Linear, as in the reference
  implementation of SimCLR v1) to a 128-d z.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

__all__ = ["resnet18_cifar", "small_cnn", "Conv3x3", "GlobalAvgPool", "SMALL_CNN_WIDTHS", "ProjectionHead", "SimCLR", "build_encoder", "ENCODERS"]


def _check_channels(in_channels: int) -> None:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer (3 for RGB, 1 for grayscale), got {in_channels!r}")


class Encoder(nn.Module):
    """A backbone that maps images (B, C, H, W) to features h (B, out_dim)."""

    def __init__(self, body: nn.Module, out_dim: int):
        super().__init__()
        self.body = body
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, out_dim)


def resnet18_cifar(in_channels: int = 3) -> Encoder:
    """ResNet-18 with the CIFAR stem (3x3, stride 1, no max-pool); h is 512-d."""
    _check_channels(in_channels)
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()  # the classifier is replaced by the projection head / linear probe
    return Encoder(net, out_dim=512)


class Conv3x3(nn.Conv2d):
    """A 3x3 convolution (stride 1, zero padding 1, no bias) that computes a 2x2 input map as one matrix product.

    On a 2x2 map every output position (i, j) sees every input position (p, q), through tap (p - i + 1, q - j + 1):

        out[b, (i, j, o)] = sum over (p, q, c) of  W[o, c, p - i + 1, q - j + 1] * x[b, (p, q, c)]

    so the layer is a dense one with a (4 O, 4 C) weight assembled from W's taps: 16 C x O products per image,
    where a convolution over the zero-padded map computes 36 (20 of them multiply padding). Same parameters and
    state_dict as nn.Conv2d, same result up to float rounding (tests/test_models.py). On the Fashion-MNIST cpu
    preset (16x16 views, so the 128 -> 1024 last block sees 2x2 maps) the whole training step is 1.30x faster than
    with nn.Conv2d on a 2-core CPU (``benchmarks/bench_step.py``). Other map sizes, and other devices than the CPU
    (not measured there), take nn.Conv2d's path.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (2, 2) or x.device.type != "cpu":
            return super().forward(x)
        B, C, O = x.shape[0], self.in_channels, self.out_channels
        W = self.weight
        if torch.is_autocast_enabled("cpu"):  # assemble W_big in the autocast dtype: half the bytes to copy
            W = W.to(torch.get_autocast_dtype("cpu"))
            x = x.to(W.dtype)
        Wt = W.permute(2, 3, 0, 1)  # (3, 3, O, C): Wt[kh, kw] is tap (kh, kw)
        blocks = [Wt[1 - i:3 - i, 1 - j:3 - j].permute(2, 0, 1, 3).reshape(O, 4 * C)  # (O, 4C): taps seen by (i, j)
                  for i in (0, 1) for j in (0, 1)]
        W_big = torch.cat(blocks)  # (4O, 4C): rows (i, j, o), columns (p, q, c)
        x_flat = x.permute(0, 2, 3, 1).reshape(B, 4 * C)  # (B, 4C): a view when x is channels_last
        out = x_flat @ W_big.T  # (B, 4O)
        return out.view(B, 2, 2, O).permute(0, 3, 1, 2)  # (B, O, 2, 2), channels_last layout


class GlobalAvgPool(nn.Module):
    """h = the mean of each channel over the map: (B, C, H, W) -> (B, C), written as sum / (H W).

    Same values as nn.AdaptiveAvgPool2d(1) + nn.Flatten(); the sum's backward hands the ReLU before it a
    broadcast gradient that the CPU's channels_last kernels take fast, where the pooling's backward first
    writes a divided NCHW copy. On the Fashion-MNIST cpu preset the whole training step is 1.07x faster than with
    the nn modules (2-core CPU, ``benchmarks/bench_step.py``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum((2, 3)) / (x.shape[2] * x.shape[3])  # (B, C)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(Conv3x3(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


SMALL_CNN_WIDTHS = (32, 64, 128, 256)  # small_cnn's default channel widths


def small_cnn(in_channels: int = 3, widths: tuple[int, ...] = SMALL_CNN_WIDTHS) -> Encoder:
    """A small CPU-friendly CNN: conv-BN-ReLU blocks, 2x2 max-pool (rounding up) between them, global average pool."""
    _check_channels(in_channels)
    if not widths or any((not isinstance(w, int)) or w < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty tuple of positive integers, got {widths!r}")
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        layers.append(_block(c, w))
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # odd maps keep their last row/column: 7 -> 4
        c = w
    layers.append(GlobalAvgPool())
    return Encoder(nn.Sequential(*layers), out_dim=c)


ENCODERS = {"resnet18_cifar": resnet18_cifar, "small_cnn": small_cnn}


def build_encoder(name: str, in_channels: int = 3) -> Encoder:
    """Encoder by name: one of ``ENCODERS``."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid: {sorted(ENCODERS)}")
    return ENCODERS[name](in_channels=in_channels)


class ProjectionHead(nn.Module):
    """g(h) = W2 ReLU(BN(W1 h)): the paper's 2-layer MLP projection head (128-d output by default)."""

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128):
        super().__init__()
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        for name, v in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
        self.out_dim = out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)  # (B, out_dim)


class SimCLR(nn.Module):
    """x -> (h, z): representation h = f(x) and projection z = g(h). ``head=None`` gives z = h."""

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = head if head is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # (B, d_h)
        z = self.head(h)  # (B, d_z)
        return h, z
