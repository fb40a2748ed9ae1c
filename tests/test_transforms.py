"""Image transforms: shapes, dtypes, determinism under a given generator, and exact values
against independent formulas, Pillow itself and PyTorch's label-smoothing cross-entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mini_iformer import imagenet
from mini_iformer.data import transforms as T


def rng(seed=0):
    return np.random.default_rng(seed)


def image_array(h=24, w=32, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def smooth_image(h=32, w=32, seed=0):
    """A smooth, mid-contrast RGB image (gradients plus a little noise)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([60 + 3 * xx, 50 + 4 * yy, 100 + 2 * (xx + yy) % 80], axis=-1).astype(np.float64)
    base += np.random.default_rng(seed).normal(0, 4, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


# --- Compose, crop, flip, resize ----------------------------------------------------------------


def test_compose_passes_the_generator_in_order():
    calls = []

    def step(name):
        def t(img, g):
            calls.append((name, g))
            return img + [name]

        return t

    g = rng()
    assert T.Compose([step("a"), step("b")])([], g) == ["a", "b"]
    assert calls == [("a", g), ("b", g)]
    with pytest.raises(TypeError, match="not callable"):
        T.Compose([1])


def test_random_crop_equals_the_padded_window_at_the_drawn_offset():
    img = image_array(32, 32)
    t = T.RandomCrop(32, padding=4, fill=(1, 2, 3))
    padded = np.empty((40, 40, 3), np.uint8)
    padded[...] = (1, 2, 3)
    padded[4:36, 4:36] = img
    seen = set()
    for seed in range(40):
        out = t(img, rng(seed))
        g = rng(seed)
        top, left = int(g.integers(0, 9)), int(g.integers(0, 9))
        np.testing.assert_array_equal(out, padded[top : top + 32, left : left + 32])
        seen.add((top, left))
    assert len(seen) > 20  # the offset varies with the generator


def test_random_crop_output_is_a_window_of_the_padded_image_pil_and_gray():
    img = image_array(20, 18, 1)[:, :, 0]
    t = T.RandomCrop((16, 12), padding=2)
    padded = np.pad(img, 2)
    for seed in range(10):
        out = t(Image.fromarray(img), rng(seed))
        assert isinstance(out, Image.Image) and out.size == (12, 16) and out.mode == "L"
        arr = np.asarray(out)
        hits = [
            (i, j)
            for i in range(padded.shape[0] - 15)
            for j in range(padded.shape[1] - 11)
            if np.array_equal(padded[i : i + 16, j : j + 12], arr)
        ]
        assert hits
    with pytest.raises(ValueError, match="cannot crop"):
        T.RandomCrop(40)(img, rng())


def test_random_crop_needs_a_generator():
    with pytest.raises(TypeError, match="Generator"):
        T.RandomCrop(8)(image_array(), None)


def test_horizontal_flip_is_exact_and_follows_p():
    img = image_array()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(img, rng()), img[:, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(img, rng()), img)
    pil = T.RandomHorizontalFlip(1.0)(Image.fromarray(img), rng())
    np.testing.assert_array_equal(np.asarray(pil), img[:, ::-1])
    flips = [not np.array_equal(T.RandomHorizontalFlip()(img, rng(s)), img) for s in range(200)]
    assert 60 < sum(flips) < 140


@pytest.mark.parametrize("size", [(40, 30), (30, 40), (33, 33)])
def test_resize_short_side_and_center_crop_match_pillow(size):
    img = Image.fromarray(image_array(size[0], size[1]))
    w, h = img.size
    out = T.Resize(20)(img)
    expected_size = (20, int(20 * h / w)) if w <= h else (int(20 * w / h), 20)
    assert out.size == expected_size
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img.resize(expected_size, Image.Resampling.BICUBIC)))
    bilinear = T.Resize((10, 12), "bilinear")(np.asarray(img))
    np.testing.assert_array_equal(bilinear, np.asarray(img.resize((12, 10), Image.Resampling.BILINEAR)))
    crop = T.CenterCrop(16)(out)
    top, left = int(round((out.size[1] - 16) / 2)), int(round((out.size[0] - 16) / 2))
    np.testing.assert_array_equal(np.asarray(crop), np.asarray(out)[top : top + 16, left : left + 16])
    np.testing.assert_array_equal(T.CenterCrop(16)(np.asarray(out)), np.asarray(crop))


