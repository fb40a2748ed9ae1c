"""What the transform families share: the two kinds of image and the conversions between
them, the ``rng`` check, the interpolation names, and the size argument.

A transform takes a PIL image or an ``(H, W, C)`` / ``(H, W)`` uint8 NumPy array
(:data:`ImageLike`) and returns the same kind: :func:`to_pil` / :func:`to_array` convert on the
way in, :func:`like` / :func:`from_array` on the way out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ...ops.args import pair

__all__ = [
    "ImageLike",
    "INTERPOLATIONS",
    "RANDOM_INTERPOLATIONS",
    "check_rng",
    "size_pair",
    "check_interpolation",
    "resampling",
    "check_image_array",
    "to_pil",
    "like",
    "to_array",
    "from_array",
    "image_size",
    "rgb_or_l",
]

ImageLike = Image.Image | np.ndarray

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
# The pair "random" chooses from, for the resized crop and the geometric RandAugment ops.
RANDOM_INTERPOLATIONS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


def check_rng(rng: Any, who: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{who} is random and needs a numpy.random.Generator as its rng argument, "
            f"got {type(rng).__name__}"
        )
    return rng


def check_interpolation(name: str, allow_random: bool = False) -> str:
    choices = tuple(INTERPOLATIONS) + (("random",) if allow_random else ())
    if name not in choices:
        raise ValueError(f"unknown interpolation {name!r}: choose one of {', '.join(choices)}")
    return name


def resampling(name: str, rng: np.random.Generator | None) -> Image.Resampling:
    if name == "random":
        if rng is None:
            raise TypeError('interpolation "random" needs a numpy.random.Generator, got None')
        return RANDOM_INTERPOLATIONS[int(rng.integers(len(RANDOM_INTERPOLATIONS)))]
    return INTERPOLATIONS[name]


def check_image_array(img: np.ndarray, who: str) -> None:
    if (
        img.dtype != np.uint8
        or img.ndim not in (2, 3)
        or (img.ndim == 3 and img.shape[2] not in (1, 3, 4))
    ):
        raise TypeError(
            f"{who} takes a PIL image or an (H, W) / (H, W, C) uint8 array with C in 1, 3, 4; "
            f"got a {img.dtype} array of shape {img.shape}"
        )


def to_pil(img: ImageLike, who: str) -> Image.Image:
    """``img`` as a PIL image (arrays: (H, W, 1) becomes mode L)."""
    if isinstance(img, Image.Image):
        return img
    if isinstance(img, np.ndarray):
        check_image_array(img, who)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        return Image.fromarray(np.ascontiguousarray(img))
    raise TypeError(f"{who} takes a PIL image or a uint8 NumPy array, got {type(img).__name__}")


def like(original: ImageLike, pil: Image.Image) -> ImageLike:
    """``pil`` returned in the kind (PIL or array, same layout) of ``original``."""
    if isinstance(original, Image.Image):
        return pil
    out = np.asarray(pil, dtype=np.uint8)
    if original.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return np.array(out)  # a writable copy, never a view of Pillow's buffer


def to_array(img: ImageLike, who: str) -> np.ndarray:
    """``img`` as a uint8 (H, W) or (H, W, C) array (PIL images other than L/RGB/RGBA -> RGB)."""
    if isinstance(img, Image.Image):
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGB")
        return np.asarray(img)
    if isinstance(img, np.ndarray):
        check_image_array(img, who)
        return img
    raise TypeError(f"{who} takes a PIL image or a uint8 NumPy array, got {type(img).__name__}")


def from_array(original: ImageLike, arr: np.ndarray) -> ImageLike:
    """``arr`` (uint8) in the kind of ``original``."""
    if isinstance(original, Image.Image):
        return Image.fromarray(np.ascontiguousarray(arr))
    return np.ascontiguousarray(arr)


def image_size(img: ImageLike) -> tuple[int, int]:
    """(width, height)."""
    if isinstance(img, Image.Image):
        return img.size
    return int(img.shape[1]), int(img.shape[0])


def rgb_or_l(img: Image.Image, who: str) -> Image.Image:
    if img.mode not in ("L", "RGB"):
        if img.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr"):
            return img.convert("RGB")
        raise ValueError(f"{who} works on L or RGB images, got mode {img.mode!r}")
    return img


def size_pair(size: Any, name: str, who: str) -> tuple[int, int]:
    """An image size, ``(height, width)``: an int means a square; both at least 1."""
    return pair(size, name, who, ValueError, minimum=1)
