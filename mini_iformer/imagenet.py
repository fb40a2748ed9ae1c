"""ImageNet-1k: the class names and the evaluation preprocessing.

* :func:`class_names` and :func:`wordnet_ids` read ``imagenet_classes.tsv`` (shipped with the
  package): one row per class, in class-index order, with the WordNet id of the synset and its
  first lemma as the human-readable name (from :mod:`mini_iformer.data.imagenet_classes`,
  with :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD`).
* :func:`eval_transform` turns one image into the network's input the way the iFormer authors
  evaluate on ImageNet: resize the short side to ``int(size / crop_pct)`` (248 for 224) with
  bicubic interpolation, crop the centre ``size x size``, scale to [0, 1] and normalise with the
  ImageNet mean and standard deviation.

Example::

    from mini_iformer.imagenet import class_names, load_images
    batch = load_images(["cat.jpg", "dog.png"])    # (2, 3, 224, 224) float32
    class_names()[207]                             # 'golden retriever'
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Union

import numpy as np
from PIL import Image

from .data.imagenet_classes import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_CLASSES,
    class_names,
    parse_class_table,
    wordnet_ids,
)
from .data.images import read_image
from .data.images import to_rgb as _to_rgb

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_CLASSES",
    "class_names",
    "wordnet_ids",
    "parse_class_table",
    "open_image",
    "to_rgb",
    "resize_short_side",
    "center_crop",
    "normalize",
    "eval_transform",
    "load_images",
]

ImageLike = Union[Image.Image, str, "os.PathLike[str]"]


# --- images ----------------------------------------------------------------------------------


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """The image at ``path``, upright as a viewer shows it (EXIF orientation), in 8-bit RGB.

    The dataset reader's :func:`mini_iformer.data.images.read_image`, so a photo gives the
    same pixels here as through an ``ImageFolder``, with the same guards (decompression
    bombs, truncated files...). Raises ``ValueError`` (``DatasetError``) naming the path
    when it is missing or not a readable image.
    """
    return read_image(path)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, whatever its mode, as
    :func:`mini_iformer.data.images.to_rgb` converts it (alpha dropped, 16-bit scaled to 8
    bits, float taken as [0, 1])."""
    return _to_rgb(image)


def resize_short_side(image: Image.Image, short: int) -> Image.Image:
    """Resize with bicubic interpolation so the shorter side is ``short``, keeping the aspect.

    The long side is ``int(short * long / short_before)``, as torchvision's ``Resize(int)``.
    """
    width, height = image.size
    if width <= height:
        new_size = (short, int(short * height / width))
    else:
        new_size = (int(short * width / height), short)
    if new_size == image.size:
        return image
    return image.resize(new_size, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The centre ``size x size`` of ``image``, offsets rounded as torchvision rounds them."""
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"cannot crop {size}x{size} from a {width}x{height} image")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def normalize(image: Image.Image) -> np.ndarray:
    """An RGB image as a float32 (3, H, W) array, scaled to [0, 1] and ImageNet-normalised."""
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def _check_geometry(size: int, crop_pct: float) -> int:
    """Validate ``size`` and ``crop_pct``; return the short side to resize to."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct!r}")
    return int(size / crop_pct)


def eval_transform(image: ImageLike, size: int = 224, crop_pct: float = 0.9) -> np.ndarray:
    """One image as the network's (3, size, size) float32 input, as in ImageNet evaluation.

    ``image`` is a PIL image or a path. Any mode is converted to RGB first; the short side is
    resized (bicubic) to ``int(size / crop_pct)``, the centre ``size x size`` is cropped, and
    the pixels are scaled to [0, 1] and normalised with :data:`IMAGENET_MEAN` and
    :data:`IMAGENET_STD`. A path that is missing or not an image raises ``ValueError``.
    """
    short = _check_geometry(size, crop_pct)
    if not isinstance(image, Image.Image):
        image = open_image(image)
    image = to_rgb(image)
    return normalize(center_crop(resize_short_side(image, short), int(size)))


def load_images(
    paths: Iterable[str | os.PathLike[str]], size: int = 224, crop_pct: float = 0.9
) -> np.ndarray:
    """The images at ``paths`` through :func:`eval_transform`, stacked to (N, 3, size, size)."""
    arrays = [eval_transform(path, size, crop_pct) for path in paths]
    if not arrays:
        _check_geometry(size, crop_pct)
        return np.zeros((0, 3, size, size), dtype=np.float32)
    return np.stack(arrays)
