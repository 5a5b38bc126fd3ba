"""Encoders, projection head and the (h, z) module: shapes on CIFAR-sized input and the CIFAR stem."""

import pytest
import torch
import torch.nn as nn

from simclr_core.models import ProjectionHead, SimCLR, build_encoder, resnet18_cifar, small_cnn


def test_resnet18_cifar_shapes_and_stem():
    f = resnet18_cifar()
    assert isinstance(f.body.conv1, nn.Conv2d)
    assert f.body.conv1.kernel_size == (3, 3) and f.body.conv1.stride == (1, 1)
    assert isinstance(f.body.maxpool, nn.Identity)
    f.eval()
    with torch.no_grad():
        h = f(torch.randn(2, 3, 32, 32))
    assert h.shape == (2, 512) and f.out_dim == 512
    # the CIFAR stem keeps 32x32 resolution into layer1 (the ImageNet stem would give 8x8)
    feats = {}
    def hook(module, inputs, output):
        feats["l1"] = output.shape

    f.body.layer1.register_forward_hook(hook)
    with torch.no_grad():
        f(torch.randn(1, 3, 32, 32))
    assert feats["l1"][-2:] == (32, 32)


def test_resnet18_parameter_count_matches_torchvision_minus_fc():
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    n_ref = sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("fc."))
    n_ref += 64 * 3 * 3 * 3 - 64 * 3 * 7 * 7  # 3x3 stem instead of 7x7
    assert sum(p.numel() for p in resnet18_cifar().parameters()) == n_ref


@pytest.mark.parametrize("in_channels, size", [(3, 32), (1, 28)])
def test_small_cnn_shapes(in_channels, size):
    f = small_cnn(in_channels=in_channels)
    h = f(torch.randn(4, in_channels, size, size))
    assert h.shape == (4, 256) and f.out_dim == 256


def test_projection_head_and_simclr_module():
    f = small_cnn(widths=(8, 16))
    g = ProjectionHead(f.out_dim, out_dim=128)
    h, z = SimCLR(f, g)(torch.randn(5, 3, 32, 32))
    assert h.shape == (5, 16) and z.shape == (5, 128)
    # 2-layer MLP: Linear -> BN -> ReLU -> Linear
    kinds = [type(m) for m in g.net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    # no head: z is h
    h, z = SimCLR(f)(torch.randn(2, 3, 32, 32))
    assert torch.equal(h, z)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_bad_channels(bad):
    with pytest.raises(ValueError, match="in_channels"):
        small_cnn(in_channels=bad)
    with pytest.raises(ValueError, match="in_channels"):
        resnet18_cifar(in_channels=bad)


def test_bad_names_and_dims():
    with pytest.raises(ValueError, match="resnet50.*valid"):
        build_encoder("resnet50")
    with pytest.raises(ValueError, match="out_dim"):
        ProjectionHead(16, out_dim=0)
    with pytest.raises(ValueError, match="widths"):
        small_cnn(widths=())
