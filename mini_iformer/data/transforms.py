"""Image transforms for training and evaluation, on NumPy and Pillow.

Every transform is a callable ``transform(img, rng)``:

* ``img`` is a PIL image or an ``(H, W, C)`` / ``(H, W)`` uint8 NumPy array (the image
  transforms), or a ``(C, H, W)`` float array (:class:`Normalize`, :class:`RandomErasing`);
* ``rng`` is a ``numpy.random.Generator``. Every random choice a transform makes is drawn from
  it, so a dataset that gives each sample its own generator (seeded from the run's seed, the
  epoch and the sample index) produces the same augmented sample however many threads load
  the data and in whatever order they finish. Deterministic transforms accept ``rng=None``.

Image transforms return the kind of image they were given: a PIL image for a PIL image, a
uint8 array of the same layout for an array. :class:`ToArray` turns either into the network's
``(C, H, W)`` float32 layout in [0, 1].

The pieces:

=========================  ================================================================
transform                  what it does
=========================  ================================================================
:class:`Compose`           apply transforms in order, passing the same generator along
:class:`RandomCrop`        pad by ``padding`` pixels, then crop ``size`` at a random offset
:class:`RandomResizedCrop` crop a random area/aspect box (torchvision's algorithm), resize it
:class:`RandomHorizontalFlip` mirror left-right with probability ``p``
:class:`Resize`            resize the short side (or to an exact ``(h, w)``)
:class:`CenterCrop`        the central ``size`` window
:class:`ColorJitter`       random brightness, contrast, saturation and hue, in random order
:class:`RandAugment`       ``num_ops`` random operations of the increasing-severity set
:class:`ToArray`           image -> ``(C, H, W)`` float32 in [0, 1]
:class:`Normalize`         ``(x - mean) / std`` per channel
:class:`RandomErasing`     replace one random rectangle of a normalised array with noise
:class:`MixupCutmix`       batch level: mixup or cutmix of a batch with its reverse, soft targets
=========================  ================================================================

Presets: :func:`cifar_train_transform`, :func:`cifar_eval_transform`,
:func:`train_transform_for` and :func:`eval_transform_for`.

Example::

    import numpy as np
    from mini_iformer.data import transforms as T

    train = T.cifar_train_transform(T.CIFAR10_MEAN, T.CIFAR10_STD, randaugment=True)
    x = train(image_uint8_hwc, np.random.default_rng([seed, epoch, index]))  # (3, 32, 32)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence, Union

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from mini_iformer import backend
from mini_iformer.imagenet import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RAND_INCREASING_OPS",
    "Compose",
    "RandomCrop",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "Resize",
    "CenterCrop",
    "ColorJitter",
    "RandAugment",
    "ToArray",
    "Normalize",
    "RandomErasing",
    "MixupCutmix",
    "cifar_train_transform",
    "cifar_eval_transform",
    "train_transform_for",
    "eval_transform_for",
]

#: Per-channel (R, G, B) mean and standard deviation of the CIFAR-10 training images, [0, 1] scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
#: The same for CIFAR-100.
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
# ImageNet's, as used by the iFormer authors: IMAGENET_MEAN, IMAGENET_STD (from mini_iformer.imagenet)

ImageLike = Union[Image.Image, np.ndarray]
Transform = Callable[..., Any]

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
# The pair "random" chooses from, for the resized crop and the geometric RandAugment ops.
_RANDOM_INTERPOLATIONS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


# --- helpers -----------------------------------------------------------------------------------


def _check_rng(rng: Any, who: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{who} is random and needs a numpy.random.Generator as its rng argument, "
            f"got {type(rng).__name__}"
        )
    return rng


def _pair(size: Any, name: str = "size") -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int means a square."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a (height, width) pair, got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return h, w


def _interpolation(name: str, allow_random: bool = False) -> str:
    choices = tuple(_INTERPOLATIONS) + (("random",) if allow_random else ())
    if name not in choices:
        raise ValueError(f"unknown interpolation {name!r}: choose one of {', '.join(choices)}")
    return name


def _resample(name: str, rng: np.random.Generator | None) -> Image.Resampling:
    if name == "random":
        return _RANDOM_INTERPOLATIONS[int(rng.integers(len(_RANDOM_INTERPOLATIONS)))]
    return _INTERPOLATIONS[name]


def _check_image_array(img: np.ndarray, who: str) -> None:
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise TypeError(
            f"{who} takes a PIL image or an (H, W) / (H, W, C) uint8 array with C in 1, 3, 4; "
            f"got a {img.dtype} array of shape {img.shape}"
        )


def _to_pil(img: ImageLike, who: str) -> Image.Image:
    """``img`` as a PIL image (arrays: (H, W, 1) becomes mode L)."""
    if isinstance(img, Image.Image):
        return img
    if isinstance(img, np.ndarray):
        _check_image_array(img, who)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        return Image.fromarray(np.ascontiguousarray(img))
    raise TypeError(f"{who} takes a PIL image or a uint8 NumPy array, got {type(img).__name__}")


def _like(original: ImageLike, pil: Image.Image) -> ImageLike:
    """``pil`` returned in the kind (PIL or array, same layout) of ``original``."""
    if isinstance(original, Image.Image):
        return pil
    out = np.asarray(pil, dtype=np.uint8)
    if original.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return np.array(out)  # a writable copy, never a view of Pillow's buffer


def _to_array(img: ImageLike, who: str) -> np.ndarray:
    """``img`` as a uint8 (H, W) or (H, W, C) array (PIL images other than L/RGB/RGBA -> RGB)."""
    if isinstance(img, Image.Image):
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGB")
        return np.asarray(img)
    if isinstance(img, np.ndarray):
        _check_image_array(img, who)
        return img
    raise TypeError(f"{who} takes a PIL image or a uint8 NumPy array, got {type(img).__name__}")


def _from_array(original: ImageLike, arr: np.ndarray) -> ImageLike:
    """``arr`` (uint8) in the kind of ``original``."""
    if isinstance(original, Image.Image):
        return Image.fromarray(np.ascontiguousarray(arr))
    return np.ascontiguousarray(arr)


def _image_size(img: ImageLike) -> tuple[int, int]:
    """(width, height)."""
    if isinstance(img, Image.Image):
        return img.size
    return int(img.shape[1]), int(img.shape[0])


def _rgb_or_l(img: Image.Image, who: str) -> Image.Image:
    if img.mode not in ("L", "RGB"):
        if img.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr"):
            return img.convert("RGB")
        raise ValueError(f"{who} works on L or RGB images, got mode {img.mode!r}")
    return img


# --- composition -------------------------------------------------------------------------------


class Compose:
    """Apply ``transforms`` in order; each receives the output of the previous and ``rng``."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, img: Any, rng: np.random.Generator | None = None) -> Any:
        for t in self.transforms:
            img = t(img, rng)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


