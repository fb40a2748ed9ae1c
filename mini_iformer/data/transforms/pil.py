"""The image transforms: crops, flip, resize and colour jitter, done with Pillow.

Each takes a PIL image or an ``(H, W, C)`` / ``(H, W)`` uint8 NumPy array and returns the same
kind: :class:`RandomCrop`, :class:`RandomResizedCrop`, :class:`RandomHorizontalFlip`,
:class:`Resize`, :class:`CenterCrop` and :class:`ColorJitter`. The helpers they share
with the other transform families are in :mod:`.common`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance

from .common import (
    INTERPOLATIONS,
    ImageLike,
    check_interpolation,
    check_rng,
    from_array,
    image_size,
    like,
    resampling,
    rgb_or_l,
    size_pair,
    to_array,
    to_pil,
)

__all__ = [
    "RandomCrop",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "Resize",
    "CenterCrop",
    "ColorJitter",
]

# --- geometry ----------------------------------------------------------------------------------


class RandomCrop:
    """Pad every side by ``padding`` pixels of ``fill``, then crop ``size`` at a random offset.

    The CIFAR recipe is ``RandomCrop(32, padding=4)``: a 40x40 padded image, a 32x32 window at
    an offset drawn uniformly from the 9x9 possible ones (the row first, then the column).
    ``fill`` is one value or one per channel.
    """

    def __init__(self, size: int | Sequence[int], padding: int = 0, fill: int | Sequence[int] = 0):
        self.size = size_pair(size, "size", "RandomCrop")
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
        check_rng(rng, "RandomCrop")
        arr = to_array(img, "RandomCrop")
        top, left = self.offsets(arr.shape[0], arr.shape[1], rng)
        p = self.padding
        if p:
            if arr.ndim == 2:
                fill = np.uint8(np.asarray(self.fill).reshape(-1)[0])
                padded = np.full((arr.shape[0] + 2 * p, arr.shape[1] + 2 * p), fill, np.uint8)
            else:
                fill = np.broadcast_to(np.asarray(self.fill, dtype=np.uint8), (arr.shape[2],))
                padded = np.empty(
                    (arr.shape[0] + 2 * p, arr.shape[1] + 2 * p, arr.shape[2]), np.uint8
                )
                padded[...] = fill
            padded[p : p + arr.shape[0], p : p + arr.shape[1]] = arr
            arr = padded
        h, w = self.size
        return from_array(img, arr[top : top + h, left : left + w])

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
        self.size = size_pair(size, "size", "RandomResizedCrop")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"RandomResizedCrop: need 0 < scale[0] <= scale[1], got {scale!r}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"RandomResizedCrop: need 0 < ratio[0] <= ratio[1], got {ratio!r}")
        self.interpolation = check_interpolation(interpolation, allow_random=True)

    def get_params(
        self, width: int, height: int, rng: np.random.Generator
    ) -> tuple[int, int, int, int]:
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
        check_rng(rng, "RandomResizedCrop")
        pil = to_pil(img, "RandomResizedCrop")
        top, left, h, w = self.get_params(pil.size[0], pil.size[1], rng)
        resample = resampling(self.interpolation, rng)
        out_h, out_w = self.size
        crop = pil.crop((left, top, left + w, top + h))
        return like(img, crop.resize((out_w, out_h), resample))

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
        check_rng(rng, "RandomHorizontalFlip")
        if rng.random() >= self.p:
            return img
        if isinstance(img, Image.Image):
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = to_array(img, "RandomHorizontalFlip")
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
            self.size = size_pair(size, "size", "Resize")
        self.interpolation = check_interpolation(interpolation)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of ``width`` x ``height`` is resized to."""
        if isinstance(self.size, tuple):
            return self.size[1], self.size[0]
        short = self.size
        if width <= height:
            return short, int(short * height / width)
        return int(short * width / height), short

    def __call__(self, img: ImageLike, rng: np.random.Generator | None = None) -> ImageLike:
        pil = to_pil(img, "Resize")
        new_size = self.output_size(*pil.size)
        if new_size == pil.size:
            return img
        return like(img, pil.resize(new_size, INTERPOLATIONS[self.interpolation]))

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation!r})"


class CenterCrop:
    """The central ``size`` window; offsets ``round((H - h) / 2)``, ``round((W - w) / 2)``."""

    def __init__(self, size: int | Sequence[int]):
        self.size = size_pair(size, "size", "CenterCrop")

    def __call__(self, img: ImageLike, rng: np.random.Generator | None = None) -> ImageLike:
        if not isinstance(img, Image.Image):
            img = to_array(img, "CenterCrop")
        width, height = image_size(img)
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

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.0,
    ):
        for name, v in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            if v < 0:
                raise ValueError(f"ColorJitter: {name} must be >= 0, got {v!r}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue must be in [0, 0.5], got {hue!r}")
        self.brightness, self.contrast, self.saturation, self.hue = (
            float(brightness),
            float(contrast),
            float(saturation),
            float(hue),
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
        check_rng(rng, "ColorJitter")
        pil = rgb_or_l(to_pil(img, "ColorJitter"), "ColorJitter")
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
        return like(img, pil)

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue})"
        )
