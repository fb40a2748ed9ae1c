"""Fast forms of a depthwise ``conv2d`` (stride 1, groups == in == out channels): the reference's
loop over kernel offsets in three memory layouts, each ``(forward, backward)`` with the
contract of :func:`~mini_iformer.ops.conv.conv2d_forward`, tested equal to it.

Why a loop over offsets: each channel has its own small kernel, so there is no matrix product
to hand to BLAS, and an im2col would copy the input kh*kw times to then do very little
arithmetic with it. Every step of the loop is one multiply and one add over a slice. What the
layouts change is how long and how contiguous those slices are:

* **rows** (large maps): one (sample, channel) plane per row, flattened with its padding, so
  that an offset reads one *contiguous* slice of every row; rows go in cache-sized blocks.
* **pixel-major** (maps of 8x8 and smaller): (Hp, Wp, N*C), so an offset's slice is a
  window of long contiguous runs of N*C numbers instead of many short padded planes.
* **channel-major** (maps up to 32x32 over large batches): each channel's planes end to end,
  (C, N*Hp*Wp), so an offset is one long slice of a channel times one number.

All three use the "wide output" trick: output pixel (i, j) is computed at flat position
i*Wp + j of the padded plane, so offset (a, b) reads the flat slice that starts a*dh*Wp + b*dw
further on; the columns j >= Wo (and rows i >= Ho) are computed and thrown away.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend, runtime

__all__ = [
    "rows_forward",
    "rows_backward",
    "pixel_major_forward",
    "pixel_major_backward",
    "pixel_major_preferred",
    "channel_major_forward",
    "channel_major_backward",
    "channel_major_preferred",
]

#: Depthwise row blocks hold about this many elements per buffer (256 KiB in float32), so
#: that the few arrays one block touches stay in the CPU's L2 cache across the kernel offsets.
ROW_BLOCK_ELEMENTS = 1 << 16
#: Outputs of at most this many pixels per channel use the pixel-major layout.
PIXEL_MAJOR_MAX = 64
#: Channels whose padded planes hold at least this many pixels over the batch, with at most
#: CHANNEL_MAJOR_MAX_MAP output pixels per plane, use the channel-major layout.
CHANNEL_MAJOR_MIN = 8192
CHANNEL_MAJOR_MAX_MAP = 32 * 32
#: Elements per block of the channel-major loops: the accumulator, the scratch row and the
#: input slice stay in a core's L2 cache.
CHANNEL_BLOCK_ELEMENTS = 1 << 15


class _Flat:
    """The sizes the flat layouts need, from a stride-1 :class:`~.window.Window`."""

    def __init__(self, win) -> None:
        self.n, self.c, self.h, self.w = win.shape
        self.top, _, self.left, _ = win.pads
        self.hp, self.wp = win.padded
        self.ho, self.wo = win.out
        dh, dw = win.dilation
        self.offsets = [(a * dh, b * dw) for a, b in win.offsets]  # in pixels
        self.shifts = [a * self.wp + b for a, b in self.offsets]  # in flat positions
        self.tail = dw * (win.kernel[1] - 1)  # zeros after each row for the last offset
        self.length = self.ho * self.wp  # of one row of the wide output
        self.rows = self.n * self.c


def _row_weights(w: Any, n: int) -> Any:
    """Depthwise weights (C, 1, kh, kw) as one row of kh*kw per (sample, channel) row."""
    c = w.shape[0]
    xp = backend.array_module(w)
    return xp.broadcast_to(w.reshape(1, c, -1), (n, c, w[0].size)).reshape(n * c, -1)


def _save(ctx, x_form, w, geo) -> None:
    need_x, need_w = ctx.needs_input_grad[:2]
    ctx.x_form, ctx.w, ctx.geo, ctx.w_shape = (
        (x_form if need_w else None),
        (w if need_x else None),
        geo,
        w.shape,
    )


# -- rows ----------------------------------------------------------------------------------------
def rows_forward(ctx, x, w, win, groups):
    """The offset loop with one (sample, channel) plane per row, xpf (N*C, Hp*Wp + tail), for
    large maps.

        y_wide[:, :] = sum_{a, b} w[:, a, b] * xpf[:, s : s + Ho*Wp],   s = a*dh*Wp + b*dw

    Why it is fast: every step is a multiply-add over contiguous slices, and the rows go in
    blocks small enough that the accumulator stays in cache across the kh*kw offsets.
    """
    xp = backend.array_module(x)
    geo = _Flat(win)
    xpf = xp.zeros((geo.rows, geo.hp * geo.wp + geo.tail), dtype=x.dtype)
    xpf[:, : geo.hp * geo.wp].reshape(geo.n, geo.c, geo.hp, geo.wp)[
        :, :, geo.top : geo.top + geo.h, geo.left : geo.left + geo.w
    ] = x
    wr = _row_weights(w, geo.n)
    length = geo.length
    y = xp.empty((geo.rows, geo.ho, geo.wo), dtype=x.dtype)
    block = _row_block(xp, geo)
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
    _save(ctx, xpf, w, geo)
    return y.reshape(geo.n, geo.c, geo.ho, geo.wo)


def _row_block(xp, geo: _Flat) -> int:
    """Rows per block: enough to fill a cache-sized block; all of them on a GPU."""
    if xp is not np:
        return geo.rows
    return max(1, min(geo.rows, runtime.block_elements(ROW_BLOCK_ELEMENTS) // geo.length))


def rows_backward(ctx, g):
    """The same loop backwards, block by block:

        dxpf[:, s : s + L] += g_wide * w[:, a, b]      (each offset sends g back where it read)
        dw[:, a, b]         = sum g_wide * xpf[:, s : s + L]   (over samples and pixels)

    g_wide is g laid out like the wide output, with zeros in the thrown-away columns. The
    per-row sums are batched dot products (a matmul of (1, L) by (L, 1) per row).
    """
    xp = backend.array_module(g)
    geo, xpf, w = ctx.geo, ctx.x_form, ctx.w
    need_x, need_w = w is not None, xpf is not None
    length, flat = geo.length, geo.hp * geo.wp
    g_rows = g.reshape(geo.rows, geo.ho, geo.wo)
    wr = _row_weights(w, geo.n) if need_x else None
    dx = xp.empty((geo.rows, geo.h, geo.w), dtype=g.dtype) if need_x else None
    dwr = xp.empty((geo.rows, len(geo.shifts)), dtype=g.dtype) if need_w else None
    block = _row_block(xp, geo)
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
        dwr = dwr.reshape(geo.n, geo.c, -1).sum(axis=0).reshape(ctx.w_shape)
    return dx, dwr


# -- pixel-major -------------------------------------------------------------------------------
def pixel_major_preferred(x, w, win, groups) -> bool:
    return win.out[0] * win.out[1] <= PIXEL_MAJOR_MAX


def _pixel_major(a: Any, n: int, c: int) -> Any:
    """(N, C, H, W) -> (H, W, N*C), contiguous: one long row of every (sample, channel) per
    pixel."""
    h, w = a.shape[2:]
    return backend.array_module(a).ascontiguousarray(a.reshape(n * c, h, w).transpose(1, 2, 0))


def pixel_major_forward(ctx, x, w, win, groups):
    """The offset loop in a pixel-major layout, xs (Hp, Wp, N*C), for maps of 8x8 and smaller.

        y[:, :, :] = sum_{a, b} w[:, a, b] * xs[a*dh : a*dh + Ho, b*dw : b*dw + Wo, :]

    With 8x8 maps and smaller, a plane is a few dozen numbers and each NumPy call of the
    row-wise loop does little work. Here every row of a window is the long, contiguous N*C
    axis, multiplied by one weight per (sample, channel): kh*kw long multiply-adds, with no
    wasted columns.
    """
    xp = backend.array_module(x)
    geo = _Flat(win)
    n, c, nc = geo.n, geo.c, geo.rows
    xs = xp.zeros((geo.hp, geo.wp, nc), dtype=x.dtype)
    xs[geo.top : geo.top + geo.h, geo.left : geo.left + geo.w] = x.reshape(
        nc, geo.h, geo.w
    ).transpose(1, 2, 0)
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
    _save(ctx, xs, w, geo)
    out = xp.ascontiguousarray(y.reshape(geo.ho * geo.wo, nc).T)
    return out.reshape(n, c, geo.ho, geo.wo)


def pixel_major_backward(ctx, g):
    """Each offset sends g back to the window it read, dxs[window] += g * w[:, a, b], and
    dw[:, a, b] sums g * xs[window] over pixels and samples."""
    xp = backend.array_module(g)
    geo, xs, w = ctx.geo, ctx.x_form, ctx.w
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
        dx = xp.ascontiguousarray(inner.reshape(geo.h * geo.w, nc).T).reshape(n, c, geo.h, geo.w)
    if xs is not None:
        flat = gs.reshape(-1, nc)
        per = xp.stack(
            [
                xp.einsum("pk,pk->k", flat, xs[a : a + geo.ho, b : b + geo.wo].reshape(-1, nc))
                for a, b in geo.offsets
            ]
        )  # (kh*kw, N*C)
        dw = per.reshape(-1, n, c).sum(axis=1).T.reshape(ctx.w_shape)
    return dx, dw


# -- channel-major -----------------------------------------------------------------------------
def channel_major_preferred(x, w, win, groups) -> bool:
    (ho, wo), (hp, wp) = win.out, win.padded
    return ho * wo <= CHANNEL_MAJOR_MAX_MAP and x.shape[0] * hp * wp >= CHANNEL_MAJOR_MIN


def _channel_blocks(geo: _Flat) -> tuple[int, int]:
    """(planes per block, elements of the largest block) for the channel-major loops."""
    flat = geo.hp * geo.wp
    planes = min(geo.n, max(1, runtime.block_elements(CHANNEL_BLOCK_ELEMENTS) // flat))
    return planes, planes * flat


def channel_major_forward(ctx, x, w, win, groups):
    """The offset loop with each channel's planes laid end to end: xs (C, N*Hp*Wp + tail).

    Output pixel (n, i, j) of a channel sits at flat position n*Hp*Wp + i*Wp + j of a wide
    output (rows i >= Ho and columns j >= Wo are thrown away), so kernel offset (a, b) reads
    the contiguous slice starting a*dh*Wp + b*dw further on, for every sample at once, and
    multiplies it by a single number, w[c, a, b]: every NumPy call runs over tens of thousands
    of contiguous elements times a scalar, its fastest form. (Sharing the channels among
    threads measured slower on 2 cores: the calls are too short.)
    """
    xp = backend.array_module(x)
    geo = _Flat(win)
    n, c = geo.n, geo.c
    flat = geo.hp * geo.wp
    tail = geo.shifts[-1]  # the last offset's slice runs this far past the last plane
    xs = xp.zeros((c, n * flat + tail), dtype=x.dtype)
    xs[:, : n * flat].reshape(c, n, geo.hp, geo.wp)[
        :, :, geo.top : geo.top + geo.h, geo.left : geo.left + geo.w
    ] = x.transpose(1, 0, 2, 3)
    wk = w.reshape(c, -1).tolist()  # Python floats: scalar operands
    y = xp.empty((n, c, geo.ho, geo.wo), dtype=x.dtype)
    planes, size = _channel_blocks(geo)
    acc, tmp = xp.empty(size, dtype=x.dtype), xp.empty(size, dtype=x.dtype)
    for ch in range(c):
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
    _save(ctx, xs, w, geo)
    return y


def channel_major_backward(ctx, g):
    """The same layout backwards, channel by channel and block by block:

        dxs[s : s + m] += g_wide * w[c, a, b]          (each offset sends g back where it read)
        dw[c, a, b]    += g_wide . xs[start + s : start + s + m]     (one BLAS dot product)

    g_wide is g in the wide layout, zero where the forward threw outputs away.
    """
    xp = backend.array_module(g)
    geo, xs, w = ctx.geo, ctx.x_form, ctx.w
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
    if need_x:
        dxs, tmp = xp.empty(size + tail, dtype=g.dtype), xp.empty(size, dtype=g.dtype)
    for ch in range(c):
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
                dx[p0:p1, ch] = planes_b[:, geo.top : geo.top + geo.h, geo.left : geo.left + geo.w]
    return dx, (dw.reshape(ctx.w_shape) if need_w else None)
