"""Pooling: ``max_pool2d`` and ``avg_pool2d``, with PyTorch's arguments and results.

iFormer uses both: its high-frequency mixer max-pools 3x3 with stride 1 and padding 1, and its
low-frequency mixer average-pools 2x2 before attention.

**The reference forms** are loops over the k*k kernel offsets, like conv2d's: offset (a, b)
reads one strided slice of the padded input for every output at once (:meth:`Window.taps`),

    view_ab[n, c, i, j] = x_pad[n, c, i*sh + a*dh, j*sw + b*dw]

max pooling takes the maximum over the k*k views and routes each output's gradient back to the
one element that won (its argmax); average pooling sums the views, divides by each window's
divisor, and spreads g / divisor back over the window.

**The fast forms** (listed at the end of this module): the same offset loops with a running
maximum and a flat layout for stride 1, the tiling case of average pooling as reshapes
(``pool_fast.py``), and a CUDA kernel for max pooling (``pool_cuda.py``, ``pool.cu``).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor, as_tensor, register_op
from . import pool_cuda, pool_fast
from .args import check_bool, pair
from .registry import Dispatch, Implementation, register
from .shape import squeeze, unsqueeze
from .window import Window, lowest, output_size

__all__ = [
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]


# ---------------------------------------------------------------------------------------------
# The references
# ---------------------------------------------------------------------------------------------
def max_pool2d_forward(ctx, x, win: Window):
    """y[n, c, i, j] = the largest x_pad in the window of (i, j); padding never wins.

    The k*k views are stacked, seen (K, N, C, Ho, Wo), and ``arg`` keeps which offset won,
    by PyTorch's rule: the first maximum in row-major window order among the positions inside
    the input; a NaN is the maximum of any window that holds one, and the last NaN wins.
    """
    y, ctx.arg = _window_maxima(x, win)
    ctx.win = win
    return y


def _window_maxima(x, win: Window):
    """Every window's maximum and the offset k (row-major over the window) that holds it."""
    xp = backend.array_module(x)
    xpad = win.pad(x, lowest(x.dtype))
    inside = win.pad(xp.ones(x.shape, dtype=bool), False)
    seen, real = xp.stack(win.views(xpad)), xp.stack(win.views(inside))  # (K, N, C, Ho, Wo)
    y = seen.max(axis=0)
    first_max = (real & (seen == y)).argmax(axis=0)
    last_nan = len(seen) - 1 - (seen != seen)[::-1].argmax(axis=0)
    return y, xp.where(y != y, last_nan, first_max)


def _max_indices(x, win: Window):
    """PyTorch's ``return_indices``: for every output, the flat position h * W + w, in its
    (n, c) plane, of the input element its window's maximum came from."""
    xp = backend.array_module(x)
    _, arg = _window_maxima(x, win)
    offsets = xp.asarray(win.offsets, dtype=np.int64)  # (K, 2)
    (ho, wo), (sh, sw), (dh, dw) = win.out, win.stride, win.dilation
    top, _, left, _ = win.pads
    rows = xp.arange(ho)[:, None] * sh + offsets[arg, 0] * dh - top
    cols = xp.arange(wo)[None, :] * sw + offsets[arg, 1] * dw - left
    return rows * win.shape[3] + cols


def max_pool2d_backward(ctx, g):
    """Each output's gradient goes to the element that won its window:
    dx_pad[view_k] += g * (arg == k), for every offset k."""
    xp = backend.array_module(g)
    win, arg = ctx.win, ctx.arg
    dxpad = xp.zeros(win.shape[:2] + win.padded, dtype=g.dtype)
    for k, (a, b) in enumerate(win.offsets):
        rows, cols = win.taps(a, b)
        dxpad[:, :, rows, cols] += g * (arg == k)
    return win.unpad(dxpad)


def avg_pool2d_forward(ctx, x, win: Window, divisor):
    """y[n, c, i, j] = (sum of the zero-padded window of (i, j)) / divisor[i, j]."""
    total = sum(win.views(win.pad(x, 0)))
    ctx.win, ctx.divisor = win, divisor
    return total / _as_array(divisor, x)


def avg_pool2d_backward(ctx, g):
    """Every element of a window gets that window's g / divisor: dx_pad[view] += g / divisor."""
    xp = backend.array_module(g)
    win = ctx.win
    share = g / _as_array(ctx.divisor, g)
    dxpad = xp.zeros(win.shape[:2] + win.padded, dtype=g.dtype)
    for a, b in win.offsets:
        rows, cols = win.taps(a, b)
        dxpad[:, :, rows, cols] += share
    return win.unpad(dxpad)


def _as_array(divisor: Any, like: Any) -> Any:
    """The divisor (a number or an (Ho, Wo) host array) on ``like``'s backend and dtype."""
    if isinstance(divisor, (int, float)):
        return divisor
    return backend.array_module(like).asarray(divisor, dtype=like.dtype)


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
def _check_input(x: Tensor, op: str) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}"
        )
    if 0 in x.shape[-3:]:
        raise ValueError(
            f"{op}: only the batch axis of the input may be empty, got shape {x.shape}"
        )