# --- geometry ----------------------------------------------------------------------------------


class RandomCrop:
    """Pad every side by ``padding`` pixels of ``fill``, then crop ``size`` at a random offset.

    The CIFAR recipe is ``RandomCrop(32, padding=4)``: a 40x40 padded image, a 32x32 window at
    an offset drawn uniformly from the 9x9 possible ones (the row first, then the column).
    ``fill`` is one value or one per channel.
    """

    def __init__(self, size: int | Sequence[int], padding: int = 0, fill: int | Sequence[int] = 0):
        self.size = _pair(size)
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative int, got {padding!r}")
        self.padding = int(padding)
        self.fill = fill

    def offsets(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        """The (top, left) corner of the window in the padded image, as drawn from ``rng``."""
        h, w = self.size
        ph, pw = height + 2 * self.padding, width + 2 * self.padding
        if ph < h or pw < w:
            raise ValueError(
                f"RandomCrop: cannot crop {h}x{w} from a {height}x{width} image padded by "
                f"{self.padding}"
            )
        top = int(rng.integers(0, ph - h + 1))
        left = int(rng.integers(0, pw - w + 1))
        return top, left

    def __call__(self, img: ImageLike, rng: np.random.Generator) -> ImageLike:
        _check_rng(rng, "RandomCrop")
        arr = _to_array(img, "RandomCrop")
        top, left = self.offsets(arr.shape[0], arr.shape[1], rng)
        p = self.padding
        if p:
            if arr.ndim == 2:
                fill = np.uint8(np.asarray(self.fill).reshape(-1)[0])
                padded = np.full((arr.shape[0] + 2 * p, arr.shape[1] + 2 * p), fill, np.uint8)
            else:
                fill = np.broadcast_to(np.asarray(self.fill, dtype=np.uint8), (arr.shape[2],))
                padded = np.empty((arr.shape[0] + 2 * p, arr.shape[1] + 2 * p, arr.shape[2]), np.uint8)
                padded[...] = fill
            padded[p : p + arr.shape[0], p : p + arr.shape[1]] = arr
            arr = padded
        h, w = self.size
        return _from_array(img, arr[top : top + h, left : left + w])

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill!r})"


