"""The v2 SimCLR augmentation: per-image randomness, reproducibility, switchable ops, closed-form cases."""

import pytest
import torch
from torchvision.transforms import v2

from simclr_core.data.augment import AugmentConfig, SimCLRAugment, TwoViews, build_transform


def _images(B=8, C=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, C, size, size), generator=g, dtype=torch.uint8)


def test_two_views_of_one_image_differ():
    x = _images(1)[0]
    torch.manual_seed(0)
    a, b = TwoViews(SimCLRAugment())(x)
    assert a.shape == b.shape == (3, 32, 32) and a.dtype == torch.float32
    assert not torch.allclose(a, b)


def test_different_images_in_a_batch_get_different_crops():
    # the same image repeated B times: one draw for the whole batch would give B identical views
    x = _images(1)[0].expand(16, 3, 32, 32).contiguous()
    cfg = AugmentConfig(flip=False, color_jitter=False, grayscale=False)  # crop only
    torch.manual_seed(0)
    views = SimCLRAugment(cfg)(x)  # (16, 3, 32, 32)
    distinct = {tuple(v.flatten()[:64].tolist()) for v in views}
    assert len(distinct) >= 14


def test_fixed_seed_reproduces_views():
    x = _images(4)
    aug = SimCLRAugment(AugmentConfig(blur=True))
    torch.manual_seed(123)
    a = aug(x)
    torch.manual_seed(123)
    b = aug(x)
    torch.manual_seed(124)
    c = aug(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_all_ops_off_is_the_resized_image():
    x = _images(2)
    cfg = AugmentConfig().without("crop", "flip", "color_jitter", "grayscale")
    out = SimCLRAugment(cfg)(x)
    torch.testing.assert_close(out, x.float() / 255)


def test_grayscale_always_gives_equal_channels_with_luma_weights():
    x = _images(3)
    cfg = AugmentConfig(crop=False, flip=False, color_jitter=False, grayscale=True, grayscale_p=1.0)
    out = SimCLRAugment(cfg)(x)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    luma = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).float() / 255  # ITU-R 601-2
    torch.testing.assert_close(out[:, 0], luma, atol=2e-3, rtol=0)


def test_flip_only_gives_original_or_mirror():
    x = _images(1)[0]
    cfg = AugmentConfig(crop=False, flip=True, color_jitter=False, grayscale=False)
    seen = set()
    torch.manual_seed(0)
    for _ in range(20):
        v = SimCLRAugment(cfg)(x)
        if torch.allclose(v, x.float() / 255):
            seen.add("same")
        elif torch.allclose(v, x.flip(-1).float() / 255):
            seen.add("mirror")
        else:
            raise AssertionError("flip-only view is neither the image nor its mirror")
    assert seen == {"same", "mirror"}


def test_pipeline_matches_paper_parameters():
    t = build_transform(AugmentConfig(strength=1.0, blur=True, size=96))
    ops = {type(o).__name__: o for o in t.transforms}
    crop = ops["RandomResizedCrop"]
    assert crop.scale == (0.08, 1.0) and tuple(crop.size) == (96, 96)
    applied = [o for o in t.transforms if isinstance(o, v2.RandomApply)]
    jitter = [o for o in applied if isinstance(o.transforms[0], v2.ColorJitter)][0]
    cj = jitter.transforms[0]
    assert cj.brightness == pytest.approx((0.2, 1.8)) and cj.hue == pytest.approx((-0.2, 0.2))  # 0.8 s, 0.2 s; s = 1
    assert jitter.p == 0.8 and ops["RandomGrayscale"].p == 0.2
    blur = [o for o in t.transforms if isinstance(o, v2.RandomApply) and isinstance(o.transforms[0], v2.GaussianBlur)]
    assert blur and blur[0].transforms[0].kernel_size == (9, 9)  # ~10% of 96, odd


def test_grayscale_input_works():
    x = _images(2, C=1, size=28)
    out = SimCLRAugment(AugmentConfig(size=28))(x)
    assert out.shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 0}, "size"),
        ({"crop_scale": (0.5, 0.1)}, "crop_scale"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"strength": -1}, "strength"),
        ({"jitter_p": 1.5}, "jitter_p"),
        ({"std": (0.0, 1.0, 1.0)}, "std"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentConfig(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="rotate"):
        AugmentConfig().without("rotate")
    with pytest.raises(ValueError, match="shape"):
        SimCLRAugment()(torch.zeros(32, 32))
