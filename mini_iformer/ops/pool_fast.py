"""Fast forms of the pools (NumPy), each ``(forward, backward)`` with the contract of the
reference in ``pool.py``, tested equal to it.

* **offsets** (max and average): the reference's loop over kernel offsets, but in place: a
  running ``maximum`` (and a running argmax) or a running sum, instead of stacking the k*k
  views. With stride 1 every view is a plain *shift* of the flattened padded input: one long
  contiguous row instead of many short ones. (On 2 cores this beats a reduction over an
  ``as_strided`` window view by a wide margin: max-pool 3x3 stride 1, ~10 ms against ~256 ms.)
* **tiles** (average): when the windows tile the input (kernel == stride, no padding, sizes
  divisible), every output is the mean of one block of a reshape: a sum of kh*kw strided
  slices forward, a ``repeat`` backward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from .window import block_sums, lowest

__all__ = [
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "tiles_supported",
    "tiles_forward",
    "tiles_backward",
]


class _Flat:
    """The padded input as one flat buffer, and one view of it per kernel offset.

    With stride 1 the views cover a "grid" of the whole padded (Hp, Wp) plane: view (a, b) is
    the buffer shifted by a*dh*Wp + b*dw, so each view is contiguous, and the grid positions
    outside the output (the last rows and columns of each plane) are computed and thrown away.
    A tail after the planes keeps every shifted view inside the buffer. With a larger stride
    the grid is the output itself and the views are the window's strided slices.
    """

    def __init__(self, win) -> None:
        self.win = win
        self.flat = win.stride == (1, 1)
        n, c = win.shape[:2]
        self.planes = (n, c) + win.padded
        self.size = n * c * win.padded[0] * win.padded[1]
        (dh, dw), (kh, kw) = win.dilation, win.kernel
        self.tail = ((kh - 1) * dh * win.padded[1] + (kw - 1) * dw) if self.flat else 0

    def buffer(self, dtype: Any, fill: float, like: Any) -> Any:
        return backend.array_module(like).full(self.size + self.tail, fill, dtype=dtype)

    def pad(self, x: Any, fill: float) -> Any:
        """The buffer holding ``x`` surrounded by ``fill`` (each element written once)."""
        buf = backend.array_module(x).empty(self.size + self.tail, dtype=x.dtype)
        top, _, left, _ = self.win.pads
        h, w = self.win.shape[2:]
        planes = buf[: self.size].reshape(self.planes)
        planes[:, :, :top] = fill
        planes[:, :, top + h :] = fill
        planes[:, :, top : top + h, :left] = fill
        planes[:, :, top : top + h, left + w :] = fill
        planes[:, :, top : top + h, left : left + w] = x
        buf[self.size :] = fill
        return buf

    def unpad(self, buf: Any) -> Any:
        return self.win.unpad(buf[: self.size].reshape(self.planes))

    def views(self, buf: Any) -> list[Any]:
        if not self.flat:
            return self.win.views(buf[: self.size].reshape(self.planes))
        wp = self.win.padded[1]
        (dh, dw) = self.win.dilation
        return [
            buf[a * dh * wp + b * dw : a * dh * wp + b * dw + self.size].reshape(self.planes)
            for a, b in self.win.offsets
        ]

    def crop(self, grid: Any) -> Any:
        oh, ow = self.win.out
        return grid[:, :, :oh, :ow] if self.flat else grid

    def uncrop(self, g: Any) -> Any:
        if not self.flat:
            return g
        oh, ow = self.win.out
        grid = backend.array_module(g).zeros(self.planes, dtype=g.dtype)
        grid[:, :, :oh, :ow] = g
        return grid


# -- max pooling -------------------------------------------------------------------------------
def max_pool_forward(ctx, x, win):
    """A running maximum over the k*k offset views, and with it ``arg``, the offset where the
    maximum was last *strictly* improved: the first maximum in row-major window order wins.

    The argmax update is arithmetic (``arg += better * (k - arg)``) rather than a masked
    write: with a random mask, a masked write is some 30 times slower. ``arg`` is int8 for
    windows of up to 127 offsets.
    """
    xp = backend.array_module(x)
    flat = _Flat(win)
    low = lowest(x.dtype)
    views = flat.views(flat.pad(x, low))
    out = views[0].copy()
    need = ctx.needs_input_grad[0]
    arg = xp.zeros(out.shape, xp.int8 if len(views) <= 127 else xp.int32) if need else None
    for k, v in enumerate(views[1:], start=1):
        if need:
            better = v > out
            arg += better * (k - arg)
        xp.maximum(out, v, out=out)
    if need:
        _settle_ties_with_padding_and_nan(x, flat, views, out, arg, low)
    ctx.flat, ctx.arg = flat, arg
    return flat.crop(out)


def _settle_ties_with_padding_and_nan(x, flat, views, out, arg, low) -> None:
    """Where the running comparison cannot decide, decide as the reference does.

    Two kinds of window defeat ``v > out``: one holding a NaN, which is its maximum but never
    compares greater (the last NaN wins, as in PyTorch), and one whose maximum is the padding
    value itself (-inf, or the smallest integer), where the padding may have come first (the
    first position inside the input wins). Both are rare, so they cost one check over the
    output, and otherwise a few masked writes for those windows only.
    """
    xp = backend.array_module(out)
    nan, stuck = out != out, out == low
    if nan.any():
        for k, v in enumerate(views):
            arg[nan & (v != v)] = k
    if stuck.any():
        inside = flat.views(flat.pad(xp.ones(x.shape, dtype=bool), False))
        for k in reversed(range(len(views))):
            arg[stuck & inside[k]] = k


def max_pool_backward(ctx, g):
    """For every offset k: grad_view(k) += g * (arg == k)."""
    flat, arg = ctx.flat, ctx.arg
    gq = flat.uncrop(g)
    grad = flat.buffer(g.dtype, 0, g)
    for k, view in enumerate(flat.views(grad)):
        view += gq * (arg == k)
    return flat.unpad(grad)


# -- average pooling ---------------------------------------------------------------------------
def _scale(divisor: Any, like: Any) -> Any:
    """1 / divisor, as a number or an (Ho, Wo) array of ``like``'s backend and dtype."""
    if isinstance(divisor, (int, float)):
        return 1.0 / divisor
    return backend.array_module(like).asarray(1.0 / divisor, dtype=like.dtype)


