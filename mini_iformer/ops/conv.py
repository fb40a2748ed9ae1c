"""2-D convolution (``conv2d``), with the same arguments and results as PyTorch's.

Shapes: input x (N, C, H, W), weight w (O, C/G, kh, kw) for G groups, optional bias b (O,).
With stride (sh, sw), dilation (dh, dw) and x zero-padded to xp (N, C, Hp, Wp), output channel
o of group g = o // (O/G) reads the input channels c of that group only:

    y[n, o, i, j] = b[o] + sum_{c, a, b'} w[o, c, a, b'] * xp[n, g*C/G + c, i*sh + a*dh,
                                                                j*sw + b'*dw]

    Ho = (Hp - dh*(kh-1) - 1) // sh + 1,   Wo = (Wp - dw*(kw-1) - 1) // sw + 1

Gradients, for g the gradient of the loss with respect to y:

    db[o]                   = sum_{n, i, j} g[n, o, i, j]
    dw[o, c, a, b']         = sum_{n, i, j} g[n, o, i, j] * xp[n, g*C/G + c, i*sh + a*dh,
                                                                  j*sw + b'*dw]
    dxp[n, g*C/G + c, p, q] = sum of g[n, o, i, j] * w[o, c, a, b'] over the outputs o of group g
                              and every (a, b', i, j) with p = i*sh + a*dh, q = j*sw + b'*dw

and dx is dxp without its padding. dw correlates the input with g; dxp sends every output
gradient back to the input positions it was computed from: it is a *transposed convolution*
(each input pixel collects g through the flipped kernel).

Three ways to compute it are chosen automatically (:func:`conv2d_path`), each fast for its
case on a CPU with NumPy: a matrix product over channels for 1x1 kernels
(:func:`_pointwise_forward`), a loop over the kernel offsets for depthwise kernels (in one
of three memory layouts, by shape: :func:`_depthwise_layout`), and im2col + one matrix
product per group for the rest
(:func:`_im2col_forward`). The textbook forms, :func:`conv2d_naive` (loops) and
:func:`conv2d_im2col` (an explicit column matrix), work on NumPy arrays, are not part of the
differentiable API, and serve the lessons and the tests.

Differences from PyTorch: a float32 tensor with a float64 one gives float64 (NumPy's
promotion, as in every op here) where PyTorch refuses; integer tensors are refused.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .. import backend
from . import _cuda
from ..autograd import Function, Tensor, as_tensor, register_op
from .shape import reshape

__all__ = ["conv2d"]

#: col2im adds into about this many elements of the input gradient at a time (measured best
#: on iFormer's stem and patch embeddings: larger than an L2 cache, the slices are strided).
_COL2IM_ELEMENTS = 1 << 18

#: Depthwise blocks hold about this many elements per buffer (256 KiB in float32), so that
#: the few arrays one block touches stay in the CPU's L2 cache across the kernel offsets.
_BLOCK_ELEMENTS = 1 << 16


# -- arguments ---------------------------------------------------------------------------------
def _pair(value: Any, name: str) -> tuple[int, int]:
    """An int, or a sequence of one or two ints, as a pair (PyTorch's rule)."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or any(isinstance(v, bool) for v in items):
        raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")
    try:
        return operator.index(items[0]), operator.index(items[1])
    except TypeError:
        raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}") from None


def _padding(
    padding: Any, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Padding as (top, bottom, left, right); also "valid" (none) and "same" (output = input
    size: total d*(k-1) per axis, the odd one on the bottom/right, as PyTorch does)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise ValueError(f"conv2d: padding must be 'valid', 'same' or ints, got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' needs stride 1, got stride={stride}")
        th, tw = (d * (k - 1) for d, k in zip(dilation, kernel))
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d: padding must be non-negative, got padding={padding!r}")
    return ph, ph, pw, pw


def _out_size(size: int, pad: int, kernel: int, stride: int, dilation: int) -> int:
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_path(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, int],
    pads: tuple[int, int, int, int], groups: int,
) -> str:
    """Which implementation ``conv2d`` uses: "pointwise", "depthwise" or "general".

    * "pointwise": 1x1 kernel, stride 1, no padding, one group (a matrix product);
    * "depthwise": one group per channel, as many outputs as inputs, stride 1 (any kernel,
      padding and dilation: the offset loop);
    * "general": everything else (im2col).
    """
    c_in, c_out, (kh, kw) = x_shape[1], w_shape[0], w_shape[2:]
    if (kh, kw) == (1, 1) and stride == (1, 1) and not any(pads) and groups == 1:
        return "pointwise"
    if groups == c_in == c_out and stride == (1, 1):
        return "depthwise"
    return "general"


# -- the fast paths ----------------------------------------------------------------------------
def _pad(x: Any, pads: tuple[int, int, int, int], tail: int | None = None) -> Any:
    """x zero-padded to (N, C, Hp, Wp), C-contiguous; or, when ``tail`` is given, flattened to
    rows (N*C, Hp*Wp + tail) that end with ``tail`` more zeros."""
    xp = backend.get_xp()
    n, c, h, w = x.shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    if tail is None and not any(pads):
        return xp.ascontiguousarray(x)
    out = xp.zeros((n * c, hp * wp + (tail or 0)), dtype=x.dtype)
    out[:, : hp * wp].reshape(n, c, hp, wp)[:, :, top : top + h, left : left + w] = x
    return out if tail is not None else out.reshape(n, c, hp, wp)


def _pointwise_forward(x: Any, w: Any) -> Any:
    """1x1 convolution as one matrix product per sample: (O, C) @ (C, H*W).

    Why it is fast: a 1x1 kernel mixes channels at each pixel independently, which is exactly
    a matrix product, and in NCHW the (C, H*W) matrix of a sample is a free reshape. So the
    whole convolution is a batched BLAS call with no copies and no output transpose. (The
    channels-last form, (N*H*W, C) @ (C, O), needs a transpose on the way in and on the way
    out, and measured about twice as slow on iFormer-S's shapes.)
    """
    n, c, h, wd = x.shape
    y = backend.get_xp().matmul(w.reshape(w.shape[0], c), x.reshape(n, c, h * wd))
    return y.reshape(n, w.shape[0], h, wd)


#: Below this many output pixels per sample, per-sample matrix products are too small for
#: BLAS to be efficient, and the sum over samples is better folded into one product.
_SMALL_MAP = 64