class RandomResizedCrop:
    """Crop a random box of random area and aspect ratio, and resize it to ``size``.

    The box is drawn as torchvision draws it: up to 10 attempts, each drawing a target area
    uniformly in ``scale`` (as a fraction of the image's area) and an aspect ratio (width /
    height) log-uniformly in ``ratio``; the first box that fits the image is placed at a
    uniform position. If none fits, the fallback is a central crop: the whole image when its
    aspect is within ``ratio``, otherwise the largest central box with the nearest allowed
    aspect. ``interpolation="random"`` picks bilinear or bicubic per image (after the box).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: str = "bicubic",
    ):
        self.size = _pair(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"RandomResizedCrop: need 0 < scale[0] <= scale[1], got {scale!r}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"RandomResizedCrop: need 0 < ratio[0] <= ratio[1], got {ratio!r}")
        self.interpolation = _interpolation(interpolation, allow_random=True)

    def get_params(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """The box ``(top, left, box_height, box_width)`` for a ``width`` x ``height`` image."""
        area = width * height
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w = width
            h = int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h = height
            w = int(round(h * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: ImageLike, rng: np.random.Generator) -> ImageLike:
        _check_rng(rng, "RandomResizedCrop")
        pil = _to_pil(img, "RandomResizedCrop")
        top, left, h, w = self.get_params(pil.size[0], pil.size[1], rng)
        resample = _resample(self.interpolation, rng)
        out_h, out_w = self.size
        crop = pil.crop((left, top, left + w, top + h))
        return _like(img, crop.resize((out_w, out_h), resample))

    def __repr__(self) -> str:
        return (
            f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio="
            f"({self.ratio[0]:.4g}, {self.ratio[1]:.4g}), interpolation={self.interpolation!r})"
        )


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p`` (one uniform draw per image)."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, img: ImageLike, rng: np.random.Generator) -> ImageLike:
        _check_rng(rng, "RandomHorizontalFlip")
        if rng.random() >= self.p:
            return img
        if isinstance(img, Image.Image):
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = _to_array(img, "RandomHorizontalFlip")
        return np.ascontiguousarray(arr[:, ::-1])

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Resize with Pillow. An int ``size`` is the new short side, the aspect kept (the long
    side becomes ``int(size * long / short)``, as torchvision computes it); a pair is the exact
    ``(height, width)``."""

    def __init__(self, size: int | Sequence[int], interpolation: str = "bicubic"):
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if size < 1:
                raise ValueError(f"Resize: size must be positive, got {size!r}")
            self.size: int | tuple[int, int] = int(size)
        else:
            self.size = _pair(size)
        self.interpolation = _interpolation(interpolation)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of ``width`` x ``height`` is resized to."""
        if isinstance(self.size, tuple):
            return self.size[1], self.size[0]
        short = self.size
        if width <= height:
            return short, int(short * height / width)
        return int(short * width / height), short

    def __call__(self, img: ImageLike, rng: np.random.Generator | None = None) -> ImageLike:
        pil = _to_pil(img, "Resize")
        new_size = self.output_size(*pil.size)
        if new_size == pil.size:
            return img
        return _like(img, pil.resize(new_size, _INTERPOLATIONS[self.interpolation]))

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation!r})"


class CenterCrop:
    """The central ``size`` window; offsets ``round((H - h) / 2)``, ``round((W - w) / 2)``."""

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size)

    def __call__(self, img: ImageLike, rng: np.random.Generator | None = None) -> ImageLike:
        if not isinstance(img, Image.Image):
            img = _to_array(img, "CenterCrop")
        width, height = _image_size(img)
        h, w = self.size
        if width < w or height < h:
            raise ValueError(f"CenterCrop: cannot crop {h}x{w} from a {height}x{width} image")
        top = int(round((height - h) / 2.0))
        left = int(round((width - w) / 2.0))
        if isinstance(img, Image.Image):
            return img.crop((left, top, left + w, top + h))
        return np.ascontiguousarray(img[top : top + h, left : left + w])

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


# --- colour ------------------------------------------------------------------------------------


class ColorJitter:
    """Random brightness, contrast, saturation and hue changes, applied in a random order.

    Each of ``brightness``, ``contrast``, ``saturation`` gives a factor drawn uniformly in
    ``[max(0, 1 - v), 1 + v]`` (Pillow's ``ImageEnhance`` Brightness, Contrast, Color; 1 is the
    identity); ``hue`` (at most 0.5) shifts the hue by a uniform fraction of the colour circle
    in ``[-hue, hue]``. The order is one permutation of the four drawn per image; a component
    set to 0 is skipped. Works on L and RGB images (hue and saturation only change RGB).
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.0):
        for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if v < 0:
                raise ValueError(f"ColorJitter: {name} must be >= 0, got {v!r}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue must be in [0, 0.5], got {hue!r}")
        self.brightness, self.contrast, self.saturation, self.hue = (
            float(brightness), float(contrast), float(saturation), float(hue)
        )

    @staticmethod
    def _shift_hue(img: Image.Image, hue_factor: float) -> Image.Image:
        if img.mode != "RGB" or hue_factor == 0.0:
            return img
        h, s, v = img.convert("HSV").split()
        shift = int(round(hue_factor * 255)) % 256
        np_h = ((np.asarray(h, dtype=np.int16) + shift) % 256).astype(np.uint8)
        return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")

    def __call__(self, img: ImageLike, rng: np.random.Generator) -> ImageLike:
        _check_rng(rng, "ColorJitter")
        pil = _rgb_or_l(_to_pil(img, "ColorJitter"), "ColorJitter")
        order = rng.permutation(4)
        factors = [
            rng.uniform(max(0.0, 1.0 - v), 1.0 + v) if v > 0 else None
            for v in (self.brightness, self.contrast, self.saturation)
        ]
        hue_factor = rng.uniform(-self.hue, self.hue) if self.hue > 0 else None
        enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
        for k in order:
            if k < 3 and factors[k] is not None:
                pil = enhancers[k](pil).enhance(factors[k])
            elif k == 3 and hue_factor is not None:
                pil = self._shift_hue(pil, hue_factor)
        return _like(img, pil)

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue})"
        )


