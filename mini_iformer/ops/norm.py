"""Normalisation: ``layer_norm`` and ``batch_norm``, like PyTorch's.

Both normalise to zero mean and unit variance, then scale and shift; they differ in what they
average over. Layer norm: the trailing ``normalized_shape`` axes of each item (iFormer's norm,
channel-last). Batch norm: each channel (axis 1) over the batch and every position.

**The references** compute x_hat and write the backward in its textbook form: with
g_hat = g * weight and means over what was normalised,

    dx = (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) / sigma

**The fast forms** (``norm_fast.py``): layer norm blocked on all cores with the formula
expanded into BLAS calls, and batch norm with ``einsum`` reductions.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from .. import backend
from ..autograd import Tensor, as_tensor, register_op
from . import norm_fast
from .args import shape_of
from .registry import Dispatch, Implementation, register
from .shape import reshape

__all__ = [
    "layer_norm",
    "batch_norm",
    "layer_norm_forward",
    "layer_norm_backward",
    "batch_norm_forward",
    "batch_norm_backward",
]


# ---------------------------------------------------------------------------------------------
# layer_norm
# ---------------------------------------------------------------------------------------------
def layer_norm_forward(ctx, x, weight, bias, normalized_shape, eps):
    """Each row (the trailing D = prod(normalized_shape) elements) normalised to zero mean
    and unit variance, then scaled and shifted.

        mu = mean(x),  sigma = sqrt(mean((x - mu)^2) + eps),  x_hat = (x - mu) / sigma
        y = x_hat * weight + bias
    """
    xp = backend.array_module(x)
    d = math.prod(normalized_shape)
    rows = x.reshape(-1, d)
    mu = rows.mean(axis=1, keepdims=True)
    sigma = xp.sqrt(((rows - mu) ** 2).mean(axis=1, keepdims=True) + eps)
    x_hat = (rows - mu) / sigma
    w = weight.reshape(-1) if weight is not None else 1.0
    y = x_hat * w + (bias.reshape(-1) if bias is not None else 0.0)
    ctx.x_hat, ctx.sigma, ctx.w = x_hat, sigma, w
    ctx.shape, ctx.norm_shape = x.shape, normalized_shape
    return y.reshape(x.shape)


def layer_norm_backward(ctx, g):
    """With g_hat = g * weight and means over each row:

    dx = (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) / sigma
    dweight = sum over rows of g * x_hat,   dbias = sum over rows of g
    """
    need_x, need_w, need_b = ctx.needs_input_grad
    x_hat, sigma = ctx.x_hat, ctx.sigma
    g = g.reshape(x_hat.shape)
    g_hat = g * ctx.w
    dx = (
        g_hat
        - g_hat.mean(axis=1, keepdims=True)
        - x_hat * (g_hat * x_hat).mean(axis=1, keepdims=True)
    ) / sigma
    dw = (g * x_hat).sum(axis=0).reshape(ctx.norm_shape) if need_w else None
    db = g.sum(axis=0).reshape(ctx.norm_shape) if need_b else None
    return (dx.reshape(ctx.shape) if need_x else None), dw, db


class LayerNorm(Dispatch):
    name = "layer_norm"


def _normalized_shape(normalized_shape: Any, x_shape: tuple[int, ...], op: str) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple, checked against the trailing axes of the input."""
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    try:
        shape = tuple(operator.index(n) for n in normalized_shape)
    except TypeError:
        raise TypeError(
            f"{op}: normalized_shape must be a tuple of ints, got {normalized_shape!r}"
        ) from None
    if not shape:
        raise ValueError(f"{op}: normalized_shape must have at least one element, got {shape}")
    if len(shape) > len(x_shape) or x_shape[len(x_shape) - len(shape) :] != shape:
        raise ValueError(
            f"{op}: normalized_shape={shape} must equal the trailing dimensions of the input, "
            f"but the input has shape {x_shape}"
        )
    return shape


