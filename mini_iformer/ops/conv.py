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
gradient back to the input positions it was computed from: it is a *transposed convolution*.

**The reference** (:func:`conv2d_forward`, :func:`conv2d_backward`) computes exactly this as a
loop over the kh*kw kernel offsets: offset (a, b') reads one strided slice of xp for all
outputs at once (:meth:`Window.taps`), and backward adds into the same slices.

**The fast forms** (listed at the end of this module; see :mod:`.registry` for how one is
chosen): a matrix product for 1x1 kernels and im2col for the rest (``conv_im2col.py``), the
offset loop in three memory layouts for depthwise convolutions (``conv_depthwise.py``), and
CUDA kernels on a GPU (``conv_cuda.py``, ``conv.cu``).

Differences from PyTorch: a float32 tensor with a float64 one gives float64 (NumPy's
promotion, as in every op here) where PyTorch refuses; integer tensors are refused.
"""

from __future__ import annotations

import operator
from typing import Any

from .. import backend
from ..autograd import Tensor, as_tensor, register_op
from . import conv_cuda, conv_depthwise, conv_im2col
from .args import pair
from .registry import Dispatch, Implementation, register
from .shape import reshape
from .window import Window

__all__ = ["conv2d", "conv2d_kind", "conv2d_window", "conv2d_forward", "conv2d_backward"]


# -- the reference -----------------------------------------------------------------------------
def conv2d_forward(ctx, x, w, win: Window, groups: int):
    """The convolution as a sum over kernel offsets (no bias: :class:`Conv2d` adds it).

    Offset (a, b') multiplies the input pixels it reads, ``xp[:, :, rows, cols]`` with
    (rows, cols) = ``win.taps(a, b')`` (shape (N, C, Ho, Wo)), by the weights
    w[:, :, a, b'], group by group:

        y[n, g, o, i, j] = sum_{a, b'} sum_c w[g, o, c, a, b'] * seen_{a,b'}[n, g, c, i, j]

    Saves the padded input if dw will be asked for, the weight if dx will.
    """
    xp = backend.array_module(x, w)
    need_x, need_w = ctx.needs_input_grad[:2]
    n, o = x.shape[0], w.shape[0]
    (ho, wo), cg = win.out, w.shape[1]
    xpad = win.pad(x)
    wg = w.reshape(groups, o // groups, cg, *win.kernel)  # (G, O/G, C/G, kh, kw)
    y = xp.zeros((n, groups, o // groups, ho, wo), dtype=x.dtype)
    for a, b in win.offsets:
        rows, cols = win.taps(a, b)
        seen = xpad[:, :, rows, cols].reshape(n, groups, cg, ho, wo)
        y = y + xp.einsum("ngchw,goc->ngohw", seen, wg[..., a, b], optimize=True)
    ctx.xpad, ctx.w = (xpad if need_w else None), (w if need_x else None)
    ctx.win, ctx.groups, ctx.w_shape = win, groups, w.shape
    return y.reshape(n, o, ho, wo)


def conv2d_backward(ctx, g):
    """The same offset loop backwards. dw correlates the input with g; dx sends g back to the
    input pixels each offset read (a transposed convolution):

        dw[g, o, c, a, b'] = sum_{n, i, j} g[n, g, o, i, j] * seen_{a,b'}[n, g, c, i, j]
        dxp[:, :, taps(a, b')] += sum_o w[g, o, c, a, b'] * g[n, g, o, i, j]
    """
    xp = backend.array_module(g)
    win, groups = ctx.win, ctx.groups
    n, c = win.shape[:2]
    o, cg = ctx.w_shape[:2]
    (ho, wo) = win.out
    g5 = g.reshape(n, groups, o // groups, ho, wo)
    dx = dw = None
    if ctx.xpad is not None:
        dw = xp.zeros((groups, o // groups, cg, *win.kernel), dtype=g.dtype)
        for a, b in win.offsets:
            rows, cols = win.taps(a, b)
            seen = ctx.xpad[:, :, rows, cols].reshape(n, groups, cg, ho, wo)
            dw[..., a, b] = xp.einsum("ngohw,ngchw->goc", g5, seen, optimize=True)
        dw = dw.reshape(ctx.w_shape)
    if ctx.w is not None:
        wg = ctx.w.reshape(groups, o // groups, cg, *win.kernel)
        dxpad = xp.zeros((n, c, *win.padded), dtype=g.dtype)
        for a, b in win.offsets:
            rows, cols = win.taps(a, b)
            back = xp.einsum("ngohw,goc->ngchw", g5, wg[..., a, b], optimize=True)
            dxpad[:, :, rows, cols] += back.reshape(n, c, ho, wo)
        dx = win.unpad(dxpad)
    return dx, dw


# -- the operation -----------------------------------------------------------------------------
class Conv2d(Dispatch):
    """y = conv(x, w) + b by the chosen implementation; the bias, the same for all of them, is
    added here: db = g summed over (N, Ho, Wo)."""

    name = "conv2d"

    def forward(self, x, w, b, win, groups):
        xp = backend.array_module(x, w)
        dtype = xp.result_type(x, w) if b is None else xp.result_type(x, w, b)
        x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
        self.kind = conv2d_kind(x.shape, w.shape, win.stride, win.pads, groups)
        y = super().forward(x, w, win=win, groups=groups)
        if b is not None:
            y += b.astype(dtype, copy=False).reshape(1, -1, 1, 1)
        return y

    def backward(self, g):
        dx, dw = super().backward(g) if any(self.needs_input_grad[:2]) else (None, None)
        db = g.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        return dx, dw, db


def conv2d_kind(x_shape, w_shape, stride, pads, groups) -> str:
    """ "pointwise" (1x1 kernel, stride 1, no padding, one group), "depthwise" (one group per
    channel, as many outputs as inputs, stride 1) or "general"."""
    c_in, c_out, kernel = x_shape[1], w_shape[0], tuple(w_shape[2:])
    if kernel == (1, 1) and tuple(stride) == (1, 1) and not any(pads) and groups == 1:
        return "pointwise"
    if groups == c_in == c_out and tuple(stride) == (1, 1):
        return "depthwise"
    return "general"


def _padding(padding: Any, kernel, stride, dilation) -> tuple[int, int, int, int]:
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
    ph, pw = pair(padding, "padding", "conv2d")
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d: padding must be non-negative, got padding={padding!r}")
    return ph, ph, pw, pw


def conv2d_window(x_shape, kernel, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> Window:
    """The :class:`Window` of a convolution of an (N, C, H, W) input with a kernel (kh, kw),
    arguments as :func:`conv2d` takes them (padding "same" and "valid" included)."""
    stride, dilation = pair(stride, "stride", "conv2d"), pair(dilation, "dilation", "conv2d")
    pads = _padding(padding, tuple(kernel), stride, dilation)
    return Window(tuple(x_shape), tuple(kernel), stride, dilation, pads)


def _float_tensor(x: Any, name: str) -> Tensor:
    t = as_tensor(x)
    if t.dtype.kind != "f":
        raise TypeError(f"conv2d: {name} must be floating point, got dtype {t.dtype}")
    return t


@register_op("conv2d")
def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
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
    stride, dilation = pair(stride, "stride", "conv2d"), pair(dilation, "dilation", "conv2d")
    if min(stride) <= 0:
        raise ValueError(f"conv2d: stride must be positive, got stride={stride}")
    if min(dilation) <= 0:
        raise ValueError(f"conv2d: dilation must be positive, got dilation={dilation}")
    if 0 in x.shape[-2:] or w.shape[0] == 0:  # (an empty batch is fine, as in PyTorch)
        raise ValueError(
            f"conv2d: the input's height and width and the weight's out_channels must not be 0, "
            f"got input shape {x.shape} and weight shape {w.shape}"
        )
    kernel = (w.shape[2], w.shape[3])
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
    unbatched = x.ndim == 3
    if unbatched:  # a batch of one
        x = reshape(x, (1,) + x.shape)
    win = Window(x.shape, kernel, stride, dilation, pads)
    y = Conv2d.apply(x, w, bias, win=win, groups=groups)
    return reshape(y, y.shape[1:]) if unbatched else y


# -- every implementation, in the order they are tried -----------------------------------------
def _kind(kind: str):
    def test(x, w, win, groups) -> bool:
        return conv2d_kind(x.shape, w.shape, win.stride, win.pads, groups) == kind

    return test


def _on_gpu(kind: str | None = None):
    def test(x, w, win, groups) -> bool:
        return conv_cuda.supports(x, w) and (kind is None or _kind(kind)(x, w, win, groups))

    return test


IMPLEMENTATIONS = register(
    "conv2d",
    [
        Implementation("reference", conv2d_forward, conv2d_backward),
        # A GPU: cuBLAS does 1x1 convolutions well through the matrix product; kernels do the rest.
        Implementation(
            "pointwise",
            conv_im2col.pointwise_forward,
            conv_im2col.pointwise_backward,
            supports=_kind("pointwise"),
        ),
        Implementation(
            "cuda-depthwise",
            conv_cuda.depthwise_forward,
            conv_cuda.depthwise_backward,
            supports=lambda x, w, win, groups: (
                conv_cuda.supports(x, w) and groups == x.shape[1] == w.shape[0]
            ),
        ),
        Implementation(
            "cuda-im2col", conv_cuda.im2col_forward, conv_cuda.im2col_backward, supports=_on_gpu()
        ),
        # NumPy: the depthwise offset loop in the layout that suits the map size.
        Implementation(
            "depthwise-channel-major",
            conv_depthwise.channel_major_forward,
            conv_depthwise.channel_major_backward,
            supports=_kind("depthwise"),
            preferred=conv_depthwise.channel_major_preferred,
        ),
        Implementation(
            "depthwise-pixel-major",
            conv_depthwise.pixel_major_forward,
            conv_depthwise.pixel_major_backward,
            supports=_kind("depthwise"),
            preferred=conv_depthwise.pixel_major_preferred,
        ),
        Implementation(
            "depthwise-rows",
            conv_depthwise.rows_forward,
            conv_depthwise.rows_backward,
            supports=_kind("depthwise"),
        ),
        # NumPy, everything else: im2col, with the batch folded in for small output maps.
        Implementation(
            "im2col-folded",
            conv_im2col.folded_forward,
            conv_im2col.folded_backward,
            supports=lambda x, w, win, groups: groups == 1,
            preferred=conv_im2col.folded_preferred,
        ),
        Implementation("im2col", conv_im2col.im2col_forward, conv_im2col.im2col_backward),
    ],
)