def test_center_crop_too_large_and_bad_arguments():
    with pytest.raises(ValueError, match="cannot crop"):
        T.CenterCrop(50)(image_array())
    with pytest.raises(ValueError, match="interpolation"):
        T.Resize(8, "cubic")
    with pytest.raises(TypeError, match="uint8"):
        T.Resize(8)(np.zeros((4, 4, 3), np.float32))


# --- RandomResizedCrop -------------------------------------------------------------------------


@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    scale_lo=st.floats(0.01, 1.0),
    ratio_hi=st.floats(1.0, 3.0),
)
def test_random_resized_crop_box_in_bounds_with_area_and_ratio_in_range(width, height, seed, scale_lo, ratio_hi):
    scale, ratio = (scale_lo, 1.0), (1.0 / ratio_hi, ratio_hi)
    t = T.RandomResizedCrop(8, scale=scale, ratio=ratio)
    top, left, h, w = t.get_params(width, height, rng(seed))
    assert top >= 0 and left >= 0 and h >= 1 and w >= 1
    assert top + h <= height and left + w <= width
    # The central fallback, as torchvision defines it.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    if (top, left, h, w) == ((height - fh) // 2, (width - fw) // 2, fh, fw):
        return
    # Otherwise w, h are round(sqrt(A r)), round(sqrt(A / r)) for an area A and ratio r in range.
    area_lo, area_hi = (w - 0.5) * (h - 0.5), (w + 0.5) * (h + 0.5)
    assert area_hi >= scale[0] * width * height - 1e-9 and area_lo <= scale[1] * width * height + 1e-9
    r_lo, r_hi = (w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5) if h > 0.5 else math.inf
    assert r_hi >= ratio[0] - 1e-9 and r_lo <= ratio[1] + 1e-9