def _window(op: str, x: Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> Window:
    """Validate pooling arguments the way PyTorch does; the window for a 4-D input."""
    kernel = pair(kernel_size, "kernel_size", op, ValueError)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    strides = kernel if no_stride else pair(stride, "stride", op, ValueError)
    pads = pair(padding, "padding", op, ValueError)
    dils = pair(dilation, "dilation", op, ValueError)
    ceil_mode = check_bool(ceil_mode, "ceil_mode", op)
    for name, values, low in [
        ("kernel_size", kernel, 1),
        ("stride", strides, 1),
        ("dilation", dils, 1),
        ("padding", pads, 0),
    ]:
        if min(values) < low:
            which = "positive" if low else "non-negative"
            raise ValueError(f"{op}: {name} must be {which}, got {values}")
    for k, p in zip(kernel, pads):  # PyTorch compares with the kernel itself, not the dilated one
        if p > k // 2:
            raise ValueError(
                f"{op}: padding {pads} must be at most half of kernel_size {kernel}, so that "
                "every window holds an input element"
            )
    out_h, out_w = (
        output_size(n, k, s, p, p, d, ceil_mode)
        for n, k, s, p, d in zip(x.shape[-2:], kernel, strides, pads, dils)
    )
    out = (out_h, out_w)
    if min(out) < 1:
        raise ValueError(
            f"{op}: output size {out} is too small: input shape {x.shape} with kernel_size "
            f"{kernel}, stride {strides}, padding {pads}, dilation {dils}"
        )
    shape = (1,) * (4 - x.ndim) + x.shape
    return Window.for_output(shape, kernel, strides, dils, pads, out)


def _on_4d(fn: Any, x: Tensor) -> Tensor:
    """Run a 4-D operation on a 3-D (C, H, W) input by adding and removing a batch axis."""
    return squeeze(fn(unsqueeze(x, 0)), 0) if x.ndim == 3 else fn(x)


def _divisor(win: Window, padding, count_include_pad: bool, divisor_override) -> Any:
    """Every output's divisor, as an (Ho, Wo) array, or one number: the window's area counting
    the padding (but not the part past it that ``ceil_mode`` adds), the number of input
    elements in it, or ``divisor_override``."""
    if divisor_override is not None:
        return float(divisor_override)
    counts = []
    for n, k, s, p, o in zip(win.shape[2:], win.kernel, win.stride, padding, win.out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        inside = np.minimum(end, n) - np.maximum(start, 0)
        counts.append(end - start if count_include_pad else inside)
    return np.outer(*counts).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# The operations
# ---------------------------------------------------------------------------------------------
class MaxPool2d(Dispatch):
    name = "max_pool2d"


class AvgPool2d(Dispatch):
    name = "avg_pool2d"


@register_op("max_pool2d")
def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """2-D max pooling over (N, C, H, W) or (C, H, W), like ``torch.nn.functional.max_pool2d``.

    ``kernel_size``, ``stride`` (default: ``kernel_size``), ``padding`` and ``dilation`` are an
    int or a (rows, cols) pair. Padding is at most half the kernel and never wins the max.
    Output size per axis: floor((n + 2p - d(k-1) - 1) / s) + 1 (rounded up with ``ceil_mode``).
    The gradient goes to one maximum per window, the first in row-major order.
    ``return_indices=True`` also returns, as int64, the flat position h * W + w in its plane of
    each output's maximum (what ``max_unpool2d`` takes in PyTorch).
    """
    x = as_tensor(input)
    _check_input(x, "max_pool2d")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"max_pool2d: expected a numeric input, got dtype {x.dtype}")
    win = _window("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    y = _on_4d(lambda t: MaxPool2d.apply(t, win=win), x)
    if not check_bool(return_indices, "return_indices", "max_pool2d"):
        return y
    x4 = x.data if x.ndim == 4 else x.data[None]
    indices = _max_indices(x4, win)
    return y, Tensor._make(indices if x.ndim == 4 else indices[0])


@register_op("avg_pool2d")
def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling over (N, C, H, W) or (C, H, W), like
    ``torch.nn.functional.avg_pool2d``.

    Each output is the sum of its window (zero padding) divided by the window area when
    ``count_include_pad``, else by the number of input elements in the window, or by
    ``divisor_override`` when given. ``kernel_size``, ``stride`` (default: ``kernel_size``) and
    ``padding`` are an int or a (rows, cols) pair; padding is at most half the kernel.
    """
    op = "avg_pool2d"
    x = as_tensor(input)
    _check_input(x, op)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")
    win = _window(op, x, kernel_size, stride, padding, 1, ceil_mode)
    include = check_bool(count_include_pad, "count_include_pad", op)
    if divisor_override is not None:
        try:
            divisor_override = operator.index(divisor_override)
        except TypeError:
            raise TypeError(
                f"{op}: divisor_override must be an int, got {divisor_override!r}"
            ) from None
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must be non-zero")
    padding = (win.pads[0], win.pads[2])
    divisor = _divisor(win, padding, include, divisor_override)
    return _on_4d(lambda t: AvgPool2d.apply(t, win=win, divisor=divisor), x)


# ---------------------------------------------------------------------------------------------
# Every implementation, in the order they are tried
# ---------------------------------------------------------------------------------------------
MAX_POOL_IMPLEMENTATIONS = register(
    "max_pool2d",
    [
        Implementation("reference", max_pool2d_forward, max_pool2d_backward),
        Implementation(
            "cuda",
            pool_cuda.max_pool_forward,
            pool_cuda.max_pool_backward,
            supports=pool_cuda.supports,
        ),
        Implementation("offsets", pool_fast.max_pool_forward, pool_fast.max_pool_backward),
    ],
)

AVG_POOL_IMPLEMENTATIONS = register(
    "avg_pool2d",
    [
        Implementation("reference", avg_pool2d_forward, avg_pool2d_backward),
        Implementation(
            "tiles",
            pool_fast.tiles_forward,
            pool_fast.tiles_backward,
            supports=pool_fast.tiles_supported,
        ),
        Implementation("offsets", pool_fast.avg_pool_forward, pool_fast.avg_pool_backward),
    ],
)
