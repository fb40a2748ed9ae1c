"""What an iFormer refuses before computing anything: images of the wrong shape, dtype, size
or backend, each with an error that names what was expected and what came.

:class:`~mini_iformer.models.iformer.InceptionTransformer` calls these on every input
(:func:`check_images`) and offers :func:`check_image_size` as its method, which the command
lines use to refuse an ``--img-size`` before any image is loaded.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..autograd import Tensor

__all__ = ["check_image_size", "check_images"]


def check_image_size(model: Any, height: int, width: int) -> None:
    """Raise ``ValueError`` unless ``model`` takes images of ``height`` x ``width`` pixels:
    every stage's token map (``model.stage_sizes``) non-empty and divisible by its pooling."""
    name = type(model).__name__
    if height < 1 or width < 1:
        raise ValueError(f"{name}: images must have at least one pixel, got {height}x{width}")
    for i, ((h, w), pool) in enumerate(zip(model.stage_sizes(height, width), model.pool_sizes), 1):
        if h % pool or w % pool or h < pool or w < pool:
            step = max(
                (
                    math.prod(model.stem_strides) * 2**j * p
                    for j, p in enumerate(model.pool_sizes)
                    if p > 1
                ),
                default=1,
            )
            raise ValueError(
                f"{name}: an input of {height}x{width} gives stage {i} a "
                f"{h}x{w} token map, which its {pool}x{pool} pooling cannot divide; use "
                f"heights and widths that are multiples of {step} (e.g. {model.img_size[0]})"
            )


def check_images(model: Any, x: Tensor) -> None:
    """Refuse, before any computation, what ``model`` cannot take (a few attribute reads): a
    shape other than (B, in_chans, H, W) with B >= 1, a non-floating dtype, an image size
    :func:`check_image_size` refuses, and images on another backend than the parameters."""
    name = type(model).__name__
    shape = tuple(x.shape)
    expected = f"(B, {model.in_chans}, H, W)"
    if len(shape) != 4 or shape[1] != model.in_chans:
        raise ValueError(
            f"{name}: expected images of shape {expected}, got shape {shape}"
            + (
                " (add the batch axis: x[None])"
                if len(shape) == 3 and shape[0] == model.in_chans
                else ""
            )
        )
    if shape[0] == 0:
        raise ValueError(
            f"{name}: expected images of shape {expected} with B >= 1, got an "
            f"empty batch of shape {shape}"
        )
    if x.dtype.kind != "f":
        raise TypeError(
            f"{name}: expected floating-point images, got dtype "
            f"{x.dtype} (convert with .astype('float32') and normalise)"
        )
    check_image_size(model, shape[2], shape[3])
    where, ours = x.backend, model.pos_embed1.backend
    if where != ours:
        raise backend.BackendMismatchError(
            f"{name}: the images are on the {where} backend but the model's parameters are "
            f"on {ours}; create the images after set_backend({ours!r}), or build the model "
            f"after set_backend({where!r})"
        )