@register_op("layer_norm")
def layer_norm(
    input: Any,
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` axes, like
    ``torch.nn.functional.layer_norm``. iFormer uses it channel-last on (B, H, W, C) with
    ``normalized_shape=(C,)`` and ``eps=1e-6``. ``weight`` and ``bias`` have shape
    ``normalized_shape``."""
    x_shape = shape_of(input, "input", "layer_norm")
    shape = _normalized_shape(normalized_shape, x_shape, "layer_norm")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and shape_of(p, name, "layer_norm") != shape:
            raise ValueError(
                f"layer_norm: {name} must have the shape normalized_shape={shape}, but has shape "
                f"{shape_of(p, name, 'layer_norm')} (input {x_shape})"
            )
    if math.prod(x_shape) == 0:  # nothing to normalise: an empty result; weight, bias get 0
        y = as_tensor(input) * (1.0 if weight is None else weight)
        return y if bias is None else y + bias
    return LayerNorm.apply(input, weight, bias, normalized_shape=shape, eps=float(eps))


# ---------------------------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------------------------
def batch_norm_forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
    """Each channel c of x (N, C, ...) normalised over its n = N * (positions) values, then
    scaled and shifted.

        training:   mu, var = the batch's mean and (biased) variance of the channel, and the
                    running statistics move towards them (in place):
                    running_mean = (1 - momentum) running_mean + momentum mu
                    running_var  = (1 - momentum) running_var  + momentum var n / (n - 1)
        evaluation: mu, var = running_mean, running_var

        x_hat = (x - mu) / sigma,  sigma = sqrt(var + eps),  y = x_hat * weight + bias
    """
    xp = backend.array_module(x)
    x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, positions)
    count = x3.shape[0] * x3.shape[2]
    if training:
        mu = x3.mean(axis=(0, 2))
        var = ((x3 - mu[:, None]) ** 2).mean(axis=(0, 2))
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mu
        if running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * var * count / (count - 1)
    else:
        mu, var = running_mean, running_var
    sigma = xp.sqrt(var + eps)
    x_hat = (x3 - mu[:, None]) / sigma[:, None]
    w = weight[:, None] if weight is not None else 1.0
    y = x_hat * w + (bias[:, None] if bias is not None else 0.0)
    ctx.x_hat, ctx.sigma, ctx.w, ctx.training, ctx.shape = x_hat, sigma, w, training, x.shape
    return y.reshape(x.shape)


def batch_norm_backward(ctx, g):
    """With g_hat = g * weight and means over a channel's values:

    training:   dx = (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) / sigma
    evaluation: dx = g_hat / sigma          (the statistics are constants)
    dweight = sum of g * x_hat,   dbias = sum of g
    """
    need_x, need_w, need_b = ctx.needs_input_grad
    x_hat, sigma = ctx.x_hat, ctx.sigma[:, None]
    g = g.reshape(x_hat.shape)
    g_hat = g * ctx.w
    if ctx.training:
        dx = (
            g_hat
            - g_hat.mean(axis=(0, 2), keepdims=True)
            - x_hat * (g_hat * x_hat).mean(axis=(0, 2), keepdims=True)
        ) / sigma
    else:
        dx = g_hat / sigma
    dw = (g * x_hat).sum(axis=(0, 2)) if need_w else None
    db = g.sum(axis=(0, 2)) if need_b else None
    return (dx.reshape(ctx.shape) if need_x else None), dw, db


class BatchNorm(Dispatch):
    name = "batch_norm"


def _buffer(t: Any) -> Any:
    """The array inside a running-statistics buffer (updated in place)."""
    return t.data if isinstance(t, Tensor) else t


@register_op("batch_norm")
def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over axis 1 of (N, C, ...) input, like
    ``torch.nn.functional.batch_norm``.

    ``training=True`` normalises with the batch statistics and, when given, updates
    ``running_mean`` and ``running_var`` (tensors without gradient, shape (C,)) in place;
    ``training=False`` uses the running statistics, which must then be given. An input with no
    elements gives an empty result and leaves the running statistics alone; the shapes of
    running_mean, running_var, weight and bias are checked there too (PyTorch skips that).
    """
    op = "batch_norm"
    x_shape = shape_of(input, "input", op)
    if len(x_shape) < 2:
        raise ValueError(f"{op}: input must have shape (N, C, ...), got shape {x_shape}")
    c = x_shape[1]
    named = (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    )
    for name, p in named:
        if p is not None and shape_of(p, name, op) != (c,):
            raise ValueError(
                f"{op}: {name} must have shape ({c},), one value per channel of the input of "
                f"shape {x_shape}, but has shape {shape_of(p, name, op)}"
            )
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}: momentum must be a float, got {momentum!r}")
    if training:
        if math.prod(x_shape[:1] + x_shape[2:]) == 1:  # (none at all is allowed, as in PyTorch)
            raise ValueError(
                f"{op}: Expected more than 1 value per channel when training, got input of "
                f"shape {x_shape}"
            )
    elif running_mean is None or running_var is None:
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode")
    for name, p in named[:2]:
        if isinstance(p, Tensor) and p.requires_grad:
            raise ValueError(f"{op}: {name} is a buffer and must not require grad")
    if math.prod(x_shape) == 0:  # nothing to normalise: an empty result, the running statistics
        per_channel = (1, c) + (1,) * (len(x_shape) - 2)  # untouched; weight and bias get 0
        y = as_tensor(input) * (1.0 if weight is None else reshape(weight, per_channel))
        return y if bias is None else y + reshape(bias, per_channel)
    return BatchNorm.apply(
        input,
        weight,
        bias,
        running_mean=_buffer(running_mean),
        running_var=_buffer(running_var),
        training=bool(training),
        momentum=float(momentum),
        eps=float(eps),
    )


# ---------------------------------------------------------------------------------------------
# Every implementation, in the order they are tried
# ---------------------------------------------------------------------------------------------
LAYER_NORM_IMPLEMENTATIONS = register(
    "layer_norm",
    [
        Implementation("reference", layer_norm_forward, layer_norm_backward),
        Implementation(
            "blocked", norm_fast.blocked_layer_norm_forward, norm_fast.blocked_layer_norm_backward
        ),
    ],
)

BATCH_NORM_IMPLEMENTATIONS = register(
    "batch_norm",
    [
        Implementation("reference", batch_norm_forward, batch_norm_backward),
        Implementation(
            "einsum", norm_fast.einsum_batch_norm_forward, norm_fast.einsum_batch_norm_backward
        ),
    ],
)
