"""Reductions (sum, mean, max, min, var) and the softmax family.

Each reduction takes ``axis`` (None for all axes, an int, or a tuple) and ``keepdims``, like
NumPy. Backward first puts the reduced axes back as size-1 axes (the "keepdims" shape) and
then lets broadcasting spread the gradient over the elements that were reduced.
"""

from __future__ import annotations

import builtins
import numbers
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor, register_op
from ..runtime import for_each_block
from .args import normalize_axes, normalize_axis
from .elementwise import astype
from .registry import Dispatch, Implementation, register

__all__ = ["sum", "mean", "max", "min", "var", "softmax", "log_softmax"]


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Sum(Function):
    """y = sum of x over ``axes``;  dx = g broadcast back over the reduced axes."""

    name = "sum"

    def forward(self, x, axes, keepdims):
        self.shape, self.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, g):
        xp = backend.array_module(g)
        return xp.broadcast_to(g.reshape(_kept_shape(self.shape, self.axes)), self.shape)


class Mean(Sum):
    """y = sum(x) / n over ``axes``;  dx = g / n broadcast back."""

    name = "mean"

    def forward(self, x, axes, keepdims):
        self.n = _count(x.shape, axes)
        with np.errstate(invalid="ignore", divide="ignore"):  # over nothing: NaN, as PyTorch
            return super().forward(x, axes, keepdims) / self.n

    def backward(self, g):
        with np.errstate(invalid="ignore", divide="ignore"):
            return super().backward(g / self.n)


class Max(Function):
    """y = max of x over ``axes``;  dx = g at the maximum (split evenly between exact ties)."""

    name = "max"
    reducer = "max"

    def forward(self, x, axes, keepdims):
        if any(x.shape[a] == 0 for a in axes) or (x.ndim == 0 and x.size == 0):
            raise ValueError(
                f"{self.name} over an empty axis is undefined (shape {x.shape}, axes {axes})"
            )
        y = getattr(x, self.reducer)(axis=axes, keepdims=True)
        self.axes = axes
        self.mask = x == y
        return y if keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])

    def backward(self, g):
        mask = self.mask
        count = mask.sum(axis=self.axes, keepdims=True)
        return g.reshape(_kept_shape(mask.shape, self.axes)) * mask / count


class Min(Max):
    """y = min of x over ``axes``;  dx = g at the minimum (split evenly between exact ties)."""

    name = "min"
    reducer = "min"


class Var(Function):
    """y = sum((x - mean)^2) / max(n - correction, 0);  dx = g * 2 (x - mean) / (same).

    ``correction`` may be any real number, as in PyTorch. With no degrees of freedom left the
    forward divides by zero: inf where the sum is positive, NaN where it is 0. The backward
    does what PyTorch's does there: over the whole tensor (``axis=None``, or a 0-d tensor) it
    divides by the same max(n - correction, 0); over given axes by n - correction itself
    (negative when correction > n). No warning either way. One difference: over the whole
    tensor without degrees of freedom PyTorch's gradient is +inf wherever x differs from the
    mean; ours is the formula's, inf with the sign of g (x - mean)."""

    name = "var"

    def forward(self, x, axes, correction, keepdims, whole):
        self.axes = axes
        n = _count(x.shape, axes)
        with np.errstate(divide="ignore", invalid="ignore"):  # over nothing: NaN
            self.d = x - x.sum(axis=axes, keepdims=True) / n
        self.denom = builtins.max(n - correction, 0.0)
        self.dof = self.denom if whole else n - correction
        sq = (self.d * self.d).sum(axis=axes, keepdims=keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            return sq / self.denom if self.denom else sq * float("inf")

    def backward(self, g):
        g = g.reshape(_kept_shape(self.d.shape, self.axes))
        scale = 2.0 / self.dof if self.dof else float("inf")
        with np.errstate(invalid="ignore"):
            return g * scale * self.d


def _reduce(cls: type[Function], x: Any, axis: Any, keepdims: bool, **extra: Any) -> Tensor:
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim, cls.name, x.shape)
    return cls.apply(x, axes=axes, keepdims=bool(keepdims), **extra)


@register_op("sum")
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None: all axes)."""
    return _reduce(Sum, x, axis, keepdims)


@register_op("mean")
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis`` (None: all axes)."""
    return _reduce(Mean, x, axis, keepdims)


