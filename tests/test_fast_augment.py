"""BatchAugment against closed forms, torchvision's per-image functional ops, and the v2 pipeline's statistics."""

import math

import pytest
import torch
from torchvision.transforms.v2 import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from simclr_core.data.augment import AugmentConfig, SimCLRAugment
from simclr_core.data.fast_augment import (LUMA, BatchAugment, adjust_brightness, adjust_contrast, adjust_hue,
                                      adjust_saturation, crop_flip, gaussian_blur, resample_weights, sample_crop_boxes,
                                      to_grayscale)

PLAIN = AugmentConfig(crop=False, flip=False, color_jitter=False, grayscale=False)


def images(B=16, C=3, H=32, W=32, seed=0):
    return torch.randint(0, 256, (B, C, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_full_crop_no_flip_no_colour_is_identity():
    x = images()
    cfg = AugmentConfig(crop_scale=(1.0, 1.0), flip=False, color_jitter=False, grayscale=False)
    y = BatchAugment(cfg)(x, torch.Generator().manual_seed(1))
    assert y.dtype == torch.float32 and y.shape == x.shape
    torch.testing.assert_close(y, x.float() / 255, rtol=0, atol=1e-6)


def test_flip_only_gives_mirror_or_identity_per_image():
    x = images(64)
    y = BatchAugment(AugmentConfig(crop=False, flip=True, color_jitter=False, grayscale=False))(x, torch.Generator().manual_seed(0))
    xf = x.float() / 255
    same = (y - xf).abs().amax((1, 2, 3)) < 1e-6
    mirrored = (y - xf.flip(-1)).abs().amax((1, 2, 3)) < 1e-6
    assert torch.all(same ^ mirrored)  # every image is exactly one of the two
    assert 10 < int(mirrored.sum()) < 54  # p = 0.5 per image, not one coin for the batch


@pytest.mark.parametrize("top,left,h,w", [(0, 0, 32, 32), (3, 5, 20, 12), (10, 0, 16, 30), (4, 4, 8, 8), (0, 25, 32, 7)])
@pytest.mark.parametrize("size", [4, 16, 24, 32, 48])
@pytest.mark.parametrize("flip", [False, True])
def test_crop_matches_torchvision_resized_crop(top, left, h, w, size, flip):
    """Every pixel, border included, equals TF.resized_crop with antialias=True (the v2 pipeline's resize),
    whether the box is shrunk (antialiased), enlarged (bilinear) or both (one axis each)."""
    x = images(1).float() / 255
    H = W = 32
    cx, cy = torch.tensor([(left + w / 2) / W]), torch.tensor([(top + h / 2) / H])
    y = crop_flip(x, cx, cy, torch.tensor([w / W]), torch.tensor([h / H]), torch.tensor([flip]), size)[0]
    ref = TF.resized_crop(x[0], top, left, h, w, [size, size], antialias=True)
    if flip:
        ref = ref.flip(-1)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("C,S,size,scale", [(1, 28, 16, (0.4, 1.0)), (3, 32, 32, (0.08, 1.0)), (3, 32, 20, (0.08, 1.0))])
def test_batch_of_random_boxes_matches_torchvision_per_image(C, S, size, scale):
    """A batch mixing shrunk and enlarged boxes: image b equals TF.resized_crop of its own box (antialiased)."""
    B = 48
    g = torch.Generator().manual_seed(3)
    x = images(B, C, S, S, seed=3).float() / 255
    cx, cy, w, h = sample_crop_boxes(B, S, S, scale, g=g)
    flip = torch.rand(B, generator=g) < 0.5
    y = crop_flip(x, cx, cy, w, h, flip, size)  # (B, C, size, size)
    top, left = ((cy - h / 2) * S).round().long(), ((cx - w / 2) * S).round().long()
    hp, wp = (h * S).round().long(), (w * S).round().long()
    for b in range(B):
        ref = TF.resized_crop(x[b], int(top[b]), int(left[b]), int(hp[b]), int(wp[b]), [size, size], antialias=True)
        torch.testing.assert_close(y[b], ref.flip(-1) if flip[b] else ref, rtol=0, atol=1e-5)


def test_resample_weights_closed_form():
    """Halving 4 pixels: output pixel 0 sits at 1.0 and weighs pixel centres 0.5, 1.5, 2.5 by the triangle
    1 - d/2 (0.75, 0.75, 0.25), normalised by 1.75; doubling the 2-pixel box [1, 3) interpolates at 1/4 and 3/4
    between its pixels and clamps at its edges (pixels 0 and 3, outside the box, get no weight)."""
    down = resample_weights(torch.tensor([0.0]), torch.tensor([4.0]), 4, 2)[0]  # (2, 4)
    torch.testing.assert_close(down, torch.tensor([[3, 3, 1, 0], [0, 1, 3, 3.0]]) / 7)
    up = resample_weights(torch.tensor([1.0]), torch.tensor([2.0]), 4, 4)[0]  # (4, 4): box = pixels 1, 2
    torch.testing.assert_close(up, torch.tensor([[0, 1, 0, 0], [0, 0.75, 0.25, 0], [0, 0.25, 0.75, 0], [0, 0, 1, 0.0]]))


def test_different_images_get_different_crops():
    x = images(1).expand(32, -1, -1, -1).contiguous()  # the same image 32 times
    y = BatchAugment(AugmentConfig(color_jitter=False, grayscale=False, flip=False))(x, torch.Generator().manual_seed(0))
    d = (y[:, None] - y[None]).abs().amax((2, 3, 4))  # (32, 32) pairwise max difference
    off = ~torch.eye(32, dtype=torch.bool)
    assert (d[off] > 1e-3).all(), "two images of the batch received the same crop"


def test_crop_box_statistics_match_torchvision():
    """Area fraction and aspect ratio of the sampled boxes follow RandomResizedCrop.get_params."""
    n = 4000
    g = torch.Generator().manual_seed(0)
    cx, cy, w, h = sample_crop_boxes(n, 32, 32, (0.08, 1.0), g=g)
    area = w * h
    assert ((cx - w / 2) >= -1e-6).all() and ((cx + w / 2) <= 1 + 1e-6).all()
    assert ((cy - h / 2) >= -1e-6).all() and ((cy + h / 2) <= 1 + 1e-6).all()
    torch.manual_seed(0)
    ref = torch.tensor([RandomResizedCrop.get_params(torch.zeros(1, 32, 32), [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)],
                       dtype=torch.float64)  # (n, 4) top, left, h, w
    ref_area = ref[:, 2] * ref[:, 3] / 1024
    assert abs(area.mean().item() - ref_area.mean().item()) < 0.02
    assert abs(area.std().item() - ref_area.std().item()) < 0.02
    assert abs(torch.log(w / h).std().item() - torch.log(ref[:, 3] / ref[:, 2]).std().item()) < 0.02


def test_scale_one_crop_falls_back_to_whole_image():
    cx, cy, w, h = sample_crop_boxes(100, 32, 32, (1.0, 1.0), g=torch.Generator().manual_seed(0))
    assert torch.allclose(w, torch.ones(100)) and torch.allclose(h, torch.ones(100))
    assert torch.allclose(cx, torch.full((100,), 0.5)) and torch.allclose(cy, torch.full((100,), 0.5))


def test_colour_ops_match_torchvision_per_image():
    x = images(12).float() / 255
    f = torch.linspace(0.2, 1.8, 12)
    hue = torch.linspace(-0.45, 0.45, 12)
    for ours, ref, fac in [(adjust_brightness, TF.adjust_brightness, f), (adjust_contrast, TF.adjust_contrast, f),
                           (adjust_saturation, TF.adjust_saturation, f), (adjust_hue, TF.adjust_hue, hue)]:
        y = ours(x, fac)
        r = torch.stack([ref(x[i], float(fac[i])) for i in range(12)])
        torch.testing.assert_close(y, r, rtol=0, atol=2e-5, msg=f"{ours.__name__} differs from torchvision")


def test_identity_factors():
    x = images(8).float() / 255
    one, zero = torch.ones(8), torch.zeros(8)
    for op in (adjust_brightness, adjust_contrast, adjust_saturation):
        torch.testing.assert_close(op(x, one), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(adjust_hue(x, zero), x, rtol=0, atol=1e-5)


def test_grayscale_is_luma():
    x = images(4).float() / 255
    ref = LUMA[0] * x[:, 0] + LUMA[1] * x[:, 1] + LUMA[2] * x[:, 2]
    torch.testing.assert_close(to_grayscale(x)[:, 0], ref)
    cfg = AugmentConfig(crop=False, flip=False, color_jitter=False, grayscale=True, grayscale_p=1.0)
    y = BatchAugment(cfg)(x)
    assert y.shape == x.shape
    for c in range(3):
        torch.testing.assert_close(y[:, c], ref)


def test_blur_matches_torchvision():
    x = images(6).float() / 255
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.8])
    y = gaussian_blur(x, 3, sigma)
    r = torch.stack([TF.gaussian_blur(x[i], [3, 3], [float(sigma[i])] * 2) for i in range(6)])
    torch.testing.assert_close(y, r, rtol=0, atol=1e-5)


def test_same_generator_seed_same_views_and_new_seed_new_views():
    x = images(8)
    aug = BatchAugment(AugmentConfig(blur=True))
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_statistics_match_the_per_image_v2_pipeline():
    """Over many views of one image, mean colour and pixel spread agree with simclr_core.data.augment's v2 pipeline."""
    torch.manual_seed(0)
    x = images(1, seed=5)
    n = 300
    cfg = AugmentConfig()
    fast = BatchAugment(cfg)(x.expand(n, -1, -1, -1), torch.Generator().manual_seed(0))  # (n, 3, 32, 32)
    slow = SimCLRAugment(cfg)(x.expand(n, -1, -1, -1).contiguous())  # (n, 3, 32, 32), loops per image
    for stat in (lambda v: v.mean((2, 3)), lambda v: v.std((2, 3))):
        a, b = stat(fast), stat(slow)  # (n, 3) per-view statistic
        se = torch.sqrt(a.var(0) / n + b.var(0) / n)
        assert ((a.mean(0) - b.mean(0)).abs() < 4 * se + 0.01).all(), (a.mean(0), b.mean(0))


def test_grayscale_input_and_normalize():
    x = images(5, C=1, H=28, W=28)
    cfg = AugmentConfig(size=28, strength=0.5, mean=(0.5,), std=(0.25,), normalize=True)
    y = BatchAugment(cfg)(x, torch.Generator().manual_seed(0))
    assert y.shape == (5, 1, 28, 28)
    assert y.min() >= -2.0 - 1e-6 and y.max() <= 2.0 + 1e-6  # (v - 0.5) / 0.25 for v in [0, 1]


def test_bad_input_raises_value_error():
    aug = BatchAugment(AugmentConfig())
    with pytest.raises(ValueError, match="B, C, H, W"):
        aug(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="int64"):
        aug(torch.zeros(2, 3, 32, 32, dtype=torch.int64))
    with pytest.raises(ValueError, match="AugmentConfig"):
        BatchAugment({"size": 32})
