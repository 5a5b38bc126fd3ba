"""Speed-only layers: each computes what a plain nn layer of ``simclr_core.nn.models`` computes, faster on a CPU.

The teaching model is written with plain layers; ``use_fast_layers(encoder)`` swaps these in place (same
parameters, same state_dict, same result up to float rounding: tests/test_models.py). The presets switch it on
(``Recipe.fast_layers``); ``benchmarks/bench_step.py`` measures what each buys.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Conv3x3", "GlobalAvgPool", "use_fast_layers"]


class Conv3x3(nn.Conv2d):
    """A 3x3 convolution (stride 1, zero padding 1, no bias) that computes a 2x2 input map as one matrix product.

    On a 2x2 map every output position (i, j) sees every input position (p, q), through tap (p - i + 1, q - j + 1):

        out[b, (i, j, o)] = sum over (p, q, c) of  W[o, c, p - i + 1, q - j + 1] * x[b, (p, q, c)]

    so the layer is a dense one with a (4 O, 4 C) weight assembled from W's taps: 16 C x O products per image,
    where a convolution over the zero-padded map computes 36 (20 of them multiply padding). Same parameters and
    state_dict as nn.Conv2d, same result up to float rounding (tests/test_models.py). The Fashion-MNIST cpu
    preset's 16x16 views give the 128 -> 1024 last block 2x2 maps, where this pays on a CPU
    (``benchmarks/bench_step.py`` times it; docs/benchmarks.md records the figures). Other map sizes, and other
    devices than the CPU, take nn.Conv2d's path.
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
    writes a divided NCHW copy (``benchmarks/bench_step.py`` times the difference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum((2, 3)) / (x.shape[2] * x.shape[3])  # (B, C)


def _swap(seq: nn.Module) -> None:
    for name, child in list(seq.named_children()):
        if (type(child) is nn.Conv2d and child.kernel_size == (3, 3) and child.stride == (1, 1)
                and child.padding == (1, 1) and child.dilation == (1, 1) and child.groups == 1 and child.bias is None
                and child.padding_mode == "zeros"):
            fast = Conv3x3(child.in_channels, child.out_channels).to(child.weight.device, child.weight.dtype)
            fast.weight = child.weight  # the same Parameter: optimizer state and state_dict keys are unchanged
            setattr(seq, name, fast)
        else:
            _swap(child)
    if isinstance(seq, nn.Sequential):  # AdaptiveAvgPool2d(1) + Flatten -> GlobalAvgPool + Identity (same indices)
        mods = list(seq)
        for i in range(len(mods) - 1):
            a, b = mods[i], mods[i + 1]
            if (type(a) is nn.AdaptiveAvgPool2d and a.output_size in (1, (1, 1)) and type(b) is nn.Flatten
                    and b.start_dim == 1 and b.end_dim == -1):
                seq[i], seq[i + 1] = GlobalAvgPool(), nn.Identity()


def use_fast_layers(module: nn.Module) -> nn.Module:
    """``module`` with every 3x3 stride-1 zero-padded bias-free nn.Conv2d replaced by ``Conv3x3`` and every
    AdaptiveAvgPool2d(1) + Flatten pair by ``GlobalAvgPool`` (in place; returned for chaining)."""
    _swap(module)
    return module