def _sum_of_products(g: Any, x: Any) -> Any:
    """sum_n g[n, ...] @ x[n, ...]^T over the sample axis 0 and the last (pixel) axis.

    With large maps, one product per sample ((O, L) by (L, K), L pixels) then a sum. With small
    maps those products are tiny and mostly overhead, so the samples are folded into the
    contraction: one product of (O, N*L) by (N*L, K), at the cost of bringing the sample axis
    next to the pixel axis (``tensordot`` copies).
    """
    xp = backend.get_xp()
    if g.shape[-1] >= _SMALL_MAP:
        return xp.matmul(g, xp.swapaxes(x, -1, -2)).sum(axis=0)
    if g.ndim == 3:  # (N, O, L) and (N, K, L)
        return xp.tensordot(g, x, axes=([0, 2], [0, 2]))
    # (N, G, O/G, L) and (N, G, K, L): one folded product per group
    return xp.stack([xp.tensordot(g[:, i], x[:, i], axes=([0, 2], [0, 2]))
                     for i in range(g.shape[1])])


def _pointwise_backward(g3: Any, x3: Any, w: Any, w_shape: tuple[int, ...]) -> tuple[Any, Any]:
    """dX = W^T @ G per sample; dW = sum_n G_n @ X_n^T (BLAS reads the transposes in place).
    ``w`` is None when no dX is needed, ``x3`` None when no dW is."""
    xp = backend.get_xp()
    dx = None if w is None else xp.matmul(w.reshape(w_shape[0], -1).T, g3)
    dw = None if x3 is None else _sum_of_products(g3, x3).reshape(w_shape)
    return dx, dw