# --- RandAugment -------------------------------------------------------------------------------

#: The increasing-severity operation set: for every op with a magnitude, a larger magnitude
#: means a stronger change, and magnitude 0 is the identity.
RAND_INCREASING_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)

_SIGNED_OPS = frozenset(
    {
        "Rotate",
        "ColorIncreasing",
        "ContrastIncreasing",
        "BrightnessIncreasing",
        "SharpnessIncreasing",
        "ShearX",
        "ShearY",
        "TranslateXRel",
        "TranslateYRel",
    }
)
_GEOMETRIC_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"})
_ENHANCERS = {
    "ColorIncreasing": ImageEnhance.Color,
    "ContrastIncreasing": ImageEnhance.Contrast,
    "BrightnessIncreasing": ImageEnhance.Brightness,
    "SharpnessIncreasing": ImageEnhance.Sharpness,
}
_MAX_MAGNITUDE = 10.0


def _solarize_add(img: Image.Image, add: int, threshold: int = 128) -> Image.Image:
    lut = [min(255, i + add) if i < threshold else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


class RandAugment:
    """RandAugment with the increasing-severity operations ("rand-m9-mstd0.5-inc1" by default).

    Per image, ``num_ops`` operations are drawn uniformly from ``ops`` (with replacement). Each
    is applied with probability ``prob``; when applied, its magnitude is drawn from
    ``N(magnitude, magnitude_std**2)`` and clipped to [0, 10] (``magnitude_std=inf`` draws it
    uniformly in [0, magnitude], 0 uses ``magnitude`` as is). The signed operations then negate
    their parameter with probability 1/2, and the geometric ones fill uncovered pixels with
    ``fill`` and resample with ``interpolation`` ("random": bilinear or bicubic per op).

    The magnitude ``m`` (0..10) sets each operation's parameter:

    ======================  =====================================================  ============
    operation               parameter at magnitude m                               at m = 0
    ======================  =====================================================  ============
    AutoContrast            (none) stretch each channel to the full 0..255 range   --
    Equalize                (none) equalise each channel's histogram               --
    Invert                  (none) ``255 - x``                                     --
    Rotate                  ``+-30 * m/10`` degrees about the centre               identity
    PosterizeIncreasing     keep ``8 - int(4 * m/10)`` bits (8 down to 4)          identity
    SolarizeIncreasing      invert pixels ``>= 256 - int(256 * m/10)``             identity
    SolarizeAdd             add ``int(110 * m/10)`` to pixels < 128, clip at 255   identity
    ColorIncreasing         saturation factor ``max(0.1, 1 +- 0.9 * m/10)``        identity
    ContrastIncreasing      contrast factor ``max(0.1, 1 +- 0.9 * m/10)``          identity
    BrightnessIncreasing    brightness factor ``max(0.1, 1 +- 0.9 * m/10)``        identity
    SharpnessIncreasing     sharpness factor ``max(0.1, 1 +- 0.9 * m/10)``         identity
    ShearX / ShearY         shear factor ``+-0.3 * m/10``                          identity
    TranslateXRel / YRel    shift by ``+-0.45 * m/10`` of the width / height       identity
    ======================  =====================================================  ============

    ``+-`` marks the signed operations. Images are L or RGB PIL images or uint8 arrays
    (``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``); other PIL modes are converted to RGB.
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 9.0,
        magnitude_std: float = 0.5,
        increasing: bool = True,
        prob: float = 0.5,
        ops: Sequence[str] | None = None,
        fill: int | Sequence[int] = (128, 128, 128),
        interpolation: str = "bicubic",
        translate_pct: float = 0.45,
    ):
        if not increasing:
            raise ValueError(
                "RandAugment: only the increasing-severity operation set is implemented "
                "(increasing=True)"
            )
        if isinstance(num_ops, bool) or not isinstance(num_ops, (int, np.integer)) or num_ops < 0:
            raise ValueError(f"RandAugment: num_ops must be a non-negative int, got {num_ops!r}")
        if not 0.0 <= magnitude <= _MAX_MAGNITUDE:
            raise ValueError(f"RandAugment: magnitude must be in [0, 10], got {magnitude!r}")
        if not magnitude_std >= 0.0:
            raise ValueError(f"RandAugment: magnitude_std must be >= 0, got {magnitude_std!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandAugment: prob must be in [0, 1], got {prob!r}")
        self.ops = tuple(RAND_INCREASING_OPS if ops is None else ops)
        unknown = [op for op in self.ops if op not in RAND_INCREASING_OPS]
        if unknown or not self.ops:
            raise ValueError(
                f"RandAugment: unknown or no operations {unknown}; choose from "
                f"{', '.join(RAND_INCREASING_OPS)}"
            )
        self.num_ops = int(num_ops)
        self.magnitude = float(magnitude)
        self.magnitude_std = float(magnitude_std)
        self.increasing = True
        self.prob = float(prob)
        self.fill = fill
        self.interpolation = _interpolation(interpolation, allow_random=True)
        self.translate_pct = float(translate_pct)

    # -- parameters --------------------------------------------------------------------------

    def level_to_arg(self, op: str, magnitude: float) -> float | int | None:
        """The unsigned parameter of ``op`` at ``magnitude`` (see the table), None if it has none."""
        m = min(max(float(magnitude), 0.0), _MAX_MAGNITUDE) / _MAX_MAGNITUDE
        if op in ("AutoContrast", "Equalize", "Invert"):
            return None
        if op == "Rotate":
            return 30.0 * m
        if op == "PosterizeIncreasing":
            return 8 - int(4 * m)
        if op == "SolarizeIncreasing":
            return 256 - int(256 * m)
        if op == "SolarizeAdd":
            return int(110 * m)
        if op in _ENHANCERS:
            return 0.9 * m
        if op in ("ShearX", "ShearY"):
            return 0.3 * m
        if op in ("TranslateXRel", "TranslateYRel"):
            return self.translate_pct * m
        raise ValueError(f"RandAugment: unknown operation {op!r}")

    def sample_magnitude(self, rng: np.random.Generator) -> float:
        """One magnitude drawn as described in the class docstring."""
        m = self.magnitude
        if self.magnitude_std == float("inf"):
            m = rng.uniform(0.0, m)
        elif self.magnitude_std > 0.0:
            m = rng.normal(m, self.magnitude_std)
        return float(min(max(m, 0.0), _MAX_MAGNITUDE))

    def _fill_for(self, img: Image.Image) -> int | tuple[int, ...]:
        fill = np.broadcast_to(np.asarray(self.fill, dtype=np.int64).reshape(-1), (3,))
        if img.mode == "L":
            return int(round(float(fill.mean())))
        return tuple(int(v) for v in fill)

    # -- one operation -----------------------------------------------------------------------

    def apply_op(self, op: str, img: ImageLike, magnitude: float, rng: np.random.Generator) -> ImageLike:
        """Apply ``op`` at ``magnitude`` to ``img`` (always; ``prob`` is not consulted).

        ``rng`` supplies the sign of the signed operations and the "random" interpolation.
        """
        _check_rng(rng, "RandAugment")
        pil = _rgb_or_l(_to_pil(img, "RandAugment"), "RandAugment")
        return _like(img, self._apply_pil(op, pil, magnitude, rng))

    def _apply_pil(self, op: str, img: Image.Image, magnitude: float, rng: np.random.Generator) -> Image.Image:
        arg = self.level_to_arg(op, magnitude)
        if op in _SIGNED_OPS and rng.random() < 0.5:
            arg = -arg
        if op == "AutoContrast":
            return ImageOps.autocontrast(img)
        if op == "Equalize":
            return ImageOps.equalize(img)
        if op == "Invert":
            return ImageOps.invert(img)
        if op == "PosterizeIncreasing":
            return img if arg >= 8 else ImageOps.posterize(img, arg)
        if op == "SolarizeIncreasing":
            return ImageOps.solarize(img, arg)
        if op == "SolarizeAdd":
            return _solarize_add(img, arg)
        if op in _ENHANCERS:
            return _ENHANCERS[op](img).enhance(max(0.1, 1.0 + arg))
        # geometric
        resample = _resample(self.interpolation, rng)
        fill = self._fill_for(img)
        if op == "Rotate":
            return img.rotate(arg, resample=resample, fillcolor=fill)
        if op == "ShearX":
            coeffs = (1.0, arg, 0.0, 0.0, 1.0, 0.0)
        elif op == "ShearY":
            coeffs = (1.0, 0.0, 0.0, arg, 1.0, 0.0)
        elif op == "TranslateXRel":
            coeffs = (1.0, 0.0, arg * img.size[0], 0.0, 1.0, 0.0)
        else:  # TranslateYRel
            coeffs = (1.0, 0.0, 0.0, 0.0, 1.0, arg * img.size[1])
        return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=resample, fillcolor=fill)

    # -- the whole policy --------------------------------------------------------------------

    def __call__(self, img: ImageLike, rng: np.random.Generator) -> ImageLike:
        _check_rng(rng, "RandAugment")
        pil = _rgb_or_l(_to_pil(img, "RandAugment"), "RandAugment")
        chosen = rng.integers(0, len(self.ops), size=self.num_ops)
        for k in chosen:
            if rng.random() >= self.prob:
                continue
            pil = self._apply_pil(self.ops[int(k)], pil, self.sample_magnitude(rng), rng)
        return _like(img, pil)

    def __repr__(self) -> str:
        return (
            f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, "
            f"magnitude_std={self.magnitude_std}, prob={self.prob}, ops={len(self.ops)} ops, "
            f"interpolation={self.interpolation!r})"
        )


# --- arrays ------------------------------------------------------------------------------------


class ToArray:
    """A PIL image or uint8 (H, W[, C]) array as a (C, H, W) float32 array scaled to [0, 1]."""

    def __call__(self, img: ImageLike, rng: np.random.Generator | None = None) -> np.ndarray:
        arr = _to_array(img, "ToArray")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        out = arr.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(out)

    def __repr__(self) -> str:
        return "ToArray()"


class Normalize:
    """``(x - mean) / std`` per channel of a (C, H, W) float array, in float32."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean {mean!r} and std {std!r} differ in length")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std!r}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.dtype.kind != "f":
            raise TypeError(
                "Normalize takes a (C, H, W) float array (apply ToArray first), got "
                + (f"a {x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__)
            )
        if x.shape[0] != self.mean.shape[0]:
            raise ValueError(
                f"Normalize: the image has {x.shape[0]} channels, mean/std have {self.mean.shape[0]}"
            )
        x = x.astype(np.float32, copy=False)
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def __repr__(self) -> str:
        mean = tuple(round(float(v), 6) for v in self.mean)
        std = tuple(round(float(v), 6) for v in self.std)
        return f"Normalize(mean={mean}, std={std})"


class RandomErasing:
    """With probability ``p``, replace one random rectangle of a (C, H, W) float array.

    The rectangle is drawn with up to 10 attempts: an area uniform in ``scale`` (a fraction of
    H*W) and an aspect ratio (height / width) log-uniform in ``ratio``; the first rectangle
    strictly smaller than the image in both directions is placed uniformly. Its pixels become
    ``mode="pixel"``: independent N(0, 1) values per pixel and channel (the image is assumed
    normalised, so this is noise of the data's scale); ``"rand"``: one N(0, 1) value per
    channel; ``"const"``: zeros. The input is not modified; a copy is returned.
    """

    _MODES = ("pixel", "rand", "const")

    def __init__(
        self,
        p: float = 0.25,
        scale: Sequence[float] = (0.02, 1.0 / 3.0),
        ratio: Sequence[float] = (0.3, 3.3),
        mode: str = "pixel",
    ):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p!r}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"RandomErasing: need 0 < scale[0] <= scale[1] <= 1, got {scale!r}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomErasing: need 0 < ratio[0] <= ratio[1], got {ratio!r}")
        if mode not in self._MODES:
            raise ValueError(f"RandomErasing: unknown mode {mode!r}: choose one of {', '.join(self._MODES)}")
        self.p = float(p)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.mode = mode

    def get_params(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
        """The rectangle ``(top, left, h, w)`` to erase, or None when no attempt fitted."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target_area = rng.uniform(self.scale[0], self.scale[1]) * area
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if 0 < h < height and 0 < w < width:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        return None

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_rng(rng, "RandomErasing")
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.dtype.kind != "f":
            raise TypeError(
                "RandomErasing takes a (C, H, W) float array (after ToArray/Normalize), got "
                + (f"a {x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__)
            )
        if rng.random() >= self.p:
            return x
        c, height, width = x.shape
        box = self.get_params(height, width, rng)
        if box is None:
            return x
        top, left, h, w = box
        out = x.copy()
        if self.mode == "pixel":
            patch = rng.standard_normal((c, h, w)).astype(x.dtype)
        elif self.mode == "rand":
            patch = rng.standard_normal((c, 1, 1)).astype(x.dtype)
        else:
            patch = np.zeros((c, 1, 1), dtype=x.dtype)
        out[:, top : top + h, left : left + w] = patch
        return out

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, mode={self.mode!r})"


# --- batch level: mixup and cutmix -------------------------------------------------------------


class MixupCutmix:
    """Mix each batch with its reverse (mixup or cutmix) and return soft, smoothed targets.

    ``__call__(x, y, rng)`` takes ``x`` (N, C, H, W) float (NumPy or CuPy) and integer labels
    ``y`` (N,), and returns ``(x_mixed, targets)`` with ``targets`` (N, num_classes) float32 on
    the backend of ``x``. Sample ``i`` is paired with sample ``N - 1 - i``.

    Per batch, with probability ``prob``, one of:

    * mixup (``lam ~ Beta(mixup_alpha, mixup_alpha)``): ``x = lam * x + (1 - lam) * x[::-1]``;
    * cutmix (``lam ~ Beta(cutmix_alpha, cutmix_alpha)``): a box of ``int(H sqrt(1 - lam))``
      by ``int(W sqrt(1 - lam))`` pixels centred at a uniformly drawn pixel, clipped to the
      image, is copied from the partner; ``lam`` becomes ``1 - box area / (H W)``.

    When both alphas are positive, cutmix is chosen with probability ``switch_prob``. The
    targets are ``lam * smooth(y) + (1 - lam) * smooth(y[::-1])`` with
    ``smooth(y) = one_hot(y) * (1 - label_smoothing) + label_smoothing / num_classes``; when
    nothing is mixed (both alphas 0, or the ``prob`` draw fails) ``lam = 1``: label smoothing
    only. All random draws are made on the host from ``rng``; the input is not modified.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
    ):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"MixupCutmix: alphas must be >= 0, got mixup_alpha={mixup_alpha!r}, "
                f"cutmix_alpha={cutmix_alpha!r}"
            )
        for name, v in (("prob", prob), ("switch_prob", switch_prob), ("label_smoothing", label_smoothing)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"MixupCutmix: {name} must be in [0, 1], got {v!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"MixupCutmix: num_classes must be a positive int, got {num_classes!r}")
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)

    def sample_params(
        self, height: int, width: int, rng: np.random.Generator
    ) -> tuple[float, tuple[int, int, int, int] | None]:
        """``(lam, box)`` for one batch; ``box = (y0, y1, x0, x1)`` for cutmix, else None.

        For cutmix ``lam`` is already corrected to the box's area.
        """
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0:
            return 1.0, None
        if rng.random() >= self.prob:
            return 1.0, None
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = bool(rng.random() < self.switch_prob)
        else:
            use_cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        if not use_cutmix:
            return lam, None
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        y0, y1 = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
        x0, x1 = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        return lam, (y0, y1, x0, x1)

    def smooth(self, y: np.ndarray) -> np.ndarray:
        """One-hot targets of the host labels ``y`` with label smoothing, float32 (N, classes)."""
        off = self.label_smoothing / self.num_classes
        out = np.full((y.shape[0], self.num_classes), off, dtype=np.float64)
        out[np.arange(y.shape[0]), y] = 1.0 - self.label_smoothing + off
        return out

    def __call__(self, x: Any, y: Any, rng: np.random.Generator) -> tuple[Any, Any]:
        _check_rng(rng, "MixupCutmix")
        name = backend.array_backend(x)
        if name is None:
            x = np.asarray(x)
            name = "numpy"
        xp = backend.module_of(name)
        if x.ndim != 4 or x.dtype.kind != "f":
            raise ValueError(f"MixupCutmix: x must be a (N, C, H, W) float array, got {x.dtype} {x.shape}")
        y_host = backend.to_numpy(y)
        if y_host.shape != (x.shape[0],) or y_host.dtype.kind not in "iu":
            raise ValueError(
                f"MixupCutmix: y must be {x.shape[0]} integer labels, got {y_host.dtype} {y_host.shape}"
            )
        if y_host.size and (y_host.min() < 0 or y_host.max() >= self.num_classes):
            raise ValueError(
                f"MixupCutmix: labels must be in [0, {self.num_classes}), got "
                f"[{y_host.min()}, {y_host.max()}]"
            )
        lam, box = self.sample_params(x.shape[2], x.shape[3], rng)
        if box is not None:
            y0, y1, x0, x1 = box
            out = x.copy()
            out[:, :, y0:y1, x0:x1] = x[::-1, :, y0:y1, x0:x1]
        elif lam < 1.0:
            out = x * x.dtype.type(lam) + x[::-1] * x.dtype.type(1.0 - lam)
        else:
            out = x.copy()
        smooth = self.smooth(y_host)
        targets = (lam * smooth + (1.0 - lam) * smooth[::-1]).astype(np.float32)
        return out, xp.asarray(targets)

    def __repr__(self) -> str:
        return (
            f"MixupCutmix(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
            f"prob={self.prob}, switch_prob={self.switch_prob}, "
            f"label_smoothing={self.label_smoothing}, num_classes={self.num_classes})"
        )


