"""Composition and the ready-made pipelines.

:class:`Compose` chains transforms, passing the same generator along. The presets build the
pipelines of the training recipes: :func:`cifar_train_transform` and
:func:`cifar_eval_transform` for CIFAR, :func:`train_transform_for` and
:func:`eval_transform_for` for image folders (the iFormer/DeiT recipe), with the
normalisation statistics they default to (:data:`CIFAR10_MEAN`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..imagenet_classes import IMAGENET_MEAN, IMAGENET_STD
from .arrays import Normalize, RandomErasing, ToArray
from .common import size_pair
from .pil import (
    CenterCrop,
    ColorJitter,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
)
from .randaugment import RandAugment

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "Compose",
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
# ImageNet's, as the iFormer authors use them: IMAGENET_MEAN, IMAGENET_STD (data.imagenet_classes)

Transform = Callable[..., Any]


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


def cifar_eval_transform(
    mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD
) -> Compose:
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
    h, w = size_pair(img_size, "img_size", "eval_transform_for")
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
