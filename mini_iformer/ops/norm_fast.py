"""Fast forms of the normalisations (NumPy), each ``(forward, backward)`` with the contract of
the reference in ``norm.py``, tested equal to it.

* **blocked** layer norm: the reference's formulas expanded into per-row scalars, matrix-vector
  and outer products (BLAS calls), run in cache-sized blocks of rows on every core.
* **einsum** batch norm: the per-channel sums as single-threaded ``einsum`` reductions, and
  x_hat normalised in place.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..runtime import block_rows, for_each_block, tile_rows

__all__ = [
    "blocked_layer_norm_forward",
    "blocked_layer_norm_backward",
    "einsum_batch_norm_forward",
    "einsum_batch_norm_backward",
]

#: Elements per layer-norm block: measured best on iFormer shapes (the per-call cost of NumPy
#: matters more than the L2 size here; the working set stays in L3).
BLOCK_ELEMENTS = 1 << 18


def _outer(a: Any, b: Any, out: Any) -> Any:
    """``out[i, j] = a[i] * b[j]`` for a column ``a`` (n,) and a row ``b`` (d,), in one pass.

    Written as a matrix product with a zero second term, (n, 2) @ (2, d): NumPy hands a
    matrix product with an inner dimension of 1 to a slow non-BLAS loop (about 14x slower
    here), while with 2 it is one BLAS call that fills ``out`` faster than NumPy broadcasts
    ``a[:, None] * b``.
    """
    xp = backend.array_module(out)
    left = xp.zeros((a.shape[0], 2), dtype=out.dtype)
    left[:, 0] = a
    right = xp.zeros((2, b.shape[0]), dtype=out.dtype)
    right[0] = b
    return xp.matmul(left, right, out=out)


def blocked_layer_norm_forward(ctx, x, weight, bias, normalized_shape, eps):
    """Layer norm with x_hat never formed: the centred rows xc and r = 1 / sigma are kept, and
    y = xc * (r w) + bias, where (r w)[i, j] = r[i] w[j] is one BLAS outer product.

    Rows go in cache-sized blocks on all cores (:func:`~mini_iformer.runtime.for_each_block`),
    so that each of the few passes works on data still in the cache; row means and dot
    products with ``w`` are BLAS matrix-vector products.
    """
    xp = backend.array_module(x)
    need_x, need_w, _ = ctx.needs_input_grad
    d = math.prod(normalized_shape)
    x2 = xp.ascontiguousarray(x).reshape(-1, d)
    n = x2.shape[0]
    rows = block_rows(d, BLOCK_ELEMENTS) if xp is np else n
    w = weight.reshape(-1) if weight is not None else xp.ones(d, dtype=x2.dtype)
    b_tile = tile_rows(bias.reshape(-1), rows, n) if bias is not None else None
    mean_row = xp.full(d, 1.0 / d, dtype=x2.dtype)
    y = xp.empty_like(x2)
    xc = xp.empty_like(x2) if need_x or need_w else None
    r = xp.empty(n, dtype=x2.dtype)

    def block(s, e):
        xb, yb = x2[s:e], y[s:e]
        cb = xc[s:e] if xc is not None else xp.empty_like(xb)
        _outer(-(xb @ mean_row), mean_row * d, out=cb)
        cb += xb  # x - mu
        r[s:e] = 1.0 / xp.sqrt(xp.einsum("ij,ij->i", cb, cb) / d + eps)
        _outer(r[s:e], w, out=yb)
        yb *= cb
        if b_tile is not None:
            yb += b_tile[: e - s]

    for_each_block(n, d, block, x2, BLOCK_ELEMENTS)
    ctx.xc, ctx.r = xc, r
    ctx.weight = w
    ctx.shape, ctx.norm_shape, ctx.d = x.shape, normalized_shape, d
    return y.reshape(x.shape)


def blocked_layer_norm_backward(ctx, g):
    """The reference's dx, expanded into per-row scalars so every term is one BLAS call or one
    pass: with m1 = mean(g w) and m2 = mean(g w xc),

        dx = g * (r w) - xc * (r^3 m2) - r m1,      dweight = r @ (g * xc)
    """
    xp = backend.array_module(g)
    need_x, need_w, need_b = ctx.needs_input_grad
    g2 = xp.ascontiguousarray(g).reshape(-1, ctx.d)
    n, d, w, xc, r = g2.shape[0], ctx.d, ctx.weight, ctx.xc, ctx.r
    rows = block_rows(d, BLOCK_ELEMENTS) if xp is np else n
    col_ones = xp.ones(min(rows, n), dtype=g2.dtype)  # column sums as matrix-vector products
    mean_w, ones = w / d, xp.ones(d, dtype=g2.dtype)
    dx = xp.empty_like(g2) if need_x else None

    def block(s, e):
        gb, cb, rb = g2[s:e], xc[s:e] if xc is not None else None, r[s:e]
        p = gb * cb if (need_w or need_x) else None  # g * xc
        dw_part = rb @ p if need_w else None
        db_part = col_ones[: e - s] @ gb if need_b else None
        if need_x:
            out = dx[s:e]
            m1, m2 = gb @ mean_w, p @ mean_w
            _outer(rb, w, out=out)
            out *= gb  # g * (r w)
            _outer(-(rb * rb * rb * m2), ones, out=p)
            p *= cb
            out += p  # - xc * r^3 m2
            _outer(-(rb * m1), ones, out=p)
            out += p  # - r m1
        return dw_part, db_part

    parts = for_each_block(n, d, block, g2, BLOCK_ELEMENTS)
    dw = sum(p[0] for p in parts).reshape(ctx.norm_shape) if need_w else None
    db = sum(p[1] for p in parts).reshape(ctx.norm_shape) if need_b else None
    return (dx.reshape(ctx.shape) if need_x else None), dw, db


def einsum_batch_norm_forward(
    ctx, x, weight, bias, running_mean, running_var, training, momentum, eps
):
    """Batch norm with every per-channel sum an ``einsum`` over (N, C, L) (2-3x faster than
    ``.sum(axis=(0, 2))`` here), x_hat normalised in place, and in evaluation the whole map
    one multiply-add per element: y = x * s + (bias - running_mean * s)."""
    xp = backend.array_module(x)
    need_x, need_w, _ = ctx.needs_input_grad
    x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
    count = x3.shape[0] * x3.shape[2]
    w = weight
    ctx.training, ctx.shape = training, x.shape
    if training:
        mean = xp.einsum("ncl->c", x3) / count
        x_hat = x3 - mean[:, None]
        var = xp.einsum("ncl,ncl->c", x_hat, x_hat) / count
        rstd = 1.0 / xp.sqrt(var + eps)
        x_hat *= rstd[:, None]
        y = x_hat * w[:, None] if w is not None else x_hat.copy()
        if bias is not None:
            y += bias[:, None]
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            unbiased = var * (count / (count - 1))
            running_var[...] = (1 - momentum) * running_var + momentum * unbiased
        ctx.x_hat = x_hat if need_x or need_w else None
        ctx.scale = (rstd * w if w is not None else rstd) if need_x else None
        ctx.count = count
        return y.reshape(x.shape)
    inv_std = 1.0 / xp.sqrt(running_var + eps)
    scale = inv_std * w if w is not None else inv_std
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    y = x3 * scale[:, None]
    y += shift[:, None]
    ctx.scale = scale if need_x else None
    if need_w:  # a copy of the running mean: a later training call updates it in place
        ctx.x3, ctx.mean, ctx.inv_std = x3, running_mean.copy(), inv_std
    return y.reshape(x.shape)


def einsum_batch_norm_backward(ctx, g):
    """The reference's gradients with einsum sums and one new array for dx."""
    xp = backend.array_module(g)
    need_x, need_w, need_b = ctx.needs_input_grad
    g3 = g.reshape(ctx.shape[0], ctx.shape[1], -1)
    need_sum_g = need_b or (need_x and ctx.training) or (need_w and not ctx.training)
    sum_g = xp.einsum("ncl->c", g3) if need_sum_g else None
    dx = dw = None
    if ctx.training:
        sum_gx = xp.einsum("ncl,ncl->c", g3, ctx.x_hat) if need_w or need_x else None
        if need_w:
            dw = sum_gx
        if need_x:  # a * (g - mean(g) - x_hat * mean(g x_hat)), one new array
            dx = ctx.x_hat * (sum_gx / ctx.count)[:, None]
            dx += (sum_g / ctx.count)[:, None]
            xp.subtract(g3, dx, out=dx)
            dx *= ctx.scale[:, None]
    else:
        if need_w:
            sum_g_x = xp.einsum("ncl,ncl->c", g3, ctx.x3)
            dw = (sum_g_x - ctx.mean * sum_g) * ctx.inv_std
        if need_x:
            dx = g3 * ctx.scale[:, None]
    if dx is not None:
        dx = dx.reshape(ctx.shape)
    return dx, dw, (sum_g if need_b else None)
