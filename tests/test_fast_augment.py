"""BatchAugment against closed forms, torchvision's per-image functional ops, and the v2 pipeline's statistics."""

import colorsys
import itertools

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from simclr_core.data import batch_crop, fast_augment
from simclr_core.data.augment import AugmentConfig, SimCLRAugment, build_transform
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


# ---------------------------------------------------------------- colour jitter: hue range, per-image order

JITTER_ONLY = dict(crop=False, flip=False, grayscale=False)  # no random draws before the jitter's
OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
TF_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def _jitter_draws(B, cfg, seed):
    """The jitter's parameters as BatchAugment draws them from a generator seeded with ``seed`` (documented order:
    crop, flip, then apply coin (B,), brightness, contrast, saturation factors and hue shift (B,) each, order
    (B, 4)); with crop and flip off the jitter's are the first draws. Returns apply (B,), f (B, 4), order (B, 4)."""
    g = torch.Generator().manual_seed(seed)
    s = cfg.strength
    apply = torch.rand(B, generator=g) < cfg.jitter_p
    lo, hi = max(0.0, 1 - 0.8 * s), 1 + 0.8 * s
    f = [lo + (hi - lo) * torch.rand(B, generator=g) for _ in range(3)]
    h = min(0.2 * s, 0.5)
    f.append(-h + 2 * h * torch.rand(B, generator=g))
    return apply, torch.stack(f, 1), torch.argsort(torch.rand(B, 4, generator=g), dim=1)


def _tv_hue_range(cfg):
    jitter = [o.transforms[0] for o in build_transform(cfg).transforms
              if isinstance(o, v2.RandomApply) and isinstance(o.transforms[0], v2.ColorJitter)]
    return jitter[0].hue  # (lo, hi)


@pytest.mark.parametrize("s", [0.25, 0.5, 1.0])
def test_hue_shifts_are_uniform_over_torchvisions_hue_range(s):
    """Views of a constant image of one colour: brightness, contrast and saturation scale it or add grey to it
    (the mean luma and the grayscale of a constant image are the same grey), which keeps its hue, so the hue of a
    view minus the input's is the hue shift applied to it. Over 4000 views its quantiles are those of U(lo, hi),
    (lo, hi) = (-0.2 s, 0.2 s) the hue range of the v2 pipeline's ColorJitter. The colour sits well inside the
    RGB cube, so the clamps after each op, which would change the hue, rarely act."""
    cfg = AugmentConfig(size=4, jitter_p=1.0, strength=s, **JITTER_ONLY)
    lo, hi = _tv_hue_range(cfg)
    assert (lo, hi) == pytest.approx((-0.2 * s, 0.2 * s))
    colour = (0.5, 0.3, 0.25)
    n = 4000
    x = torch.tensor(colour).view(1, 3, 1, 1).expand(n, 3, 4, 4)
    y = BatchAugment(cfg)(x, torch.Generator().manual_seed(0))
    assert (y == y[:, :, :1, :1]).all()  # still constant
    h0 = colorsys.rgb_to_hsv(*colour)[0]
    d = torch.tensor([colorsys.rgb_to_hsv(*c)[0] - h0 for c in y[:, :, 0, 0].double().tolist()], dtype=torch.float64)
    d = torch.remainder(d + 0.5, 1.0) - 0.5  # (n,) hue shift in turns, in [-0.5, 0.5)
    q = torch.tensor([0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995], dtype=torch.float64)
    torch.testing.assert_close(torch.quantile(d, q), lo + (hi - lo) * q, rtol=0, atol=0.03 * (hi - lo))