def test_random_resized_crop_fallback_is_the_central_crop():
    t = T.RandomResizedCrop(8, scale=(1.5, 2.0))  # never fits: always the fallback
    assert t.get_params(100, 40, rng()) == (0, (100 - 53) // 2, 40, 53)  # wide: height kept
    assert t.get_params(40, 100, rng()) == ((100 - 53) // 2, 0, 53, 40)  # tall: width kept
    assert t.get_params(50, 45, rng()) == (0, 0, 45, 50)  # within the ratios: the whole image


def test_random_resized_crop_output_is_the_resized_box():
    img = Image.fromarray(image_array(48, 64))
    t = T.RandomResizedCrop(16)
    for seed in range(5):
        out = t(img, rng(seed))
        top, left, h, w = t.get_params(64, 48, rng(seed))
        expected = img.crop((left, top, left + w, top + h)).resize((16, 16), Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
    arr = t(np.asarray(img), rng(3))
    assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, t(np.asarray(img), rng(3)))
    assert not np.array_equal(arr, t(np.asarray(img), rng(4)))
    mixed = T.RandomResizedCrop(16, interpolation="random")
    assert mixed(img, rng(0)).size == (16, 16)


# --- ToArray, Normalize ------------------------------------------------------------------------


def test_to_array_and_normalize_exact():
    img = image_array()
    x = T.ToArray()(Image.fromarray(img))
    assert x.shape == (3, 24, 32) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x, img.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(T.ToArray()(img), x)
    assert T.ToArray()(img[:, :, 0]).shape == (1, 24, 32)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    y = T.Normalize(mean, std)(x)
    assert y.dtype == np.float32
    expected = (x - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]
    np.testing.assert_array_equal(y, expected)
    with pytest.raises(ValueError, match="channels"):
        T.Normalize((0.5,), (0.5,))(x)
    with pytest.raises(TypeError, match="ToArray"):
        T.Normalize(mean, std)(img)


# --- ColorJitter -------------------------------------------------------------------------------


def test_color_jitter_is_deterministic_per_generator_and_zero_is_identity():
    img = smooth_image()
    t = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    out = t(img, rng(1))
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, t(img, rng(1)))
    assert not np.array_equal(out, t(img, rng(2)))
    np.testing.assert_array_equal(T.ColorJitter(0, 0, 0, 0)(img, rng()), img)
    assert isinstance(t(Image.fromarray(img), rng()), Image.Image)


# --- RandAugment -------------------------------------------------------------------------------

GEOMETRIC_AND_ENHANCE = [
    "Rotate",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
]


@pytest.mark.parametrize("op", GEOMETRIC_AND_ENHANCE)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_rand_augment_op_at_magnitude_0_is_identity_and_at_10_changes(op, interpolation):
    img = smooth_image()
    ra = T.RandAugment(interpolation=interpolation)
    for seed in range(4):  # both signs
        same = ra.apply_op(op, img, 0.0, rng(seed))
        assert same.dtype == np.uint8 and same.shape == img.shape
        assert np.abs(same.astype(int) - img).max() <= 1
        changed = ra.apply_op(op, img, 10.0, rng(seed))
        assert changed.shape == img.shape
        assert np.mean(changed != img) > 0.1, op


def test_rand_augment_parameterless_ops():
    img = smooth_image()
    ra = T.RandAugment()
    np.testing.assert_array_equal(ra.apply_op("Invert", img, 9, rng()), 255 - img)
    low = (img // 4 + 90).astype(np.uint8)  # low contrast: autocontrast and equalize stretch it
    for op in ("AutoContrast", "Equalize"):
        out = ra.apply_op(op, low, 9, rng())
        assert out.max() - out.min() > low.max() - low.min()


def test_rand_augment_parameter_table():
    ra = T.RandAugment()
    assert ra.level_to_arg("Rotate", 10) == 30.0 and ra.level_to_arg("Rotate", 5) == 15.0
    assert ra.level_to_arg("PosterizeIncreasing", 0) == 8 and ra.level_to_arg("PosterizeIncreasing", 10) == 4
    assert ra.level_to_arg("SolarizeIncreasing", 0) == 256 and ra.level_to_arg("SolarizeIncreasing", 10) == 0
    assert ra.level_to_arg("SolarizeAdd", 10) == 110
    assert ra.level_to_arg("ShearX", 10) == pytest.approx(0.3)
    assert ra.level_to_arg("TranslateYRel", 10) == pytest.approx(0.45)
    assert ra.level_to_arg("ColorIncreasing", 10) == pytest.approx(0.9)
    assert ra.level_to_arg("Invert", 10) is None
    # SolarizeAdd adds to the dark pixels only, clipping at 255.
    img = np.array([[[0, 100, 127], [128, 200, 255]]], dtype=np.uint8)
    out = ra.apply_op("SolarizeAdd", img, 10, rng())
    np.testing.assert_array_equal(out, [[[110, 210, 237], [128, 200, 255]]])
    # PosterizeIncreasing at 10 keeps 4 bits.
    np.testing.assert_array_equal(ra.apply_op("PosterizeIncreasing", img, 10, rng()), img & 0xF0)


def test_rand_augment_policy_on_pil_and_arrays_is_reproducible():
    img = smooth_image()
    ra = T.RandAugment(num_ops=2, magnitude=9, magnitude_std=0.5)
    outs = [ra(img, rng(s)) for s in range(12)]
    for s, out in enumerate(outs):
        assert out.shape == img.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, ra(img, rng(s)))
        np.testing.assert_array_equal(np.asarray(ra(Image.fromarray(img), rng(s))), out)
    assert len({out.tobytes() for out in outs}) > 6
    assert any(np.array_equal(out, img) for out in [ra(img, rng(s)) for s in range(40)])  # prob 0.5
    gray = img[:, :, :1]
    assert ra(gray, rng(1)).shape == gray.shape
    always = T.RandAugment(num_ops=3, prob=1.0, magnitude=10, magnitude_std=0)
    assert all(not np.array_equal(always(img, rng(s)), img) for s in range(10))
    assert T.RandAugment(num_ops=0)(img, rng()) is not None


def test_rand_augment_magnitude_sampling_is_clipped():
    ra = T.RandAugment(magnitude=9.8, magnitude_std=5.0)
    mags = [ra.sample_magnitude(rng(s)) for s in range(200)]
    assert min(mags) >= 0.0 and max(mags) == 10.0
    assert T.RandAugment(magnitude=7, magnitude_std=0).sample_magnitude(rng()) == 7.0
    with pytest.raises(ValueError, match="unknown"):
        T.RandAugment(ops=["Cutout"])


# --- RandomErasing -----------------------------------------------------------------------------


def test_random_erasing_rectangle_in_bounds_and_p0_identity():
    x = np.random.default_rng(0).random((3, 20, 30)).astype(np.float32)
    np.testing.assert_array_equal(T.RandomErasing(p=0.0)(x, rng()), x)
    t = T.RandomErasing(p=1.0)
    erased_any = False
    for seed in range(30):
        out = t(x, rng(seed))
        assert out.shape == x.shape and out.dtype == np.float32
        np.testing.assert_array_equal(out, t(x, rng(seed)))
        changed = np.any(out != x, axis=0)
        if not changed.any():
            continue
        erased_any = True
        rows, cols = np.nonzero(changed)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h < 20 and w < 30
        area = h * w / (20 * 30)
        assert 0.02 * 0.5 <= area <= 1 / 3 * 1.5  # rounding of small rectangles
        g = rng(seed)
        g.random()
        top, left, bh, bw = t.get_params(20, 30, g)
        assert (rows.min(), cols.min()) == (top, left) and (h, w) == (bh, bw)
    assert erased_any
    np.testing.assert_array_equal(x, np.random.default_rng(0).random((3, 20, 30)).astype(np.float32))


def test_random_erasing_and_resized_crop_reach_every_edge():
    erasing, crop = T.RandomErasing(p=1.0, scale=(0.05, 0.2)), T.RandomResizedCrop(4, scale=(0.1, 0.3))
    for get in (lambda g: erasing.get_params(10, 12, g), lambda g: crop.get_params(12, 10, g)):
        boxes = [get(rng(s)) for s in range(400)]
        boxes = [b for b in boxes if b is not None]
        assert any(top == 0 for top, _, _, _ in boxes) and any(left == 0 for _, left, _, _ in boxes)
        assert any(top + h == 10 for top, _, h, _ in boxes)
        assert any(left + w == 12 for _, left, _, w in boxes)


def test_random_erasing_const_mode_writes_zeros():
    x = np.ones((3, 16, 16), np.float32)
    out = T.RandomErasing(p=1.0, mode="const")(x, rng(2))
    assert set(np.unique(out)) == {0.0, 1.0}
    with pytest.raises(TypeError, match="float"):
        T.RandomErasing()(np.zeros((16, 16, 3), np.uint8), rng())


# --- MixupCutmix -------------------------------------------------------------------------------


def _batch(n=6, c=2, h=8, w=10, seed=0):
    return np.random.default_rng(seed).normal(size=(n, c, h, w)).astype(np.float32)


def _lam_from_targets(t, y, ls, k):
    """lam recovered from the target of sample 0 (whose partner has another label)."""
    return (t[0, y[0]] - ls / k) / (1 - ls)


def test_mixup_pixels_and_targets_share_lam():
    x, y = _batch(), np.array([0, 1, 2, 3, 4, 5])
    m = T.MixupCutmix(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=7)
    for seed in range(5):
        xm, t = m(x, y, rng(seed))
        assert xm.dtype == np.float32 and t.dtype == np.float32 and t.shape == (6, 7)
        np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)
        lam, box = m.sample_params(8, 10, rng(seed))
        assert box is None
        assert _lam_from_targets(t, y, 0.1, 7) == pytest.approx(lam, abs=1e-6)
        np.testing.assert_array_equal(xm, x * np.float32(lam) + x[::-1] * np.float32(1 - lam))
        np.testing.assert_array_equal(xm, m(x, y, rng(seed))[0])


