"""Fast forms of ``conv2d`` as matrix products: pointwise (1x1), im2col, and im2col with the
batch folded in. Each is a ``(forward, backward)`` pair with the contract of
:func:`~mini_iformer.ops.conv.conv2d_forward` (no bias; ``ctx.needs_input_grad`` says which of
dx, dw are wanted), tested equal to it.

Why matrix products: a convolution with many input channels is mostly multiply-adds over
channels, which BLAS does at the machine's peak. Laying the receptive fields out as the
columns of a matrix (im2col) turns the whole layer into one (batched) product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend, runtime

__all__ = [
    "pointwise_forward",
    "pointwise_backward",
    "im2col_forward",
    "im2col_backward",
    "im2col_form",
    "window_columns",
    "folded_forward",
    "folded_backward",
    "folded_preferred",
    "col2im",
]

#: Below this many output pixels per sample, per-sample matrix products are too small for
#: BLAS to be efficient, and the weight gradient's sum over samples is folded into one product.
SMALL_MAP = 64

#: im2col convolutions (one group) with at most this many output pixels per sample fold the
#: batch into a single matrix product; measured on iformer_cifar's patch embeddings, 8x8
#: outputs gain 18% forward + backward, 16x16 ones tie.
FOLD_MAX_MAP = 64

#: col2im adds into about this many elements of the input gradient at a time (measured best
#: on iFormer's stem and patch embeddings: larger than an L2 cache, the slices are strided).
COL2IM_ELEMENTS = 1 << 18


def _sum_of_products(g: Any, x: Any) -> Any:
    """sum_n g[n, ...] @ x[n, ...]^T over the sample axis 0 and the last (pixel) axis.

    With large maps, one product per sample ((O, L) by (L, K), L pixels) then a sum. With small
    maps those products are tiny and mostly overhead, so the samples are folded into the
    contraction: one product of (O, N*L) by (N*L, K), at the cost of bringing the sample axis
    next to the pixel axis (``tensordot`` copies).
    """
    xp = backend.array_module(g)
    if g.shape[-1] >= SMALL_MAP:
        return xp.matmul(g, xp.swapaxes(x, -1, -2)).sum(axis=0)
    if g.ndim == 3:  # (N, O, L) and (N, K, L)
        return xp.tensordot(g, x, axes=([0, 2], [0, 2]))
    # (N, G, O/G, L) and (N, G, K, L): one folded product per group
    return xp.stack(
        [xp.tensordot(g[:, i], x[:, i], axes=([0, 2], [0, 2])) for i in range(g.shape[1])]
    )


# -- pointwise ---------------------------------------------------------------------------------
def pointwise_forward(ctx, x, w, win, groups):
    """1x1 convolution as one matrix product per sample: Y_n = W (O, C) @ X_n (C, H*W).

    Why it is fast: a 1x1 kernel mixes channels at each pixel independently, which is exactly
    a matrix product, and in NCHW the (C, H*W) matrix of a sample is a free reshape. So the
    whole convolution is a batched BLAS call with no copies and no output transpose. (The
    channels-last form, (N*H*W, C) @ (C, O), needs a transpose on the way in and on the way
    out, and measured about twice as slow on iFormer-S's shapes.) Applies to 1x1 kernels with
    stride 1, no padding and one group.
    """
    need_x, need_w = ctx.needs_input_grad[:2]
    n, c, h, wd = x.shape
    x3 = x.reshape(n, c, h * wd)
    ctx.x3, ctx.w = (x3 if need_w else None), (w if need_x else None)
    ctx.x_shape, ctx.w_shape = x.shape, w.shape
    y = backend.array_module(x).matmul(w.reshape(w.shape[0], c), x3)
    return y.reshape(n, w.shape[0], h, wd)


def pointwise_backward(ctx, g):
    """dX_n = W^T @ G_n;  dW = sum_n G_n @ X_n^T (BLAS reads the transposes in place)."""
    xp = backend.array_module(g)
    n, _, h, wd = ctx.x_shape
    g3 = g.reshape(n, -1, h * wd)
    dx = dw = None
    if ctx.w is not None:
        dx = xp.matmul(ctx.w.reshape(ctx.w_shape[0], -1).T, g3).reshape(ctx.x_shape)
    if ctx.x3 is not None:
        dw = _sum_of_products(g3, ctx.x3).reshape(ctx.w_shape)
    return dx, dw


# -- im2col ------------------------------------------------------------------------------------
def _window_view(xpad: Any, win, groups: int) -> Any:
    """Every receptive field of the padded input, without copying: a view of shape
    (N, G, C/G, kh, kw, Ho, Wo) whose [n, g, c, a, b, i, j] is xpad[n, g*C/G + c,
    i*sh + a*dh, j*sw + b*dw] (``as_strided``, which NumPy and CuPy both provide)."""
    xp = backend.array_module(xpad)
    n, c = xpad.shape[:2]
    (sh, sw), (dh, dw) = win.stride, win.dilation
    s_n, s_c, s_h, s_w = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad,
        shape=(n, groups, c // groups, *win.kernel, *win.out),
        strides=(s_n, s_c * (c // groups), s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw),
    )


def window_columns(x: Any, win, groups: int) -> Any:
    """The column matrix of every sample and group, (N, G, C/G * kh * kw, Ho * Wo): the
    window view of the padded input, made contiguous by one copy."""
    xp = backend.array_module(x)
    view = _window_view(win.pad(x) if any(win.pads) else xp.ascontiguousarray(x), win, groups)
    n, (ho, wo) = x.shape[0], win.out
    return xp.ascontiguousarray(view).reshape(n, groups, -1, ho * wo)


def im2col_form(columns, col2im_of):
    """The im2col ``(forward, backward)`` pair, with ``columns(x, win, groups)`` gathering the
    column matrix and ``col2im_of(dcols, win)`` adding column gradients (N, C, kh, kw, Ho, Wo)
    back into an input gradient: by NumPy slices here, by CUDA kernels in ``conv_cuda.py``."""

    def forward(ctx, x, w, win, groups):
        xp = backend.array_module(x)
        need_x, need_w = ctx.needs_input_grad[:2]
        n, o = x.shape[0], w.shape[0]
        cols = columns(x, win, groups)
        ctx.cols, ctx.w = (cols if need_w else None), (w if need_x else None)
        ctx.win, ctx.groups, ctx.w_shape = win, groups, w.shape
        y = xp.matmul(w.reshape(groups, o // groups, -1), cols)
        return y.reshape(n, o, *win.out)

    def backward(ctx, g):
        """dW[g] = sum_n G[n, g] @ cols[n, g]^T;  dcols = W[g]^T @ G[n, g], then col2im."""
        xp = backend.array_module(g)
        win, groups, w_shape = ctx.win, ctx.groups, ctx.w_shape
        n, c = win.shape[:2]
        o = w_shape[0]
        g4 = g.reshape(n, groups, o // groups, -1)
        dx = dw = None
        if ctx.cols is not None:
            dw = _sum_of_products(g4, ctx.cols).reshape(w_shape)
        if ctx.w is not None:
            wg = ctx.w.reshape(groups, o // groups, -1)
            dcols = xp.matmul(xp.swapaxes(wg, -1, -2), g4)
            dx = col2im_of(dcols.reshape(n, c, *win.kernel, *win.out), win)
        return dx, dw

    forward.__doc__ = """Any convolution as im2col and one matrix product per group.

        cols[n, g] = the receptive fields as a (C/G * kh * kw, Ho * Wo) matrix
        y[n, g]    = W[g] (O/G, C/G * kh * kw) @ cols[n, g]

    Why it is fast: all the arithmetic is a single batched BLAS product, which lands directly
    in NCHW order; gathering the columns costs one copy. Keeps the columns for the weight
    gradient.
    """
    return forward, backward


def col2im(dcols: Any, win) -> Any:
    """dx from the column gradients dcols (N, C, kh, kw, Ho, Wo): each kernel offset's entries
    added back, as one strided slice, to the input pixels they came from.

    Distinct output pixels of one offset never share an input pixel, so this is kh*kw
    strided-slice additions (no scatter with repeated indices, an order of magnitude slower),
    a few samples at a time: as many as keep their slices in cache across the offsets (with
    small maps, one sample at a time would be thousands of tiny additions).
    """
    xp = backend.array_module(dcols)
    n = win.shape[0]
    dxp = xp.zeros((n, win.shape[1], *win.padded), dtype=dcols.dtype)
    step = n if xp is not np else max(1, runtime.block_elements(COL2IM_ELEMENTS) // dxp[0].size)
    for s0 in range(0, n, step):
        s = slice(s0, s0 + step)
        for a, b in win.offsets:
            rows, cols = win.taps(a, b)
            dxp[s, :, rows, cols] += dcols[s, :, a, b]
    return win.unpad(dxp)


# -- im2col with the batch folded in -----------------------------------------------------------
im2col_forward, im2col_backward = im2col_form(window_columns, col2im)


def folded_preferred(x, w, win, groups) -> bool:
    return win.out[0] * win.out[1] <= FOLD_MAX_MAP


def folded_forward(ctx, x, w, win, groups):
    """im2col with the samples folded into the columns: cols (C*kh*kw, N*Ho*Wo), and
    y = W (O, C*kh*kw) @ cols in a single matrix product. Applies to one group; preferred for
    outputs of at most ``FOLD_MAX_MAP`` pixels.

    Why: with 4x4 or 2x2 outputs, one product per sample has 16 or 4 columns, far too few for
    BLAS to run near its peak (iformer_cifar's last patch embeddings ran 3-5x slower than
    PyTorch that way). One product with N*Ho*Wo columns does, at the cost of transposing the
    small output back to (N, O, Ho, Wo).
    """
    xp = backend.array_module(x)
    need_x, need_w = ctx.needs_input_grad[:2]
    n, o = x.shape[0], w.shape[0]
    (ho, wo) = win.out
    view = _window_view(win.pad(x) if any(win.pads) else xp.ascontiguousarray(x), win, 1)[:, 0]
    cols = xp.ascontiguousarray(view.transpose(1, 2, 3, 0, 4, 5)).reshape(-1, n * ho * wo)
    ctx.cols, ctx.w = (cols if need_w else None), (w if need_x else None)
    ctx.win, ctx.w_shape = win, w.shape
    y = xp.matmul(w.reshape(o, -1), cols).reshape(o, n, ho, wo)
    return xp.ascontiguousarray(y.transpose(1, 0, 2, 3))


def folded_backward(ctx, g):
    """dW = G (O, N*Ho*Wo) @ cols^T and dcols = W^T @ G, each one product, then col2im."""
    xp = backend.array_module(g)
    win, w_shape = ctx.win, ctx.w_shape
    n, c = win.shape[:2]
    o = w_shape[0]
    (ho, wo) = win.out
    g2 = xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(o, -1)
    dx = dw = None
    if ctx.cols is not None:
        dw = xp.matmul(g2, ctx.cols.T).reshape(w_shape)
    if ctx.w is not None:
        dcols = xp.matmul(ctx.w.reshape(o, -1).T, g2).reshape(c, *win.kernel, n, ho, wo)
        dx = col2im(dcols.transpose(3, 0, 1, 2, 4, 5), win)
    return dx, dw
