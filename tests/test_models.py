"""Encoders, projection head and the (h, z) module: shapes on CIFAR-sized input and the CIFAR stem; the speed-only
layers of simclr_core.nn.fast_layers against the plain ones."""

import copy

import pytest
import torch
import torch.nn as nn

from simclr_core.nn.fast_layers import Conv3x3, GlobalAvgPool, use_fast_layers
from simclr_core.nn.models import ProjectionHead, SimCLR, build_encoder, resnet18_cifar, small_cnn


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


@pytest.mark.parametrize("size", [7, 16, 28, 30, 32, 33])
def test_small_cnn_pools_keep_every_row_and_column(size):
    """Each 2x2 max-pool rounds up, so the last block sees a ceil(size / 8)-sided map (28 -> 14 -> 7 -> 4, not 3)."""
    f = small_cnn(in_channels=1, widths=(4, 4, 4, 4))
    seen = []
    f.body[-3].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[2:])))  # the last conv-BN-ReLU block
    f(torch.randn(2, 1, size, size))
    side = size
    for _ in range(3):
        side = -(-side // 2)  # ceil
    assert seen == [(side, side)]


def test_small_cnn_last_block_sees_the_bottom_right_of_a_28px_map():
    """Zero the block-3 map except its last row/column: with floored pooling h would not depend on it at all."""
    torch.manual_seed(0)
    f = small_cnn(in_channels=1, widths=(4, 4, 4, 8)).eval()
    head, tail = f.body[:5], f.body[5:]  # blocks 1-3 (with 2 pools) | pool 3, block 4, GAP
    m = head(torch.randn(1, 1, 28, 28))  # (1, 4, 7, 7)
    assert m.shape[2:] == (7, 7)
    edge = torch.zeros_like(m)
    edge[..., 6, :] = m[..., 6, :]
    edge[..., :, 6] = m[..., :, 6]
    assert not torch.allclose(tail(edge), tail(torch.zeros_like(m)))


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


# Conv3x3: a 2x2 map computed as one matrix product must equal the convolution over the zero-padded map.

def _reference_conv(x, weight):
    return torch.nn.functional.conv2d(x, weight, padding=1)  # (B, O, H, W)


@pytest.mark.parametrize("B, C, O", [(1, 1, 1), (5, 3, 7), (16, 64, 96)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv3x3_on_2x2_maps_matches_the_padded_convolution(B, C, O, channels_last):
    torch.manual_seed(B + C + O)
    conv = Conv3x3(C, O)
    x = torch.randn(B, C, 2, 2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    w2 = conv.weight.detach().clone().requires_grad_(True)
    out, ref = conv(x1), _reference_conv(x2, w2)
    assert out.shape == ref.shape == (B, O, 2, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, w2.grad, rtol=1e-5, atol=1e-5)


def test_conv3x3_output_by_hand():
    """One input pixel switched on: output (i, j) shows the kernel tap (p - i + 1, q - j + 1)."""
    conv = Conv3x3(1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(9.0).view(1, 1, 3, 3))  # tap (kh, kw) has value 3 kh + kw
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 1, 0] = 1.0  # (p, q) = (1, 0)
    out = conv(x)[0, 0]
    # (i, j) -> tap (1 - i + 1, 0 - j + 1): (0,0)->(2,1)=7, (0,1)->(2,0)=6, (1,0)->(1,1)=4, (1,1)->(1,0)=3
    assert out.tolist() == [[7.0, 6.0], [4.0, 3.0]]


def test_conv3x3_under_bf16_autocast_is_close_to_the_float32_convolution():
    torch.manual_seed(0)
    conv = Conv3x3(32, 64)
    x = torch.randn(8, 32, 2, 2).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), _reference_conv(x, conv.weight.detach()), rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("size", [1, 3, 4, 7])
def test_conv3x3_on_other_maps_is_nn_conv2d(size):
    torch.manual_seed(size)
    conv = Conv3x3(4, 6)
    x = torch.randn(3, 4, size, size)
    assert torch.equal(conv(x), _reference_conv(x, conv.weight))


def test_conv3x3_state_dict_is_nn_conv2d_s():
    conv = Conv3x3(4, 6)
    plain = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    plain.load_state_dict(conv.state_dict())  # strict: same keys and shapes, so old checkpoints load
    x = torch.randn(2, 4, 2, 2)
    torch.testing.assert_close(conv(x), plain(x), rtol=1e-5, atol=1e-5)
    fast = use_fast_layers(small_cnn(widths=(8, 16)))
    assert all(type(m) is Conv3x3 for m in fast.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_global_avg_pool_is_the_channel_mean(size):
    x = torch.randn(3, 4, size, size).contiguous(memory_format=torch.channels_last)
    naive = torch.stack([torch.stack([x[b, c].flatten().mean() for c in range(4)]) for b in range(3)])  # (3, 4)
    torch.testing.assert_close(GlobalAvgPool()(x), naive)


# use_fast_layers: the teaching model is plain; the swap changes speed only.

FAST_TYPES = (Conv3x3, GlobalAvgPool)


@pytest.mark.parametrize("make", [small_cnn, lambda: small_cnn(in_channels=1, widths=(8, 16)), resnet18_cifar])
def test_the_teaching_models_are_plain(make):
    f = make()
    assert not any(isinstance(m, FAST_TYPES) for m in f.modules())
    assert all(type(m) is nn.Conv2d for m in f.modules() if isinstance(m, nn.Conv2d))


def test_small_cnn_ends_with_a_plain_global_average_pool():
    tail = list(small_cnn().body)[-2:]
    assert type(tail[0]) is nn.AdaptiveAvgPool2d and tail[0].output_size in (1, (1, 1)) and type(tail[1]) is nn.Flatten


def test_use_fast_layers_swaps_in_place_keeping_parameters_and_state_dict():
    f = small_cnn(in_channels=1)
    params = dict(f.named_parameters())
    keys = list(f.state_dict())
    opt = torch.optim.SGD(f.parameters(), lr=0.1)  # made before the swap: must still train the swapped model
    assert use_fast_layers(f) is f
    assert sum(type(m) is Conv3x3 for m in f.modules()) == 4 and sum(type(m) is GlobalAvgPool for m in f.modules()) == 1
    assert not any(type(m) in (nn.Conv2d, nn.AdaptiveAvgPool2d, nn.Flatten) for m in f.modules())
    assert list(f.state_dict()) == keys
    now = dict(f.named_parameters())
    assert now.keys() == params.keys() and all(now[n] is p for n, p in params.items())
    before = {n: p.detach().clone() for n, p in params.items()}
    f(torch.randn(4, 1, 16, 16)).square().mean().backward()
    opt.step()
    assert all(not torch.equal(p, before[n]) for n, p in f.named_parameters() if n.endswith("0.weight"))  # the convs


@pytest.mark.parametrize("in_channels, size", [(1, 28), (1, 16), (3, 16)])  # 16 px: the last block sees 2x2 maps
@pytest.mark.parametrize("channels_last", [False, True])
def test_use_fast_layers_gives_the_plain_small_cnns_outputs_and_gradients(in_channels, size, channels_last):
    torch.manual_seed(size + in_channels)
    plain = small_cnn(in_channels=in_channels)
    fast = use_fast_layers(copy.deepcopy(plain))
    x = torch.randn(6, in_channels, size, size)
    if channels_last:
        plain, fast = plain.to(memory_format=torch.channels_last), fast.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    maps = []  # the last conv-BN-ReLU block's output, plain then fast: the map itself, not only its mean (a
    for f in (plain, fast):  # Conv3x3 that mixed up its output positions would still give the same h)
        f.body[-3].register_forward_hook(lambda m, i, o: maps.append(o.detach().clone()))
    h_plain, h_fast = plain(x), fast(x)  # train mode: BatchNorm on batch statistics
    assert maps[0].shape[2:] == (-(-size // 8),) * 2
    torch.testing.assert_close(maps[1], maps[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h_fast, h_plain, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(h_plain)
    h_plain.backward(g)
    h_fast.backward(g)
    for (n, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=n)
    plain.eval(), fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)  # eval: running statistics


def test_use_fast_layers_gives_the_plain_resnets_outputs():
    """ResNet-18's stride-1 3x3 convolutions become Conv3x3; at 16 px its layer4 works on 2x2 maps."""
    torch.manual_seed(0)
    plain = resnet18_cifar().eval()
    fast = use_fast_layers(copy.deepcopy(plain))
    assert isinstance(fast.body.layer4[1].conv2, Conv3x3) and not isinstance(fast.body.layer4[0].conv1, Conv3x3)  # stride 2 kept
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
