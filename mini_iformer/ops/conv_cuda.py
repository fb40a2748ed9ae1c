"""``conv2d`` on a GPU: the kernels of ``conv.cu`` and the few lines that launch them.

On a GPU the NumPy forms are the wrong shape: the depthwise offset loop launches 2*kh*kw
small kernels per block, and im2col's strided copy plus col2im's kh*kw slice additions do the
same again. Each is replaced by one kernel that gives every thread one output value (the
conventions are in :mod:`.cuda`). The formulas are those of the reference, with the padding
folded into bounds checks, so no padded copy of the input is ever made. Backward kernels
*gather*: a thread owns one input pixel and visits the outputs that read it, which needs no
atomics and gives the same result whatever order the threads run in. Matrix products go to
cuBLAS through ``xp.matmul``.
"""

from __future__ import annotations

from .. import backend
from . import conv_im2col
from .cuda import Kernel
from .cuda import supports as supports

__all__ = [
    "depthwise_forward",
    "depthwise_backward",
    "im2col_forward",
    "im2col_backward",
    "supports",
]

DEPTHWISE_FORWARD = Kernel("depthwise_forward", "conv.cu")
DEPTHWISE_BACKWARD_INPUT = Kernel("depthwise_backward_input", "conv.cu")
DEPTHWISE_BACKWARD_WEIGHT = Kernel("depthwise_backward_weight", "conv.cu")
IM2COL = Kernel("im2col", "conv.cu")
COL2IM = Kernel("col2im", "conv.cu")


def depthwise_forward(ctx, x, w, win, groups):
    """Depthwise convolution (any stride) by one kernel, a thread per output pixel."""
    xp = backend.array_module(x)
    need_x, need_w = ctx.needs_input_grad[:2]
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    n, c = win.shape[:2]
    y = xp.empty((n, c, *win.out), dtype=x.dtype)
    DEPTHWISE_FORWARD(y.size, x, w, y, y.size, c, *win.kernel_args, dtype=x.dtype)
    ctx.x, ctx.w = (x if need_w else None), (w if need_x else None)
    ctx.win, ctx.w_shape = win, w.shape
    return y


def depthwise_backward(ctx, g):
    """dx by a thread per input pixel, dw by a thread per (sample, channel, offset), summed
    over the samples afterwards."""
    xp = backend.array_module(g)
    g = xp.ascontiguousarray(g)
    win = ctx.win
    n, c = win.shape[:2]
    dx = dw = None
    if ctx.w is not None:
        dx = xp.empty(win.shape, dtype=g.dtype)
        DEPTHWISE_BACKWARD_INPUT(dx.size, g, ctx.w, dx, dx.size, c, *win.kernel_args, dtype=g.dtype)
    if ctx.x is not None:
        part = xp.empty((n, c, *win.kernel), dtype=g.dtype)
        DEPTHWISE_BACKWARD_WEIGHT(
            part.size, g, ctx.x, part, part.size, *win.kernel_args, dtype=g.dtype
        )
        dw = part.sum(axis=0).reshape(ctx.w_shape)
    return dx, dw


def gather_columns(x, win, groups):
    """The column matrix (N, G, C/G * kh * kw, Ho * Wo) gathered by one kernel, a thread per
    entry, zeros where a window reaches into the padding."""
    xp = backend.array_module(x)
    n, c = win.shape[:2]
    cols = xp.empty((n, c, *win.kernel, *win.out), dtype=x.dtype)
    IM2COL(cols.size, xp.ascontiguousarray(x), cols, cols.size, *win.kernel_args, dtype=x.dtype)
    return cols.reshape(n, groups, -1, win.out[0] * win.out[1])


def gather_col2im(dcols, win):
    """dx from the column gradients by one kernel, a thread per input pixel gathering the
    entries that were copied from it."""
    xp = backend.array_module(dcols)
    dx = xp.empty(win.shape, dtype=dcols.dtype)
    COL2IM(dx.size, xp.ascontiguousarray(dcols), dx, dx.size, *win.kernel_args, dtype=dx.dtype)
    return dx


im2col_forward, im2col_backward = conv_im2col.im2col_form(gather_columns, gather_col2im)
im2col_forward.__doc__ = """Any convolution as im2col + one batched cuBLAS product per group, the
    columns gathered by one kernel (and, backwards, added back to the input by another)."""