# --- presets -----------------------------------------------------------------------------------


def _mean_fill(mean: Sequence[float]) -> tuple[int, ...]:
    """The mean as a uint8 pixel: the fill colour of the geometric RandAugment ops."""
    return tuple(min(255, int(round(255 * m))) for m in mean)


def cifar_train_transform(
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    randaugment: bool = False,
    random_erasing: float = 0.0,
) -> Compose:
    """CIFAR training: ``RandomCrop(32, padding=4)``, flip, [RandAugment m9-mstd0.5],
    ToArray, Normalize, [RandomErasing with probability ``random_erasing``]."""
    steps: list[Transform] = [RandomCrop(32, padding=4), RandomHorizontalFlip()]
    if randaugment:
        steps.append(RandAugment(2, 9.0, 0.5, fill=_mean_fill(mean)))
    steps += [ToArray(), Normalize(mean, std)]
    if random_erasing > 0:
        steps.append(RandomErasing(p=random_erasing))
    return Compose(steps)


def cifar_eval_transform(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> Compose:
    """CIFAR evaluation: ToArray and Normalize, nothing random."""
    return Compose([ToArray(), Normalize(mean, std)])


def eval_transform_for(
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_pct: float = 0.9,
    interpolation: str = "bicubic",
) -> Compose:
    """Evaluation for image folders: resize the short side to ``int(img_size / crop_pct)``,
    crop the centre ``img_size``, ToArray, Normalize. With the defaults this equals
    :func:`mini_iformer.imagenet.eval_transform` for RGB images (timm's default is 0.875)."""
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"eval_transform_for: crop_pct must be in (0, 1], got {crop_pct!r}")
    h, w = _pair(img_size, "img_size")
    if h != w:
        raise ValueError(f"eval_transform_for: img_size must be square, got {img_size!r}")
    return Compose(
        [Resize(int(h / crop_pct), interpolation), CenterCrop(h), ToArray(), Normalize(mean, std)]
    )


def train_transform_for(
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    hflip: float = 0.5,
    randaugment: bool = True,
    color_jitter: float = 0.0,
    random_erasing: float = 0.25,
    interpolation: str = "bicubic",
) -> Compose:
    """Training for image folders, the iFormer/DeiT recipe: RandomResizedCrop, flip,
    RandAugment "rand-m9-mstd0.5-inc1" (or ColorJitter(``color_jitter``) when RandAugment is
    off and ``color_jitter > 0``), ToArray, Normalize, RandomErasing(``random_erasing``, pixel)."""
    steps: list[Transform] = [RandomResizedCrop(img_size, scale, ratio, interpolation)]
    if hflip > 0:
        steps.append(RandomHorizontalFlip(hflip))
    if randaugment:
        steps.append(RandAugment(2, 9.0, 0.5, fill=_mean_fill(mean), interpolation=interpolation))
    elif color_jitter > 0:
        steps.append(ColorJitter(color_jitter, color_jitter, color_jitter))
    steps += [ToArray(), Normalize(mean, std)]
    if random_erasing > 0:
        steps.append(RandomErasing(p=random_erasing, mode="pixel"))
    return Compose(steps)