def avg_pool_forward(ctx, x, win, divisor):
    """A running sum over the offset views (zero padding), then one multiplication by
    1 / divisor."""
    flat = _Flat(win)
    views = flat.views(flat.pad(x, 0))
    total = views[0].copy()
    for v in views[1:]:
        total += v
    ctx.flat, ctx.scale = flat, _scale(divisor, x)
    return flat.crop(total) * ctx.scale


def avg_pool_backward(ctx, g):
    """g / divisor added into every offset view of a zero buffer."""
    flat = ctx.flat
    gq = flat.uncrop(g * ctx.scale)
    grad = flat.buffer(g.dtype, 0, g)
    for view in flat.views(grad):
        view += gq
    return flat.unpad(grad)


def tiles_supported(x, win, divisor) -> bool:
    """The windows tile the input: kernel == stride, no padding, sizes divisible (so every
    divisor is the same)."""
    return (
        win.kernel == win.stride
        and not any(win.pads)
        and win.dilation == (1, 1)
        and all(n % k == 0 for n, k in zip(win.shape[2:], win.kernel))
    )


def tiles_forward(ctx, x, win, divisor):
    """When the windows tile the input, each output is the mean of one (kh, kw) block of
    x.reshape(N, C, H/kh, kh, W/kw, kw): y = sum_{i, j} x[:, :, :, i, :, j] / divisor.

    Adding the block's slices one by one measured over 10x faster than ``mean`` over the two
    small block axes."""
    out = block_sums(x, *win.kernel)
    scale = float(_scale(divisor, x) if np.ndim(divisor) == 0 else 1.0 / np.ravel(divisor)[0])
    out *= scale
    ctx.kernel, ctx.scale = win.kernel, scale
    return out


def tiles_backward(ctx, g):
    """Every element of a block gets the same g / divisor: a ``repeat`` along both axes
    (2-4x faster than broadcasting to the blocks and reshaping)."""
    xp = backend.array_module(g)
    kh, kw = ctx.kernel
    return xp.repeat(xp.repeat(g * ctx.scale, kw, axis=3), kh, axis=2)
