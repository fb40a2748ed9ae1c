"""The specification of ``conv2d``: hypothesis draws a convolution of each kind, and
``oracle.check_case`` compares forward and every gradient with PyTorch, with an offset-loop
convolution written in HIPS autograd, and with a finite difference.

The kind is drawn first (``conv2d_kind``), so that each kind, and the implementations meant
for it, is exercised by about a third of the examples:

* pointwise: 1x1 kernels, stride 1, no padding, one group;
* depthwise: groups == in_channels == out_channels, stride 1, any kernel, padding, dilation;
* general: everything else: strides 1..3, groups (grouped and depthwise-like), non-square
  kernels 1..4, padding 0..2 (pairs too), dilation 1..2.

Every kind sometimes draws an unbatched (C, H, W) input, a bias, and padding given as
"same" / "valid".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import autograd.numpy as anp
import torch
from hypothesis import assume
from hypothesis import strategies as st
from oracle import Case, draw_array

from mini_iformer.ops.conv import conv2d, conv2d_kind, conv2d_window

KINDS = ("pointwise", "depthwise", "general")


def hips_conv2d(x, w, b, stride, pads, dilation, groups):
    """The convolution as a sum over kernel offsets, in HIPS autograd (an independent oracle):
    y = sum_{a, b} W[:, :, a, b] (per group) @ the input pixels that offset (a, b) reads."""
    unbatched = x.ndim == 3
    if unbatched:
        x = anp.reshape(x, (1,) + x.shape)
    (sh, sw), (dh, dw) = stride, dilation
    top, bottom, left, right = pads
    xpad = anp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), "constant")
    n, c, hp, wp = xpad.shape
    o, cg, kh, kw = w.shape
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    y = 0.0
    for a in range(kh):
        for bb in range(kw):
            seen = xpad[:, :, a * dh : a * dh + sh * (ho - 1) + 1 : sh,
                        bb * dw : bb * dw + sw * (wo - 1) + 1 : sw]
            seen = anp.reshape(seen, (n, groups, cg, ho, wo))
            wk = anp.reshape(w[:, :, a, bb], (groups, o // groups, cg))
            y = y + anp.reshape(anp.einsum("ngchw,goc->ngohw", seen, wk), (n, o, ho, wo))
    if b is not None:
        y = y + anp.reshape(b, (1, o, 1, 1))
    return y[0] if unbatched else y


def _torch_conv2d(*args: Any, **kwargs: Any) -> torch.Tensor:
    with warnings.catch_warnings():
        # PyTorch warns that padding="same" with an even kernel copies the input: not our concern
        warnings.simplefilter("ignore", UserWarning)
        return torch.nn.functional.conv2d(*args, **kwargs)


def _int(data, lo: int, hi: int, label: str) -> int:
    return data.draw(st.integers(lo, hi), label=label)


def _int_or_pair(data, lo: int, hi: int, label: str) -> Any:
    if data.draw(st.booleans(), label=f"{label} as a pair"):
        return _int(data, lo, hi, f"{label} h"), _int(data, lo, hi, f"{label} w")
    return _int(data, lo, hi, label)


def _draw_padding(data, strings: bool) -> Any:
    if strings and data.draw(st.booleans(), label="padding as a string"):
        return data.draw(st.sampled_from(["same", "valid"]), label="padding")
    return _int_or_pair(data, 0, 2, "padding")


def _draw_geometry(data, kind: str) -> dict[str, Any]:
    """Channels, groups, kernel, stride, padding and dilation for one convolution of ``kind``."""
    dilation = _int_or_pair(data, 1, 2, "dilation")
    if kind == "pointwise":
        padding = data.draw(st.sampled_from([0, (0, 0), "valid"]), label="padding")
        return dict(c_in=_int(data, 1, 4, "c_in"), c_out=_int(data, 1, 4, "c_out"), groups=1,
                    kernel=(1, 1), stride=1, padding=padding, dilation=dilation)
    if kind == "depthwise":
        c = _int(data, 1, 4, "channels")
        if data.draw(st.booleans(), label="3x3"):
            kernel = (3, 3)
        else:
            kernel = (_int(data, 1, 4, "kh"), _int(data, 1, 4, "kw"))
        return dict(c_in=c, c_out=c, groups=c, kernel=kernel, stride=1,
                    padding=_draw_padding(data, strings=True), dilation=dilation)
    groups = _int(data, 1, 3, "groups")
    stride = _int_or_pair(data, 1, 3, "stride")
    return dict(
        c_in=groups * _int(data, 1, 3, "in channels per group"),
        c_out=groups * _int(data, 1, 3, "out channels per group"),
        groups=groups, kernel=(_int(data, 1, 4, "kh"), _int(data, 1, 4, "kw")), stride=stride,
        padding=_draw_padding(data, strings=stride in (1, (1, 1))), dilation=dilation,
    )


def draw_conv2d(data: st.DataObject, kind: str | None = None) -> dict[str, Any]:
    """One valid conv2d call of ``kind`` (drawn when None), as keyword arguments plus arrays."""
    kind = kind or data.draw(st.sampled_from(KINDS), label="kind")
    geo = _draw_geometry(data, kind)
    # the padding and geometry as the library reads the arguments (the sizes are not known yet)
    probe = conv2d_window((1, 1, 1, 1), geo["kernel"], geo["stride"], geo["padding"],
                          geo["dilation"])
    stride, dilation, pads = probe.stride, probe.dilation, probe.pads
    # Height and width: from just enough for the dilated kernel to fit, to 3 more.
    sizes = []
    for axis, pad in ((0, pads[0] + pads[1]), (1, pads[2] + pads[3])):
        span = dilation[axis] * (geo["kernel"][axis] - 1) + 1
        smallest = max(1, span - pad)
        sizes.append(data.draw(st.integers(smallest, smallest + 3), label="hw"[axis]))
    batch = data.draw(st.sampled_from([1, 2, None]), label="batch (None: unbatched)")
    x_shape = ((batch,) if batch else ()) + (geo["c_in"], *sizes)
    w_shape = (geo["c_out"], geo["c_in"] // geo["groups"], *geo["kernel"])
    path = conv2d_kind((1,) + x_shape[-3:], w_shape, stride, pads, geo["groups"])
    assume(path == kind)  # e.g. a "general" draw that happens to be depthwise is redrawn
    return dict(
        kind=kind, x_shape=x_shape, w_shape=w_shape, bias=data.draw(st.booleans(), label="bias"),
        stride=geo["stride"], padding=geo["padding"], dilation=geo["dilation"],
        groups=geo["groups"], pads=pads,
    )


def conv2d_case(data: st.DataObject, kind: str | None = None) -> Case:
    """A conv2d case of ``kind`` ("pointwise", "depthwise", "general"; drawn when None)."""
    call = draw_conv2d(data, kind)
    x = draw_array(data, call["x_shape"], label="input")
    w = draw_array(data, call["w_shape"], label="weight")
    inputs = [x, w]
    if call["bias"]:
        inputs.append(draw_array(data, (call["w_shape"][0],), label="bias"))
    args = {k: call[k] for k in ("stride", "padding", "dilation", "groups")}
    win = conv2d_window((1, 1, 1, 1), call["w_shape"][2:], call["stride"], call["padding"],
                        call["dilation"])
    geometry = (win.stride, win.pads, win.dilation, call["groups"])
    return Case(
        inputs,
        lambda x, w, b=None: conv2d(x, w, b, **args),
        lambda x, w, b=None: _torch_conv2d(x, w, b, **args),
        lambda x, w, b=None: hips_conv2d(x, w, b, *geometry),
        notes={"path": call["kind"]},
    )


SPECS: dict[str, Callable[[st.DataObject], Case]] = {"conv2d": conv2d_case}
