"""Encoders f(.) and the projection head g(.) of SimCLR, read bottom-up.

Chen et al. 2020 (arXiv:2002.05709): h = f(x) is the representation used downstream (linear probe,
fine-tuning), z = g(h) is where the contrastive loss is applied (Sec. 2.1, Fig. 2).
- ``resnet18_cifar``: torchvision's ResNet-18 with the CIFAR stem of the paper's appendix B.9 (3x3
  stride-1 first convolution, no max-pool), returning 512-d features h.
- ``small_cnn``: a 4-block CNN that trains at a few hundred images/s on a laptop CPU. Its 2x2 max-pools round
  up (``ceil_mode``), so an odd-sized map keeps its last row and column: a 28x28 Fashion-MNIST image pools
  28 -> 14 -> 7 -> 4, where flooring would give 3 and drop the bottom and right of the 7x7 map (docs/tuning.md
  compares the two on held-out images). Plain nn layers only: the presets swap in
  the equal but faster layers of ``simclr_core.nn.fast_layers``.
- ``ProjectionHead``: the paper's 2-layer MLP (Linear-BN-ReLU-Linear, as in the reference
  implementation of SimCLR v1) to a 128-d z.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from ..checks import int_in_range, int_tuple, known_name, positive_int

__all__ = ["resnet18_cifar", "small_cnn", "SMALL_CNN_WIDTHS", "ProjectionHead", "SimCLR", "build_encoder", "ENCODERS"]


MAX_LAYER_WEIGHTS = 2**28  # weights of one layer (1 GiB of float32): a size beyond it is a typo, not a network


def _check_channels(in_channels: int) -> None:
    int_in_range("in_channels (3 for RGB, 1 for grayscale)", in_channels, 1, 4096)


def _check_layer(what: str, weights: int, sizes: str) -> None:
    """Refuse a layer larger than ``MAX_LAYER_WEIGHTS`` before anything is allocated (sizes from a config file)."""
    if weights > MAX_LAYER_WEIGHTS:
        raise ValueError(f"{what} would hold {weights} weights ({sizes}), more than the {MAX_LAYER_WEIGHTS} "
                         f"(1 GiB of float32) this library allows in one layer")


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


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


SMALL_CNN_WIDTHS = (32, 64, 128, 256)  # small_cnn's default channel widths


def small_cnn(in_channels: int = 3, widths: tuple[int, ...] = SMALL_CNN_WIDTHS) -> Encoder:
    """A small CPU-friendly CNN: conv-BN-ReLU blocks, 2x2 max-pool (rounding up) between them, global average pool."""
    _check_channels(in_channels)
    widths = int_tuple("widths", widths)
    for c_in, c_out in zip((in_channels, *widths), widths):
        _check_layer("a small_cnn convolution", 9 * c_in * c_out, f"3 x 3 x {c_in} x {c_out}; widths={widths}")
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        layers.append(_block(c, w))
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # odd maps keep their last row/column: 7 -> 4
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # h: the mean of each channel, (B, C)
    return Encoder(nn.Sequential(*layers), out_dim=c)


ENCODERS = {"resnet18_cifar": resnet18_cifar, "small_cnn": small_cnn}


def build_encoder(name: str, in_channels: int = 3) -> Encoder:
    """Encoder by name: one of ``ENCODERS``."""
    return ENCODERS[known_name("encoder", name, sorted(ENCODERS))](in_channels=in_channels)


class ProjectionHead(nn.Module):
    """g(h) = W2 ReLU(BN(W1 h)): the paper's 2-layer MLP projection head (128-d output by default)."""

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128):
        super().__init__()
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        for name, v in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            positive_int(name, v)
        _check_layer("the projection head's first layer", in_dim * hidden_dim, f"in_dim={in_dim} x hidden_dim={hidden_dim}")
        _check_layer("the projection head's last layer", hidden_dim * out_dim, f"hidden_dim={hidden_dim} x out_dim={out_dim}")
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