def _row_block(rows: int, length: int) -> int:
    """Rows per block: enough to fill ~_BLOCK_ELEMENTS, all of them on a GPU (no cache to fit)."""
    if backend.get_backend() != "numpy":
        return rows
    return max(1, min(rows, _BLOCK_ELEMENTS // max(length, 1)))


class _Depthwise:
    """The geometry of a stride-1 depthwise convolution on a flattened, padded input.

    Each (sample, channel) is one row of xpf (N*C, Hp*Wp + tail). Output pixel (i, j) is
    computed at flat position i*Wp + j of a "wide" output of Ho rows of Wp pixels (the last
    Wp - Wo of each row are thrown away), so that kernel offset (a, b) reads the *contiguous*
    slice xpf[:, s : s + Ho*Wp] with s = a*dh*Wp + b*dw. The tail of zeros lets the last
    offset's slice run to the end.
    """

    def __init__(self, x_shape, kernel, pads, dilation):
        self.n, self.c, self.h, self.w = x_shape
        (kh, kw), (dh, dw) = kernel, dilation
        top, bottom, left, right = self.pads = pads
        self.top, self.left = top, left
        self.hp, self.wp = self.h + top + bottom, self.w + left + right
        self.ho, self.wo = self.hp - dh * (kh - 1), self.wp - dw * (kw - 1)
        self.tail = dw * (kw - 1)
        self.length = self.ho * self.wp  # of one row of the wide output
        self.shifts = [a * dh * self.wp + b * dw for a in range(kh) for b in range(kw)]
        self.offsets = [(a * dh, b * dw) for a in range(kh) for b in range(kw)]
        self.rows = self.n * self.c


def _row_weights(w: Any, n: int) -> Any:
    """Depthwise weights (C, 1, kh, kw) as one row of kh*kw per (sample, channel) row."""
    xp = backend.get_xp()
    c = w.shape[0]
    return xp.broadcast_to(w.reshape(1, c, -1), (n, c, w[0].size)).reshape(n * c, -1)


def _depthwise_forward(x: Any, w: Any, geo: _Depthwise) -> tuple[Any, Any]:
    """Depthwise convolution (stride 1) as a sum over kernel offsets of shifted, scaled inputs:

        y = sum_{a, b} w[:, a, b] * xp[:, :, a*dh : a*dh + Ho, b*dw : b*dw + Wo]

    Why it is fast: each channel has its own small kernel, so there is no matrix product to
    hand to BLAS; an im2col would copy the input kh*kw times to then do very little arithmetic
    with it. Here every step is one multiply and one add over a contiguous slice (see
    :class:`_Depthwise` for the flat "wide" layout that makes the slices contiguous), and the
    rows are processed in blocks small enough that the accumulator stays in cache across the
    kh*kw offsets. Returns y and the flat padded input (kept for the weight gradient).
    """
    xp = backend.get_xp()
    xpf = _pad(x, geo.pads, geo.tail)
    wr = _row_weights(w, geo.n)
    length = geo.length
    y = xp.empty((geo.rows, geo.ho, geo.wo), dtype=x.dtype)
    block = _row_block(geo.rows, length)
    acc = xp.empty((block, length), dtype=x.dtype)
    tmp = xp.empty_like(acc)
    for r0 in range(0, geo.rows, block):
        r1 = min(geo.rows, r0 + block)
        rows, acc_b, tmp_b = xpf[r0:r1], acc[: r1 - r0], tmp[: r1 - r0]
        for k, s in enumerate(geo.shifts):
            xp.multiply(rows[:, s : s + length], wr[r0:r1, k, None], out=tmp_b if k else acc_b)
            if k:
                acc_b += tmp_b
        y[r0:r1] = acc_b.reshape(r1 - r0, geo.ho, geo.wp)[:, :, : geo.wo]
    return y.reshape(geo.n, geo.c, geo.ho, geo.wo), xpf


def _depthwise_backward(
    g: Any, xpf: Any, w: Any, w_shape: tuple[int, ...], geo: _Depthwise
) -> tuple[Any, Any]:
    """The same offset loop backwards, block by block:

        dxp[:, s : s + L] += g_wide * w[:, a, b]      (each offset sends g back where it read)
        dw[:, a, b]        = sum g_wide * xpf[:, s : s + L]   (summed over samples and pixels)

    g_wide is g laid out like the wide output, with zeros in the thrown-away columns, so that
    those positions add nothing. The per-row sums are batched dot products (a matmul of
    (1, L) by (L, 1) per row), which avoid materialising the product. ``w`` is None when no dx
    is needed, ``xpf`` None when no dw is.
    """
    xp = backend.get_xp()
    need_x, need_w = w is not None, xpf is not None
    length, flat = geo.length, geo.hp * geo.wp
    g_rows = g.reshape(geo.rows, geo.ho, geo.wo)
    wr = _row_weights(w, geo.n) if need_x else None
    dx = xp.empty((geo.rows, geo.h, geo.w), dtype=g.dtype) if need_x else None
    dwr = xp.empty((geo.rows, len(geo.shifts)), dtype=g.dtype) if need_w else None
    block = _row_block(geo.rows, length)
    g_wide = xp.zeros((block, geo.ho, geo.wp), dtype=g.dtype)  # thrown-away columns stay 0
    dxp = xp.empty((block, flat + geo.tail), dtype=g.dtype) if need_x else None
    tmp = xp.empty((block, length), dtype=g.dtype) if need_x else None
    for r0 in range(0, geo.rows, block):
        r1 = min(geo.rows, r0 + block)
        g_wide[: r1 - r0, :, : geo.wo] = g_rows[r0:r1]
        g_b = g_wide[: r1 - r0].reshape(r1 - r0, length)
        if need_x:
            dxp_b, tmp_b = dxp[: r1 - r0], tmp[: r1 - r0]
            dxp_b[...] = 0
        for k, s in enumerate(geo.shifts):
            if need_x:
                xp.multiply(g_b, wr[r0:r1, k, None], out=tmp_b)
                dxp_b[:, s : s + length] += tmp_b
            if need_w:
                seen = xpf[r0:r1, s : s + length, None]
                dwr[r0:r1, k] = xp.matmul(g_b[:, None, :], seen)[:, 0, 0]
        if need_x:
            padded = dxp_b[:, :flat].reshape(r1 - r0, geo.hp, geo.wp)
            dx[r0:r1] = padded[:, geo.top : geo.top + geo.h, geo.left : geo.left + geo.w]
    if need_x:
        dx = dx.reshape(geo.n, geo.c, geo.h, geo.w)
    if need_w:
        dwr = dwr.reshape(geo.n, geo.c, -1).sum(axis=0).reshape(w_shape)
    return dx, dwr


#: Depthwise convolutions whose output has at most this many pixels per channel use the
#: pixel-major layout below instead of the row-wise offset loop.
_PIXEL_MAJOR_MAX = 64


def _pixel_major(a: Any, n: int, c: int) -> Any:
    """(N, C, H, W) -> (H, W, N*C), contiguous: one long row of every (sample, channel) per
    pixel."""
    h, w = a.shape[2:]
    return backend.get_xp().ascontiguousarray(a.reshape(n * c, h, w).transpose(1, 2, 0))


def _depthwise_pixel_major_forward(x: Any, w: Any, geo: _Depthwise) -> tuple[Any, Any]:
    """The offset loop in a pixel-major layout, for small maps.

    The row-wise loop (:func:`_depthwise_forward`) works on one (sample, channel) plane per
    row. With 8x8 maps and smaller, a row is a few dozen numbers, padded and widened to a
    multiple of that, and each NumPy call does little work. Here the planes are laid out
    the other way round, (Hp, Wp, N*C): kernel offset (a, b) reads the window
    xs[a*dh : a*dh + Ho, b*dw : b*dw + Wo, :], whose rows are the long, contiguous N*C axis,
    and multiplies it by one weight per (sample, channel). That is kh*kw long multiply-adds,
    with no wasted columns. Returns y (N, C, Ho, Wo) and the padded pixel-major input
    (kept for the weight gradient).
    """
    xp = backend.get_xp()
    n, c, nc = geo.n, geo.c, geo.rows
    xs = xp.zeros((geo.hp, geo.wp, nc), dtype=x.dtype)
    xs[geo.top : geo.top + geo.h, geo.left : geo.left + geo.w] = (
        x.reshape(nc, geo.h, geo.w).transpose(1, 2, 0))
    wr = xp.ascontiguousarray(_row_weights(w, n).T)  # (kh*kw, N*C)
    y = xp.empty((geo.ho, geo.wo, nc), dtype=x.dtype)
    tmp = xp.empty_like(y)
    for k, (a, b) in enumerate(geo.offsets):
        window = xs[a : a + geo.ho, b : b + geo.wo]
        if k == 0:
            xp.multiply(window, wr[k], out=y)
        else:
            xp.multiply(window, wr[k], out=tmp)
            y += tmp
    out = xp.ascontiguousarray(y.reshape(geo.ho * geo.wo, nc).T)
    return out.reshape(n, c, geo.ho, geo.wo), xs


def _depthwise_pixel_major_backward(g: Any, xs: Any, w: Any, w_shape, geo: _Depthwise):
    """The same, backwards: each offset sends g back to the window it read,
    dxs[window] += g * w[:, a, b], and dw[:, a, b] sums g * xs[window] over pixels and
    samples. ``w`` is None when no dx is needed, ``xs`` None when no dw is."""
    xp = backend.get_xp()
    n, c, nc = geo.n, geo.c, geo.rows
    gs = _pixel_major(g, n, c)  # (Ho, Wo, N*C)
    dx = dw = None
    if w is not None:
        wr = xp.ascontiguousarray(_row_weights(w, n).T)
        dxs = xp.zeros((geo.hp, geo.wp, nc), dtype=g.dtype)
        tmp = xp.empty_like(gs)
        for k, (a, b) in enumerate(geo.offsets):
            xp.multiply(gs, wr[k], out=tmp)
            dxs[a : a + geo.ho, b : b + geo.wo] += tmp
        inner = dxs[geo.top : geo.top + geo.h, geo.left : geo.left + geo.w]
        dx = xp.ascontiguousarray(inner.reshape(geo.h * geo.w, nc).T).reshape(geo.n, geo.c,
                                                                               geo.h, geo.w)
    if xs is not None:
        flat = gs.reshape(-1, nc)
        per = xp.stack([xp.einsum("pk,pk->k", flat,
                                  xs[a : a + geo.ho, b : b + geo.wo].reshape(-1, nc))
                        for a, b in geo.offsets])  # (kh*kw, N*C)
        dw = per.reshape(-1, n, c).sum(axis=1).T.reshape(w_shape)
    return dx, dw


#: Depthwise convolutions with at least this many padded pixels per channel (over the whole
#: batch) and at most _CHANNEL_MAJOR_MAX_MAP output pixels per plane use the channel-major
#: layout below.
_CHANNEL_MAJOR_MIN = 8192
_CHANNEL_MAJOR_MAX_MAP = 32 * 32


def _depthwise_layout(geo: _Depthwise) -> str:
    """Which of the three NumPy forms of a depthwise convolution suits its shape.

    * "channel-major" for maps up to 32x32 when a channel's planes, over the batch, hold at
      least _CHANNEL_MAJOR_MIN pixels (iformer_cifar at batch 128: 20-25% faster than the
      others on its 16x16 and 8x8 stages);
    * "pixel-major" for other maps of 8x8 and smaller (few pixels, many channels);
    * "row-wise" for the rest (large maps, where every plane is a long row anyway).
    """
    if geo.ho * geo.wo <= _CHANNEL_MAJOR_MAX_MAP and geo.n * geo.hp * geo.wp >= _CHANNEL_MAJOR_MIN:
        return "channel-major"
    if geo.ho * geo.wo <= _PIXEL_MAJOR_MAX:
        return "pixel-major"
    return "row-wise"


def _channel_blocks(geo: _Depthwise) -> tuple[int, int]:
    """(planes per block, elements of the largest block) for the channel-major loops."""
    flat = geo.hp * geo.wp
    planes = min(geo.n, max(1, _CHANNEL_BLOCK_ELEMENTS // flat))
    return planes, planes * flat


#: Elements per block of the channel-major loops: the accumulator, the scratch row and the
#: input slice stay in a core's L2 cache.
_CHANNEL_BLOCK_ELEMENTS = 1 << 15


def _depthwise_channel_major_forward(x: Any, w: Any, geo: _Depthwise) -> tuple[Any, Any]:
    """The offset loop with each channel's planes laid end to end: xs (C, N*Hp*Wp + tail).

    Output pixel (n, i, j) of a channel sits at flat position n*Hp*Wp + i*Wp + j of a "wide"
    output (rows i >= Ho and columns j >= Wo are thrown away), so kernel offset (a, b) reads
    the contiguous slice starting a*dh*Wp + b*dw further on (the zeros of the tail cover the
    last one), for every sample at once, and
    multiplies it by a single number, w[c, a, b]. Compared with the row-wise loop (one plane
    per row, one weight per row), every NumPy call runs over tens of thousands of contiguous
    elements times a scalar, its fastest form. (Sharing the channels among threads measured
    slower on 2 cores: the calls are too short.) Returns y and xs (kept for the weight
    gradient).
    """
    xp = backend.get_xp()
    n, c = geo.n, geo.c
    flat = geo.hp * geo.wp
    tail = geo.shifts[-1]  # the last offset's slice runs this far past the last plane
    xs = xp.zeros((c, n * flat + tail), dtype=x.dtype)
    xs[:, : n * flat].reshape(c, n, geo.hp, geo.wp)[
        :, :, geo.top : geo.top + geo.h, geo.left : geo.left + geo.w] = x.transpose(1, 0, 2, 3)
    wk = w.reshape(c, -1).tolist()  # Python floats: scalar operands
    y = xp.empty((n, c, geo.ho, geo.wo), dtype=x.dtype)
    planes, size = _channel_blocks(geo)

    def channels(c0: int, c1: int) -> None:
        acc, tmp = xp.empty(size, dtype=x.dtype), xp.empty(size, dtype=x.dtype)
        for ch in range(c0, c1):
            row, weights = xs[ch], wk[ch]
            for p0 in range(0, n, planes):
                p1 = min(n, p0 + planes)
                m, start = (p1 - p0) * flat, p0 * flat
                a, t = acc[:m], tmp[:m]
                for k, s in enumerate(geo.shifts):
                    seen = row[start + s : start + s + m]
                    if k == 0:
                        xp.multiply(seen, weights[0], out=a)
                    else:
                        xp.multiply(seen, weights[k], out=t)
                        a += t
                y[p0:p1, ch] = a.reshape(p1 - p0, geo.hp, geo.wp)[:, : geo.ho, : geo.wo]

    channels(0, c)
    return y, xs


def _depthwise_channel_major_backward(g: Any, xs: Any, w: Any, w_shape, geo: _Depthwise):
    """The same layout backwards, channel by channel and block by block:

        dxs[s : s + m] += g_wide * w[c, a, b]          (each offset sends g back where it read)
        dw[c, a, b]    += g_wide . xs[start + s : start + s + m]     (one BLAS dot product)

    g_wide is g in the wide layout, zero where the forward threw outputs away. ``w`` is None
    when no dx is needed, ``xs`` None when no dw is.
    """
    xp = backend.get_xp()
    n, c = geo.n, geo.c
    flat = geo.hp * geo.wp
    need_x, need_w = w is not None, xs is not None
    tail = geo.shifts[-1]
    gs = xp.zeros((c, n, geo.hp, geo.wp), dtype=g.dtype)
    gs[:, :, : geo.ho, : geo.wo] = g.transpose(1, 0, 2, 3)
    gs = gs.reshape(c, n * flat)
    wk = w.reshape(c, -1).tolist() if need_x else None
    dx = xp.empty((n, c, geo.h, geo.w), dtype=g.dtype) if need_x else None
    dw = xp.zeros((c, len(geo.shifts)), dtype=g.dtype) if need_w else None
    planes, size = _channel_blocks(geo)

    def channels(c0: int, c1: int) -> None:
        if need_x:
            dxs, tmp = xp.empty(size + tail, dtype=g.dtype), xp.empty(size, dtype=g.dtype)
        for ch in range(c0, c1):
            for p0 in range(0, n, planes):
                p1 = min(n, p0 + planes)
                m, start = (p1 - p0) * flat, p0 * flat
                g_b = gs[ch, start : start + m]
                if need_x:
                    d, t = dxs[: m + tail], tmp[:m]
                    d[...] = 0
                for k, s in enumerate(geo.shifts):
                    if need_x:
                        xp.multiply(g_b, wk[ch][k], out=t)
                        d[s : s + m] += t
                    if need_w:
                        dw[ch, k] += xp.dot(g_b, xs[ch, start + s : start + s + m])
                if need_x:
                    planes_b = d[:m].reshape(p1 - p0, geo.hp, geo.wp)
                    dx[p0:p1, ch] = planes_b[:, geo.top : geo.top + geo.h,
                                             geo.left : geo.left + geo.w]

    channels(0, c)
    return dx, (dw.reshape(w_shape) if need_w else None)


def _window_view(xpad: Any, kernel, stride, dilation, groups) -> Any:
    """Every receptive field of the padded input, without copying: a view of shape
    (N, G, C/G, kh, kw, Ho, Wo) whose [n, g, c, a, b, i, j] is xpad[n, g*C/G + c,
    i*sh + a*dh, j*sw + b*dw] (``as_strided``, which NumPy and CuPy both provide)."""
    xp = backend.get_xp()
    n, c, hp, wp = xpad.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    s_n, s_c, s_h, s_w = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad,
        shape=(n, groups, c // groups, kh, kw, ho, wo),
        strides=(s_n, s_c * (c // groups), s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw),
    )


def _im2col_forward(x: Any, w: Any, pads, stride, dilation, groups) -> tuple[Any, Any]:
    """Any convolution as im2col + one matrix product per group:

        cols[n, g] = the receptive fields as a (C/G * kh * kw, Ho * Wo) matrix
        y[n, g]    = W[g] (O/G, C/G * kh * kw) @ cols[n, g]

    Why it is fast: the window view (:func:`_window_view`) costs nothing, one copy makes it a
    contiguous column matrix, and then all the arithmetic is a single batched BLAS product,
    which lands directly in NCHW order. Returns y and the columns (kept for the weight
    gradient).
    """
    xp = backend.get_xp()
    n, o = x.shape[0], w.shape[0]
    view = _window_view(_pad(x, pads), w.shape[2:], stride, dilation, groups)
    ho, wo = view.shape[-2:]
    cols = xp.ascontiguousarray(view).reshape(n, groups, -1, ho * wo)
    y = xp.matmul(w.reshape(groups, o // groups, -1), cols)
    return y.reshape(n, o, ho, wo), cols


def _im2col_backward(
    g: Any, cols: Any, w: Any, w_shape, x_shape, pads, stride, dilation, groups
) -> tuple[Any, Any]:
    """dW[g] = sum_n G[n, g] @ cols[n, g]^T;  dcols = W[g]^T @ G[n, g], then col2im.

    col2im adds every column entry back to the input pixel it was copied from. Entries of one
    kernel offset (a, b) come from a strided grid of pixels, and distinct output pixels of one
    offset never share an input pixel, so col2im is kh*kw strided-slice additions (no
    scatter with repeated indices, which is an order of magnitude slower). ``w`` is None when
    no dx is needed, ``cols`` None when no dW is.
    """
    xp = backend.get_xp()
    n, c = x_shape[:2]
    o, kh, kw = w_shape[0], w_shape[2], w_shape[3]
    ho, wo = g.shape[2:]
    g4 = g.reshape(n, groups, o // groups, ho * wo)
    dw = None
    if cols is not None:
        dw = _sum_of_products(g4, cols).reshape(w_shape)
    dx = None
    if w is not None:
        wg = w.reshape(groups, o // groups, -1)
        dcols = xp.matmul(xp.swapaxes(wg, -1, -2), g4).reshape(n, c, kh, kw, ho, wo)
        dx = _col2im(dcols, x_shape, pads, stride, dilation)
    return dx, dw


def _col2im(dcols: Any, x_shape, pads, stride, dilation) -> Any:
    """dx from the column gradients dcols (N, C, kh, kw, Ho, Wo) (any strides): each kernel
    offset's entries added back, as one strided slice, to the input pixels they came from."""
    xp = backend.get_xp()
    n, c, h, wd = x_shape
    kh, kw, ho, wo = dcols.shape[2:]
    top, bottom, left, right = pads
    (sh, sw), (dh, dwl) = stride, dilation
    dxp = xp.zeros((n, c, h + top + bottom, wd + left + right), dtype=dcols.dtype)
    # a few samples at a time, as many as keep their slices in cache across the offsets
    # (with small maps, one sample at a time would be thousands of tiny additions)
    step = n if backend.get_backend() != "numpy" else max(1, _COL2IM_ELEMENTS // dxp[0].size)
    for s0 in range(0, n, step):
        s = slice(s0, s0 + step)
        for a in range(kh):
            for b in range(kw):
                dxp[s, :, a * dh : a * dh + sh * (ho - 1) + 1 : sh,
                    b * dwl : b * dwl + sw * (wo - 1) + 1 : sw] += dcols[s, :, a, b]
    return dxp[:, :, top : top + h, left : left + wd]


#: im2col convolutions (one group) with at most this many output pixels per sample fold the
#: batch into a single matrix product (:func:`_im2col_folded_forward`); measured on
#: iformer_cifar's patch embeddings, 8x8 outputs gain 18% forward + backward, 16x16 ones tie.
_FOLD_MAX_MAP = 64


def _im2col_folded_forward(x: Any, w: Any, pads, stride, dilation) -> tuple[Any, Any]:
    """im2col with the samples folded into the columns: cols (C*kh*kw, N*Ho*Wo), and
    y = W (O, C*kh*kw) @ cols in a single matrix product, for small output maps.

    Why: with 4x4 or 2x2 outputs, one product per sample has 16 or 4 columns, far too few for
    BLAS to run near its peak (iformer_cifar's last patch embeddings ran 3-5x slower than
    PyTorch that way). One product with N*Ho*Wo columns does, at the cost of transposing the
    small output back to (N, O, Ho, Wo). Returns y and the columns (for the weight gradient).
    """
    xp = backend.get_xp()
    n, o = x.shape[0], w.shape[0]
    view = _window_view(_pad(x, pads), w.shape[2:], stride, dilation, 1)[:, 0]
    ho, wo = view.shape[-2:]
    cols = xp.ascontiguousarray(view.transpose(1, 2, 3, 0, 4, 5)).reshape(-1, n * ho * wo)
    y = xp.matmul(w.reshape(o, -1), cols).reshape(o, n, ho, wo)
    return xp.ascontiguousarray(y.transpose(1, 0, 2, 3)), cols


def _im2col_folded_backward(g: Any, cols: Any, w: Any, w_shape, x_shape, pads, stride,
                            dilation) -> tuple[Any, Any]:
    """dW = G (O, N*Ho*Wo) @ cols^T and dcols = W^T @ G, each one product, then col2im."""
    xp = backend.get_xp()
    n, c = x_shape[:2]
    o, kh, kw = w_shape[0], w_shape[2], w_shape[3]
    ho, wo = g.shape[2:]
    g2 = xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(o, -1)
    dw = None if cols is None else xp.matmul(g2, cols.T).reshape(w_shape)
    dx = None
    if w is not None:
        dcols = xp.matmul(w.reshape(o, -1).T, g2).reshape(c, kh, kw, n, ho, wo)
        dx = _col2im(dcols.transpose(3, 0, 1, 2, 4, 5), x_shape, pads, stride, dilation)
    return dx, dw


# -- the GPU paths -----------------------------------------------------------------------------
# On a GPU the loops above are the wrong shape: the depthwise offset loop launches 2*kh*kw
# small kernels per block, and im2col's strided copy plus col2im's kh*kw slice additions do
# the same again. Each is replaced by one kernel that gives every thread one output value
# (see mini_iformer.ops._cuda for the conventions: T, index_t, GRID_STRIDE_LOOP). The formulas
# are those of the module docstring, with the padding folded into bounds checks, so no padded
# copy of the input is ever made. Backward kernels *gather*: a thread owns one input pixel
# and visits the outputs that read it, which needs no atomics and gives the same result
# whatever order the threads run in.

_CUDA_SOURCE = r"""
// y[n, c, r, j] = sum_{a, b} w[c, a, b] * x[n, c, r*sh - top + a*dh, j*sw - left + b*dw]
extern "C" __global__ void depthwise_forward(
        const T* x, const T* w, T* y, index_t total, index_t C, index_t H, index_t W,
        index_t Ho, index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw,
        index_t top, index_t left, index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t j = i % Wo, t = i / Wo;
        index_t r = t % Ho;
        t /= Ho;                                  // t = n*C + c, the plane
        const T* xs = x + t * H * W;
        const T* ws = w + (t % C) * KH * KW;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t p = r * sh - top + a * dh;
            if (p < 0 || p >= H) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t q = j * sw - left + b * dw;
                if (q >= 0 && q < W) acc += ws[a * KW + b] * xs[p * W + q];
            }
        }
        y[i] = acc;
    }
}

// dx[n, c, p, q] = sum of g[n, c, r, j] * w[c, a, b] over the (a, b) whose output (r, j) read
// pixel (p, q): r = (p + top - a*dh) / sh when that divides exactly and lands in [0, Ho).
extern "C" __global__ void depthwise_backward_input(
        const T* g, const T* w, T* dx, index_t total, index_t C, index_t H, index_t W,
        index_t Ho, index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw,
        index_t top, index_t left, index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t q = i % W, t = i / W;
        index_t p = t % H;
        t /= H;
        const T* gs = g + t * Ho * Wo;
        const T* ws = w + (t % C) * KH * KW;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t r = gather_index(p + top - a * dh, sh, Ho);
            if (r < 0) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t j = gather_index(q + left - b * dw, sw, Wo);
                if (j >= 0) acc += gs[r * Wo + j] * ws[a * KW + b];
            }
        }
        dx[i] = acc;
    }
}

// part[n, c, a, b] = sum_{r, j} g[n, c, r, j] * x[n, c, r*sh - top + a*dh, j*sw - left + b*dw];
// dw is part summed over n (one reduction afterwards).
extern "C" __global__ void depthwise_backward_weight(
        const T* g, const T* x, T* part, index_t total, index_t H, index_t W,
        index_t Ho, index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw,
        index_t top, index_t left, index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t b = i % KW, t = i / KW;
        index_t a = t % KH;
        t /= KH;                                  // the plane n*C + c
        const T* gs = g + t * Ho * Wo;
        const T* xs = x + t * H * W;
        T acc = 0;
        for (index_t r = 0; r < Ho; ++r) {
            index_t p = r * sh - top + a * dh;
            if (p < 0 || p >= H) continue;
            for (index_t j = 0; j < Wo; ++j) {
                index_t q = j * sw - left + b * dw;
                if (q >= 0 && q < W) acc += gs[r * Wo + j] * xs[p * W + q];
            }
        }
        part[i] = acc;
    }
}

// cols[n, c, a, b, r, j] = x[n, c, r*sh - top + a*dh, j*sw - left + b*dw], 0 in the padding.
// Read as (N, G, C/G*kh*kw, Ho*Wo), it is the column matrix of _im2col_forward.
extern "C" __global__ void im2col(
        const T* x, T* cols, index_t total, index_t H, index_t W, index_t Ho, index_t Wo,
        index_t KH, index_t KW, index_t sh, index_t sw, index_t top, index_t left,
        index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t j = i % Wo, t = i / Wo;
        index_t r = t % Ho;
        t /= Ho;
        index_t b = t % KW;
        t /= KW;
        index_t a = t % KH;
        t /= KH;
        index_t p = r * sh - top + a * dh, q = j * sw - left + b * dw;
        cols[i] = (p >= 0 && p < H && q >= 0 && q < W) ? x[(t * H + p) * W + q] : (T)0;
    }
}

// dx[n, c, p, q] = sum of dcols[n, c, a, b, r, j] over the entries im2col copied from (p, q).
extern "C" __global__ void col2im(
        const T* dcols, T* dx, index_t total, index_t H, index_t W, index_t Ho, index_t Wo,
        index_t KH, index_t KW, index_t sh, index_t sw, index_t top, index_t left,
        index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t q = i % W, t = i / W;
        index_t p = t % H;
        t /= H;
        const T* cs = dcols + t * KH * KW * Ho * Wo;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t r = gather_index(p + top - a * dh, sh, Ho);
            if (r < 0) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t j = gather_index(q + left - b * dw, sw, Wo);
                if (j >= 0) acc += cs[((a * KW + b) * Ho + r) * Wo + j];
            }
        }
        dx[i] = acc;
    }
}
"""

_DEPTHWISE_FORWARD = _cuda.Kernel("depthwise_forward", _CUDA_SOURCE)
_DEPTHWISE_BACKWARD_INPUT = _cuda.Kernel("depthwise_backward_input", _CUDA_SOURCE)
_DEPTHWISE_BACKWARD_WEIGHT = _cuda.Kernel("depthwise_backward_weight", _CUDA_SOURCE)
_IM2COL = _cuda.Kernel("im2col", _CUDA_SOURCE)
_COL2IM = _cuda.Kernel("col2im", _CUDA_SOURCE)


class _Geometry:
    """Sizes one GPU kernel call needs: input planes, output size, kernel, stride, padding
    (top, left; the far side is implied by Ho, Wo), dilation."""

    def __init__(self, x_shape, w_shape, stride, pads, dilation):
        self.n, self.c, self.h, self.w = x_shape
        self.kh, self.kw = w_shape[2:]
        top, bottom, left, right = pads
        (sh, sw), (dh, dw) = stride, dilation
        self.ho = _out_size(self.h, top + bottom, self.kh, sh, dh)
        self.wo = _out_size(self.w, left + right, self.kw, sw, dw)
        self.args = (self.kh, self.kw, sh, sw, top, left, dh, dw)

    @property
    def planes(self) -> tuple[int, int, int, int]:
        return self.h, self.w, self.ho, self.wo


def _depthwise_forward_gpu(x: Any, w: Any, geo: _Geometry) -> Any:
    xp = backend.get_xp()
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    y = xp.empty((geo.n, geo.c, geo.ho, geo.wo), dtype=x.dtype)
    _DEPTHWISE_FORWARD(y.size, x, w, y, y.size, geo.c, *geo.planes, *geo.args, dtype=x.dtype)
    return y


def _depthwise_backward_gpu(g: Any, x: Any, w: Any, w_shape, geo: _Geometry):
    """dx (None when ``w`` is None) and dw (None when ``x`` is None) by the kernels above."""
    xp = backend.get_xp()
    g = xp.ascontiguousarray(g)
    dx = dw = None
    if w is not None:
        dx = xp.empty((geo.n, geo.c, geo.h, geo.w), dtype=g.dtype)
        _DEPTHWISE_BACKWARD_INPUT(
            dx.size, g, xp.ascontiguousarray(w), dx, dx.size, geo.c, *geo.planes, *geo.args,
            dtype=g.dtype,
        )
    if x is not None:
        part = xp.empty((geo.n, geo.c, geo.kh, geo.kw), dtype=g.dtype)
        _DEPTHWISE_BACKWARD_WEIGHT(
            part.size, g, x, part, part.size, *geo.planes, *geo.args, dtype=g.dtype
        )
        dw = part.sum(axis=0).reshape(w_shape)
    return dx, dw


def _im2col_forward_gpu(x: Any, w: Any, geo: _Geometry, groups: int) -> tuple[Any, Any]:
    """:func:`_im2col_forward` with the columns gathered by one kernel."""
    xp = backend.get_xp()
    x = xp.ascontiguousarray(x)
    cols = xp.empty((geo.n, geo.c, geo.kh, geo.kw, geo.ho, geo.wo), dtype=x.dtype)
    _IM2COL(cols.size, x, cols, cols.size, *geo.planes, *geo.args, dtype=x.dtype)
    cols = cols.reshape(geo.n, groups, -1, geo.ho * geo.wo)
    o = w.shape[0]
    y = xp.matmul(w.reshape(groups, o // groups, -1), cols)
    return y.reshape(geo.n, o, geo.ho, geo.wo), cols


def _im2col_backward_gpu(g: Any, cols: Any, w: Any, w_shape, geo: _Geometry, groups: int):
    """:func:`_im2col_backward` with col2im as one gathering kernel."""
    xp = backend.get_xp()
    o = w_shape[0]
    g4 = g.reshape(geo.n, groups, o // groups, geo.ho * geo.wo)
    dx = dw = None
    if cols is not None:
        dw = xp.matmul(g4, xp.swapaxes(cols, -1, -2)).sum(axis=0).reshape(w_shape)
    if w is not None:
        wg = w.reshape(groups, o // groups, -1)
        dcols = xp.ascontiguousarray(xp.matmul(xp.swapaxes(wg, -1, -2), g4))
        dx = xp.empty((geo.n, geo.c, geo.h, geo.w), dtype=g.dtype)
        _COL2IM(dx.size, dcols, dx, dx.size, *geo.planes, *geo.args, dtype=g.dtype)
    return dx, dw


def _cudnn_usable(pads, x: Any) -> bool:
    """cuDNN, when switched on (``backend.set_cudnn(True)``), for arrays on the GPU with the
    same padding on both sides of each axis (cuDNN's convolution has no asymmetric padding;
    padding="same" with an even kernel falls back to the kernels)."""
    top, bottom, left, right = pads
    return (
        backend.cudnn_enabled() and backend.array_backend(x) == "cupy"
        and top == bottom and left == right
    )


def _cudnn_forward(x, w, stride, pads, dilation, groups):
    xp, cudnn = backend.get_xp(), backend.cudnn_module()
    geo = _Geometry(x.shape, w.shape, stride, pads, dilation)
    y = xp.empty((geo.n, w.shape[0], geo.ho, geo.wo), dtype=x.dtype)
    cudnn.convolution_forward(
        xp.ascontiguousarray(x), xp.ascontiguousarray(w), None, y, (pads[0], pads[2]),
        tuple(stride), tuple(dilation), groups, auto_tune=True, tensor_core="never",
    )
    return y


def _cudnn_backward(g, x, w, x_shape, w_shape, stride, pads, dilation, groups):
    """dx (when ``w`` is given) and dw (when ``x`` is given) by cuDNN."""
    xp, cudnn = backend.get_xp(), backend.cudnn_module()
    g = xp.ascontiguousarray(g)
    params = ((pads[0], pads[2]), tuple(stride), tuple(dilation), groups)
    dx = dw = None
    if w is not None:
        dx = xp.empty(x_shape, dtype=g.dtype)
        cudnn.convolution_backward_data(
            xp.ascontiguousarray(w), g, None, dx, *params,
            deterministic=False, auto_tune=True, tensor_core="never",
        )
    if x is not None:
        dw = xp.empty(w_shape, dtype=g.dtype)
        cudnn.convolution_backward_filter(
            x, g, dw, *params, deterministic=False, auto_tune=True, tensor_core="never",
        )
    return dx, dw


#: The NumPy depthwise forms, by layout: (forward, backward).
_DEPTHWISE = {
    "row-wise": (_depthwise_forward, _depthwise_backward),
    "pixel-major": (_depthwise_pixel_major_forward, _depthwise_pixel_major_backward),
    "channel-major": (_depthwise_channel_major_forward, _depthwise_channel_major_backward),
}


# -- the differentiable operation --------------------------------------------------------------
class Conv2d(Function):
    """y = conv2d(x, w) + b, by the path :func:`conv2d_path` picks (see the module docstring
    for the formulas); db = g summed over (N, Ho, Wo)."""

    name = "conv2d"

    def forward(self, x, w, b, stride, pads, dilation, groups):
        xp = backend.get_xp()
        dtype = xp.result_type(x, w) if b is None else xp.result_type(x, w, b)
        x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
        need_x, need_w, _ = self.needs_input_grad
        self.path = conv2d_path(x.shape, w.shape, stride, pads, groups)
        self.x_shape, self.w_shape = x.shape, w.shape
        self.w = w if need_x else None  # dx needs w; dw needs (a form of) x, kept below
        if self.path != "pointwise" and _cuda.use_kernels(x, w):
            y = self._forward_gpu(x, w, stride, pads, dilation, groups, need_w)
        elif self.path == "pointwise":
            y = _pointwise_forward(x, w)
            self.x3 = x.reshape(x.shape[0], x.shape[1], -1) if need_w else None
        elif self.path == "depthwise":
            self.geo = geo = _Depthwise(x.shape, w.shape[2:], pads, dilation)
            self.layout = _depthwise_layout(geo)
            y, xpf = _DEPTHWISE[self.layout][0](x, w, geo)
            self.xpf = xpf if need_w else None
        else:
            self.params = (pads, stride, dilation, groups)
            geo = _Geometry(x.shape, w.shape, stride, pads, dilation)
            self.folded = groups == 1 and geo.ho * geo.wo <= _FOLD_MAX_MAP
            if self.folded:
                y, cols = _im2col_folded_forward(x, w, pads, stride, dilation)
            else:
                y, cols = _im2col_forward(x, w, pads, stride, dilation, groups)
            self.cols = cols if need_w else None
        if b is not None:
            y += b.astype(dtype, copy=False).reshape(1, -1, 1, 1)
        return y

    def _forward_gpu(self, x, w, stride, pads, dilation, groups, need_w):
        """The kernels (or cuDNN) for everything but the 1x1 matrix product, which cuBLAS
        already does well through ``xp.matmul``."""
        if _cudnn_usable(pads, x):
            self.path, self.params = "cudnn", (stride, pads, dilation, groups)
            self.x = backend.get_xp().ascontiguousarray(x) if need_w else None
            return _cudnn_forward(x, w, stride, pads, dilation, groups)
        self.geo = _Geometry(x.shape, w.shape, stride, pads, dilation)
        if groups == x.shape[1] == w.shape[0]:
            self.path = "depthwise-gpu"
            self.x = backend.get_xp().ascontiguousarray(x) if need_w else None
            return _depthwise_forward_gpu(x, w, self.geo)
        self.path, self.groups = "im2col-gpu", groups
        y, cols = _im2col_forward_gpu(x, w, self.geo, groups)
        self.cols = cols if need_w else None
        return y

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        db = g.sum(axis=(0, 2, 3)) if need_b else None
        dx = dw = None
        if not (need_x or need_w):
            pass
        elif self.path == "cudnn":
            dx, dw = _cudnn_backward(g, self.x, self.w, self.x_shape, self.w_shape, *self.params)
        elif self.path == "depthwise-gpu":
            dx, dw = _depthwise_backward_gpu(g, self.x, self.w, self.w_shape, self.geo)
        elif self.path == "im2col-gpu":
            dx, dw = _im2col_backward_gpu(g, self.cols, self.w, self.w_shape, self.geo,
                                          self.groups)
        elif self.path == "pointwise":
            n, c, h, wd = self.x_shape
            dx, dw = _pointwise_backward(g.reshape(n, -1, h * wd), self.x3, self.w, self.w_shape)
            dx = None if dx is None else dx.reshape(self.x_shape)
        elif self.path == "depthwise":
            backward = _DEPTHWISE[self.layout][1]
            dx, dw = backward(g, self.xpf, self.w, self.w_shape, self.geo)
        elif self.folded:
            dx, dw = _im2col_folded_backward(g, self.cols, self.w, self.w_shape, self.x_shape,
                                             *self.params[:3])
        else:
            dx, dw = _im2col_backward(
                g, self.cols, self.w, self.w_shape, self.x_shape, *self.params
            )
        return dx, dw, db


def _float_tensor(x: Any, name: str) -> Tensor:
    t = as_tensor(x)
    if t.dtype.kind != "f":
        raise TypeError(f"conv2d: {name} must be floating point, got dtype {t.dtype}")
    return t


@register_op("conv2d")
def conv2d(
    input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,  # noqa: A002
    dilation: Any = 1, groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) over an (N, C, H, W) or unbatched (C, H, W) input,
    like ``torch.nn.functional.conv2d``.

    weight is (out_channels, in_channels / groups, kh, kw), bias None or (out_channels,).
    stride, padding and dilation are ints or pairs (height, width); padding may also be
    "valid" (none) or "same" (stride 1 only). groups splits the channels into independent
    convolutions; groups == in_channels == out_channels is a depthwise convolution.
    """
    x, w = _float_tensor(input, "input"), _float_tensor(weight, "weight")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"conv2d: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {x.shape}"
        )
    if w.ndim != 4:
        raise ValueError(
            f"conv2d: weight must be 4-D (out_channels, in_channels/groups, kh, kw), got shape "
            f"{w.shape} (input shape {x.shape})"
        )
    if isinstance(groups, bool):
        raise TypeError(f"conv2d: groups must be an int, got {groups!r}")
    try:
        groups = operator.index(groups)
    except TypeError:
        raise TypeError(f"conv2d: groups must be an int, got {groups!r}") from None
    if groups <= 0:
        raise ValueError(f"conv2d: groups must be positive, got groups={groups}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(stride) <= 0:
        raise ValueError(f"conv2d: stride must be positive, got stride={stride}")
    if min(dilation) <= 0:
        raise ValueError(f"conv2d: dilation must be positive, got dilation={dilation}")
    kernel = w.shape[2:]
    pads = _padding(padding, kernel, stride, dilation)
    c_in, (h, wd) = x.shape[-3], x.shape[-2:]
    out_channels, per_group = w.shape[:2]
    if per_group * groups != c_in:
        raise ValueError(
            f"conv2d: weight of shape {w.shape} with groups={groups} expects "
            f"{per_group * groups} input channels, but the input of shape {x.shape} has {c_in}"
        )
    if out_channels % groups:
        raise ValueError(
            f"conv2d: out_channels of weight shape {w.shape} ({out_channels}) is not divisible "
            f"by groups={groups}"
        )
    if bias is not None:
        bias = _float_tensor(bias, "bias")
        if bias.shape != (out_channels,):
            raise ValueError(
                f"conv2d: bias must have shape ({out_channels},) for weight of shape {w.shape}, "
                f"got shape {bias.shape}"
            )
    hp, wp = h + pads[0] + pads[1], wd + pads[2] + pads[3]
    span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    if hp < span[0] or wp < span[1] or 0 in kernel:
        raise ValueError(
            f"conv2d: the padded input is {hp} x {wp} (input shape {x.shape}) but the dilated "
            f"kernel spans {span[0]} x {span[1]} (weight shape {w.shape}): the kernel must fit"
        )
    if x.ndim == 3:  # unbatched: a batch of one
        y = Conv2d.apply(reshape(x, (1,) + x.shape), w, bias, stride=stride, pads=pads,
                         dilation=dilation, groups=groups)
        return reshape(y, y.shape[1:])
    return Conv2d.apply(x, w, bias, stride=stride, pads=pads, dilation=dilation, groups=groups)


# -- the textbook forms (NumPy arrays, no gradient; for lessons and tests) ---------------------
def _textbook_args(x, w, stride, padding, dilation):
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _padding(padding, w.shape[2:], stride, dilation)
    xpad = np.pad(np.asarray(x), ((0, 0), (0, 0), pads[:2], pads[2:]))
    return xpad, stride, dilation


def conv2d_naive(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: Any = 1,
    padding: Any = 0, dilation: Any = 1, groups: int = 1,
) -> np.ndarray:
    """The definition, literally: one dot product of a receptive field with a filter per output
    value. Loops over (n, o, i, j): use on tiny inputs only."""
    xpad, (sh, sw), (dh, dw) = _textbook_args(x, w, stride, padding, dilation)
    n, c, hp, wp = xpad.shape
    o, cg, kh, kw = w.shape
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, ho, wo), dtype=np.result_type(x, w))
    for s in range(n):
        for oc in range(o):
            g = oc // (o // groups)  # the group of this output channel
            for i in range(ho):
                for j in range(wo):
                    field = xpad[s, g * cg : (g + 1) * cg,
                                 i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                                 j * sw : j * sw + dw * (kw - 1) + 1 : dw]
                    y[s, oc, i, j] = np.sum(field * w[oc])
    return y if b is None else y + np.asarray(b).reshape(1, -1, 1, 1)


def conv2d_im2col(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: Any = 1,
    padding: Any = 0, dilation: Any = 1, groups: int = 1,
) -> np.ndarray:
    """im2col, spelled out: copy each receptive field into one column of a matrix
    (N, G, C/G*kh*kw, Ho*Wo), then one matrix product per group does every dot product."""
    xpad, (sh, sw), (dh, dw) = _textbook_args(x, w, stride, padding, dilation)
    n, c, hp, wp = xpad.shape
    o, cg, kh, kw = w.shape
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, groups, cg * kh * kw, ho * wo), dtype=xpad.dtype)
    for i in range(ho):
        for j in range(wo):
            field = xpad[:, :, i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                         j * sw : j * sw + dw * (kw - 1) + 1 : dw]  # (N, C, kh, kw)
            cols[:, :, :, i * wo + j] = field.reshape(n, groups, cg * kh * kw)
    y = np.matmul(w.reshape(groups, o // groups, -1), cols).reshape(n, o, ho, wo)
    return y if b is None else y + np.asarray(b).reshape(1, -1, 1, 1)