def test_jitter_follows_each_images_own_draws_like_torchvision():
    """Image b of the batch equals torchvision's functional ops applied to it one image at a time, with its own
    factors, hue shift and order as drawn from the generator, or is unchanged where its coin said no jitter."""
    B = 96
    cfg = AugmentConfig(size=8, jitter_p=0.8, strength=1.0, **JITTER_ONLY)
    x = torch.rand(B, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = BatchAugment(cfg)(x, torch.Generator().manual_seed(1))
    apply, f, order = _jitter_draws(B, cfg, 1)
    assert 0 < int(apply.sum()) < B
    for b in range(B):
        ref = x[b]
        for k in (order[b].tolist() if apply[b] else []):
            ref = TF_OPS[k](ref, float(f[b, k]))
        torch.testing.assert_close(y[b], ref, rtol=0, atol=2e-5, msg=f"image {b}, order {order[b].tolist()}")


def test_jitter_order_is_random_per_image():
    """The order of the four jitter ops is drawn afresh for every image, as torchvision's ColorJitter does per call.

    Image b's view is compared with its jitter (factors as drawn) applied in each of the 24 orders: the orders that
    reproduce it show, for each pair of ops, which came first, wherever they agree (some ops nearly commute on some
    images). Over the batch each op comes first in about half the images, for every pair: a frozen order, or one
    order for the whole batch, puts one op first everywhere.
    """
    B = 160
    cfg = AugmentConfig(size=8, jitter_p=1.0, strength=1.0, **JITTER_ONLY)
    x = torch.rand(B, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = BatchAugment(cfg)(x, torch.Generator().manual_seed(3))
    _, f, _ = _jitter_draws(B, cfg, 3)
    perms = torch.tensor(list(itertools.permutations(range(4))))  # (24, 4) op at each step
    err = []
    for p in perms.tolist():
        r = x
        for k in p:
            r = OPS[k](r, f[:, k])
        err.append((y - r).abs().amax((1, 2, 3)))
    fits = torch.stack(err, 1) < 1e-5  # (B, 24) orders that reproduce the view
    assert fits.any(1).all(), "some views are no order of their own ops"
    pos = perms.argsort(1)  # (24, 4) step of each op
    for i, j in itertools.combinations(range(4), 2):
        first = pos[:, i] < pos[:, j]  # (24,) orders with op i before op j
        i_first, j_first = (fits & ~first).sum(1) == 0, (fits & first).sum(1) == 0  # (B,) all fitting orders agree
        known = i_first | j_first
        assert known.sum() >= B // 2, (i, j, int(known.sum()))
        frac = i_first[known].float().mean().item()
        assert 0.3 < frac < 0.7, f"{OPS[i].__name__} came before {OPS[j].__name__} in {frac:.0%} of the images"


# ---------------------------------------------------------------- one host-to-device copy, no device sync

PACK_CASES = [AugmentConfig(blur=True, normalize=True), AugmentConfig(size=20, jitter_p=1.0),  # 20 px: a mixed crop batch
              AugmentConfig(size=16, jitter_p=1.0, blur=True, mean=(0.5,), std=(0.25,), normalize=True)]


@pytest.mark.parametrize("cfg", PACK_CASES)
def test_parameters_reach_the_device_in_one_packed_copy(cfg, monkeypatch):
    """On the CPU the parameters are used where they were drawn; forcing them through the packed copy that a GPU
    call makes (one flat float buffer, split back into shapes and dtypes) gives the same views bit for bit, with
    one copy per call."""
    C = len(cfg.mean) if cfg.normalize else 3
    x = images(24, C, 28 if C == 1 else 32, seed=4)
    ref = BatchAugment(cfg)(x, torch.Generator().manual_seed(5))
    calls = []

    def packed(tree, device):
        calls.append(device)
        return batch_crop._packed_copy(tree, device)

    monkeypatch.setattr(fast_augment, "_to_device", packed)
    y = BatchAugment(cfg)(x, torch.Generator().manual_seed(5))
    assert len(calls) == 1
    assert torch.equal(y, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cfg", PACK_CASES)
def test_cuda_views_equal_cpu_views_without_a_device_sync(cfg):
    """Same seed, same views on the GPU as on the CPU (to float rounding), and the call never waits for the GPU."""
    C = len(cfg.mean) if cfg.normalize else 3
    x = images(64, C, 28 if C == 1 else 32, seed=6)
    aug = BatchAugment(cfg)
    ref = aug(x, torch.Generator().manual_seed(7))
    xc = x.cuda()
    aug(xc, torch.Generator().manual_seed(0))  # warm-up: kernels and the pinned-memory pool
    torch.cuda.synchronize()
    prev_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the blur's grouped convolution in float32, as on the CPU
    torch.cuda.set_sync_debug_mode("error")
    try:
        y = aug(xc, torch.Generator().manual_seed(7))
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.backends.cudnn.allow_tf32 = prev_tf32
    torch.testing.assert_close(y.cpu(), ref, rtol=0, atol=1e-4)