def test_cutmix_partner_pixel_fraction_equals_one_minus_lam():
    n, h, w = 6, 16, 20
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 3, h, w)).copy()
    y = np.arange(n)
    m = T.MixupCutmix(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=n)
    fractions = []
    for seed in range(20):
        xm, t = m(x, y, rng(seed))
        np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)
        lam = _lam_from_targets(t, y, 0.1, n)
        for i in range(n):
            from_partner = np.mean(xm[i] == n - 1 - i)
            assert from_partner == pytest.approx(1 - lam, abs=1e-6)
            assert np.all((xm[i] == i) | (xm[i] == n - 1 - i))
        fractions.append(1 - lam)
    assert max(fractions) > 0.2  # boxes of various sizes are drawn
    np.testing.assert_array_equal(x[:, 0, 0, 0], np.arange(n))  # input untouched


def test_switch_prob_chooses_cutmix_or_mixup():
    cut = T.MixupCutmix(switch_prob=1.0, num_classes=6)
    mix = T.MixupCutmix(switch_prob=0.0, num_classes=6)
    for seed in range(5):
        assert cut.sample_params(8, 10, rng(seed))[1] is not None
        assert mix.sample_params(8, 10, rng(seed))[1] is None
    both = T.MixupCutmix(num_classes=6)
    kinds = {both.sample_params(8, 10, rng(s))[1] is None for s in range(20)}
    assert kinds == {True, False}


