"""``max_pool2d`` on a GPU: the kernels of ``pool.cu`` and the lines that launch them.

On a GPU the offset loop is 2*k*k small kernels forward and as many backward; these two
kernels do it in one pass each (the conventions are in :mod:`.cuda`). The forward thread of an
output keeps the running maximum and the *input* position it came from; the backward thread of
an input pixel visits the outputs whose window holds it and takes the gradient of those that
chose it. PyTorch's rules: the first maximum in row-major window order wins, a NaN wins over
everything (the last one, when there are several), and padding is never chosen.
"""

from __future__ import annotations

from .. import backend
from .cuda import Kernel
from .cuda import supports as _kernels_for

__all__ = ["max_pool_forward", "max_pool_backward", "supports"]

MAX_POOL_FORWARD = Kernel("max_pool_forward", "pool.cu")
MAX_POOL_BACKWARD = Kernel("max_pool_backward", "pool.cu")


def supports(x, win) -> bool:
    """Arrays on the GPU, and planes small enough for the kernels' int32 positions."""
    return _kernels_for(x) and win.shape[2] * win.shape[3] < 2**31


def max_pool_forward(ctx, x, win):
    """The maximum of every window and the input position it came from, by one kernel."""
    xp = backend.array_module(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty(win.shape[:2] + win.out, dtype=x.dtype)
    arg = xp.empty(y.shape, dtype=xp.int32)
    lowest = float("-inf")
    MAX_POOL_FORWARD(y.size, x, y, arg, y.size, *win.kernel_args, lowest, dtype=x.dtype)
    ctx.win, ctx.arg = win, (arg if ctx.needs_input_grad[0] else None)
    return y


def max_pool_backward(ctx, g):
    """Each input pixel gathers the gradients of the outputs whose maximum it was."""
    xp = backend.array_module(g)
    g = xp.ascontiguousarray(g)
    dx = xp.empty(ctx.win.shape, dtype=g.dtype)
    MAX_POOL_BACKWARD(dx.size, g, ctx.arg, dx, dx.size, *ctx.win.kernel_args, dtype=g.dtype)
    return dx