@register_op("max")
def max(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest value over ``axis`` (values only; the gradient goes to the maximum)."""
    return _reduce(Max, x, axis, keepdims)


@register_op("min")
def min(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest value over ``axis`` (values only; the gradient goes to the minimum)."""
    return _reduce(Min, x, axis, keepdims)


@register_op("var")
def var(x: Any, axis: Any = None, correction: Any = 1, keepdims: bool = False) -> Tensor:
    """Variance over ``axis``, dividing by ``n - correction`` (1 or None: unbiased, PyTorch's
    default; 0: the population variance, NumPy's default; any real number, as in PyTorch)."""
    if correction is None:
        correction = 1
    if isinstance(correction, bool) or not isinstance(correction, numbers.Real):
        raise TypeError(f"var: correction must be a number, got {correction!r}")
    x = as_tensor(x)
    return _reduce(
        Var, x, axis, keepdims, correction=float(correction), whole=axis is None or x.ndim == 0
    )


def softmax_forward(ctx, x, axis):
    """y = exp(x - max x) / sum exp(x - max x) along ``axis``. Subtracting the maximum first
    keeps every exponent <= 0, so nothing overflows."""
    xp = backend.array_module(x)
    if x.size == 0:  # nothing to normalise (an empty axis has no maximum)
        ctx.y, ctx.axis = x.copy(), axis
        return ctx.y
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    ctx.y, ctx.axis = e / e.sum(axis=axis, keepdims=True), axis
    return ctx.y


def softmax_backward(ctx, g):
    """dx = y * (g - sum(g * y)) along ``axis``."""
    y = ctx.y
    return y * (g - (g * y).sum(axis=ctx.axis, keepdims=True))


def _last_axis_on_numpy(x, axis) -> bool:
    return axis == x.ndim - 1 and x.ndim > 1 and x.size > 0 and backend.array_module(x) is np


def blocked_softmax_forward(ctx, x, axis):
    """The reference along the last axis of a NumPy array, in cache-sized blocks of rows on all
    cores (:func:`~mini_iformer.runtime.for_each_block`), into one preallocated output, with
    one reciprocal per row (attention's softmax over keys)."""
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    y = np.empty_like(x2)
    col_ones = np.ones(x2.shape[-1], dtype=x2.dtype)

    def block(s, e):
        yb = y[s:e]
        np.subtract(x2[s:e], x2[s:e].max(axis=1, keepdims=True), out=yb)
        np.exp(yb, out=yb)
        yb *= (1.0 / (yb @ col_ones))[:, None]

    for_each_block(x2.shape[0], x2.shape[1], block, x2)
    ctx.y = y.reshape(x.shape)
    return ctx.y


def blocked_softmax_backward(ctx, g):
    """y g - y sum(g y), block by block."""
    y = ctx.y
    y2 = y.reshape(-1, y.shape[-1])
    g2 = np.ascontiguousarray(g).reshape(y2.shape)
    dx = np.empty_like(y2)

    def block(s, e):
        out = dx[s:e]
        np.multiply(g2[s:e], y2[s:e], out=out)
        dot = np.einsum("ij->i", out)
        out -= y2[s:e] * dot[:, None]

    for_each_block(y2.shape[0], y2.shape[1], block, y2)
    return dx.reshape(y.shape)


class Softmax(Dispatch):
    name = "softmax"


class LogSoftmax(Function):
    """y = x - max x - log sum exp(x - max x) along ``axis``;  dx = g - softmax(x) * sum(g)."""

    name = "log_softmax"

    def forward(self, x, axis):
        xp = backend.array_module(x)
        self.axis = axis
        if x.size == 0:  # nothing to normalise (an empty axis has no maximum)
            self.y = x.copy()
            return self.y
        shifted = x - x.max(axis=axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.y

    def backward(self, g):
        xp = backend.array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)


def _along(cls: type[Function], x: Any, axis: int, dtype: Any = None) -> Tensor:
    x = as_tensor(x)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{cls.name}: dtype must be a floating-point type, got {dtype}")
        if x.dtype != dtype:
            x = astype(x, dtype)
    return cls.apply(x, axis=normalize_axis(axis, x.ndim, cls.name, x.shape))


@register_op("softmax")
def softmax(x: Any, axis: int = -1, dtype: Any = None) -> Tensor:
    """Softmax along ``axis``: non-negative values that sum to 1, numerically stable. With
    ``dtype``, the input is converted to it first (PyTorch's ``dtype`` argument)."""
    return _along(Softmax, x, axis, dtype)


@register_op("log_softmax")
def log_softmax(x: Any, axis: int = -1, dtype: Any = None) -> Tensor:
    """log(softmax(x)) along ``axis``, computed without forming softmax (stable). With
    ``dtype``, the input is converted to it first."""
    return _along(LogSoftmax, x, axis, dtype)


SOFTMAX_IMPLEMENTATIONS = register(
    "softmax",
    [
        Implementation("reference", softmax_forward, softmax_backward),
        Implementation(
            "blocked",
            blocked_softmax_forward,
            blocked_softmax_backward,
            supports=_last_axis_on_numpy,
        ),
    ],
)