def test_only_label_smoothing_when_both_alphas_are_zero_or_prob_fails():
    x, y = _batch(), np.array([3, 1, 4, 1, 5, 2])
    for m in (
        T.MixupCutmix(mixup_alpha=0, cutmix_alpha=0, label_smoothing=0.2, num_classes=6),
        T.MixupCutmix(prob=0.0, label_smoothing=0.2, num_classes=6),
    ):
        xm, t = m(x, y, rng(1))
        np.testing.assert_array_equal(xm, x)
        expected = np.full((6, 6), 0.2 / 6, np.float32)
        expected[np.arange(6), y] += 0.8
        np.testing.assert_allclose(t, expected, rtol=1e-6)


def _soft_cross_entropy(logits, targets):
    return float(-(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean())


def test_smoothing_matches_torch_cross_entropy_label_smoothing():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=g, dtype=torch.float64)
    y = np.array([0, 3, 9, 3, 7, 1])
    yt = torch.from_numpy(y)
    ls = 0.1
    _, t = T.MixupCutmix(prob=0.0, label_smoothing=ls, num_classes=10)(_batch(), y, rng())
    tt = torch.from_numpy(t.astype(np.float64))
    expected = float(torch.nn.functional.cross_entropy(logits, yt, label_smoothing=ls))
    assert _soft_cross_entropy(logits, tt) == pytest.approx(expected, rel=1e-6)
    assert float(torch.nn.functional.cross_entropy(logits, tt)) == pytest.approx(expected, rel=1e-6)
    # Mixed targets: the loss is the lam-weighted sum of the two smoothed losses.
    m = T.MixupCutmix(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=ls, num_classes=10)
    _, t = m(_batch(), y, rng(4))
    lam, _ = m.sample_params(8, 10, rng(4))
    flipped = float(torch.nn.functional.cross_entropy(logits, yt.flip(0), label_smoothing=ls))
    mixed = _soft_cross_entropy(logits, torch.from_numpy(t.astype(np.float64)))
    assert mixed == pytest.approx(lam * expected + (1 - lam) * flipped, rel=1e-5)


def test_mixup_cutmix_runs_on_the_selected_backend(backend_name):
    from mini_iformer import backend

    x, y = _batch(), np.arange(6)
    m = T.MixupCutmix(num_classes=6)
    for seed in range(4):  # mixup and cutmix both occur
        xm, t = m(backend.asarray(x), backend.asarray(y), rng(seed))
        assert backend.array_backend(xm) == backend_name == backend.array_backend(t)
        ex, et = m(x, y, rng(seed))
        np.testing.assert_allclose(backend.to_numpy(xm), ex, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(backend.to_numpy(t), et)


def test_mixup_cutmix_validates_inputs():
    m = T.MixupCutmix(num_classes=5)
    with pytest.raises(ValueError, match="labels must be in"):
        m(_batch(), np.arange(6), rng())
    with pytest.raises(ValueError, match="integer labels"):
        m(_batch(), np.zeros(6, np.float32), rng())
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        m(_batch()[0], np.arange(2), rng())
    with pytest.raises(ValueError, match="alphas"):
        T.MixupCutmix(mixup_alpha=-1)


# --- presets -----------------------------------------------------------------------------------


def test_cifar_presets():
    img = image_array(32, 32)
    t = T.cifar_train_transform(T.CIFAR100_MEAN, T.CIFAR100_STD, randaugment=True, random_erasing=0.25)
    x = t(img, rng(0))
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(x, t(img, rng(0)))
    assert not np.array_equal(x, t(img, rng(1)))
    ev = T.cifar_eval_transform(T.CIFAR10_MEAN, T.CIFAR10_STD)(img)
    np.testing.assert_allclose(
        ev, (img.transpose(2, 0, 1) / 255.0 - np.array(T.CIFAR10_MEAN)[:, None, None]) / np.array(T.CIFAR10_STD)[:, None, None],
        rtol=1e-5, atol=1e-5,
    )


def test_folder_presets_and_eval_matches_the_imagenet_module():
    img = Image.fromarray(image_array(70, 90))
    ev = T.eval_transform_for(56)(img)
    assert ev.shape == (3, 56, 56) and ev.dtype == np.float32
    np.testing.assert_array_equal(ev, imagenet.eval_transform(img, size=56, crop_pct=0.9))
    tr = T.train_transform_for(48)
    x = tr(img, rng(0))
    assert x.shape == (3, 48, 48) and x.dtype == np.float32
    np.testing.assert_array_equal(x, tr(img, rng(0)))
    assert not np.array_equal(x, tr(img, rng(1)))
    assert T.train_transform_for(48, randaugment=False, color_jitter=0.4)(img, rng()).shape == (3, 48, 48)
