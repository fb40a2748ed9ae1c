"""Specifications of pooling and resizing: max_pool2d, avg_pool2d, interpolate.

Each draws small (N, C, H, W) inputs (sometimes (C, H, W) for the pools) and hyper-parameters
the way a user might write them (ints, tuples or lists; non-square kernels; strides None or
1..3; padding up to half the kernel; ceil_mode; both values of count_include_pad; sizes and
scale factors up and down, integer and fractional). Every draw first picks a *path*: one of
iFormer's own uses (max-pool 3x3 stride 1 padding 1, average pool 2x2, nearest x2, bilinear
resize), a general configuration, or one interpolation mode, so that the fast paths and the
general paths are all exercised on every run. ``test_pool.py`` also runs each path on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as TF
from hypothesis import assume
from hypothesis import strategies as st
from oracle import Case, draw_array

from mini_iformer.ops.pool import avg_pool2d, max_pool2d
from mini_iformer.ops.resize import interpolate

MAX_POOL_PATHS = ("iFormer 3x3/s1/p1", "stride 1", "strided")
AVG_POOL_PATHS = ("windows tile the input", "general")
INTERPOLATE_PATHS = (
    "iFormer nearest x2", "iFormer bilinear resize", "nearest", "nearest-exact", "bilinear",
    "bicubic", "area", "(N, C, L)",
)


def _pick(data, options, label):
    """One of ``options``, about equally often: within 100 examples ``sampled_from`` favours
    the first options strongly, so the choice comes from a drawn seed instead."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label} seed")
    return options[int(np.random.default_rng(seed).integers(len(options)))]


def _as_given(data, pair, label):
    """A (rows, cols) pair written as an int when square, or as a tuple or a list."""
    style = data.draw(st.sampled_from(["int", "tuple", "list"]), label=f"{label} style")
    if style == "int" and pair[0] == pair[1]:
        return pair[0]
    return list(pair) if style == "list" else tuple(pair)


def _two(data, lo, hi, label):
    """A pair of ints in [lo, hi], drawn one by one."""
    return tuple(data.draw(st.integers(lo, hi), label=f"{label}[{i}]") for i in range(2))


def _lead(data):
    return data.draw(st.sampled_from([(1, 1), (2, 3), (1, 2), (3,)]), label="N, C")


def _pool_geometry(data, dilated, strided):
    """kernel, stride (None or a pair), padding, dilation, and an input shape that fits."""
    kernel = _two(data, 1, 4, "kernel")
    if strided is False:
        stride = (1, 1)
    else:
        stride = data.draw(
            st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))), label="stride"
        )
        if strided:
            assume(max(stride or kernel) > 1)
    padding = tuple(data.draw(st.integers(0, k // 2), label="padding") for k in kernel)
    dilation = (1, 1)
    if dilated:
        dilation = _two(data, 1, 2, "dilation")
    lows = [max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(kernel, padding, dilation)]
    hw = tuple(data.draw(st.integers(lo, lo + 4), label="side") for lo in lows)
    return kernel, stride, padding, dilation, _lead(data) + hw


# -- max_pool2d ----------------------------------------------------------------------------------
def max_pool2d_case(data, path=None):
    path = path or _pick(data, MAX_POOL_PATHS, "path")
    if path == "iFormer 3x3/s1/p1":
        shape = data.draw(st.sampled_from([(2, 3, 5, 4), (1, 2, 1, 3), (2, 6, 6), (1, 1, 3, 7)]))
        kernel, stride, padding, dilation, ceil_mode = (3, 3), (1, 1), (1, 1), (1, 1), False
    else:
        kernel, stride, padding, dilation, shape = _pool_geometry(data, True, path == "strided")
        ceil_mode = data.draw(st.booleans(), label="ceil_mode")
    x = draw_array(data, shape, "distinct")  # tie-free: one maximum per window
    args = (
        _as_given(data, kernel, "kernel_size"),
        None if stride is None else _as_given(data, stride, "stride"),
        _as_given(data, padding, "padding"),
        _as_given(data, dilation, "dilation"),
        ceil_mode,
    )
    # A dilated window can fall entirely into the padding: its output is -inf and it has no
    # gradient (PyTorch's backward then writes to an element outside the window). Skip those.
    x4 = x if x.ndim == 4 else x[None]
    assume(not np.isinf(TF.max_pool2d(torch.tensor(x4), *args).numpy()).any())
    # sometimes with the maxima's positions too (return_indices)
    indices = data.draw(st.booleans(), label="return_indices")
    return Case([x], lambda t: max_pool2d(t, *args, return_indices=indices),
                lambda t: TF.max_pool2d(t, *args, return_indices=indices))


# -- avg_pool2d ----------------------------------------------------------------------------------
def avg_pool2d_case(data, path=None):
    path = path or _pick(data, AVG_POOL_PATHS, "path")
    if path == "windows tile the input":
        k = _two(data, 1, 3, "kernel")
        if data.draw(st.booleans(), label="iFormer's 2x2"):
            k = (2, 2)
        blocks = _two(data, 1, 3, "blocks")
        shape = _lead(data) + (k[0] * blocks[0], k[1] * blocks[1])
        kernel, stride, padding = k, data.draw(st.sampled_from([None, k]), label="stride"), (0, 0)
    else:
        kernel, stride, padding, _, shape = _pool_geometry(data, False, None)
    ceil_mode = data.draw(st.booleans(), label="ceil_mode")
    count_include_pad = data.draw(st.booleans(), label="count_include_pad")
    divisor_override = data.draw(st.sampled_from([None, None, 3, -2]), label="divisor_override")
    x = draw_array(data, shape)
    args = (
        _as_given(data, kernel, "kernel_size"),
        None if stride is None else _as_given(data, stride, "stride"),
        _as_given(data, padding, "padding"),
        ceil_mode, count_include_pad, divisor_override,
    )
    return Case([x], lambda t: avg_pool2d(t, *args), lambda t: TF.avg_pool2d(t, *args))


# -- interpolate ---------------------------------------------------------------------------------
_FRACTIONS = [0.5, 0.75, 0.9, 1 / 3, 0.6, 1.1, 1.2, 1.5, 1.7, 2.5]  # 1.1, 1.2 often keep a size


def interpolate_case(data, path=None):
    path = path or _pick(data, INTERPOLATE_PATHS, "path")
    if path == "iFormer nearest x2":
        shape = _lead(data)[:1] + (data.draw(st.integers(1, 3)),) + _two(data, 1, 4, "H, W")
        kwargs = dict(scale_factor=2, mode="nearest")
    elif path == "(N, C, L)":  # 3-D inputs: one spatial axis, PyTorch's 1-D modes
        mode = data.draw(st.sampled_from(["nearest", "nearest-exact", "linear", "area"]))
        shape = _two(data, 1, 3, "N, C") + (data.draw(st.integers(1, 6), label="L"),)
        kwargs = dict(mode=mode)
        if mode == "linear":
            kwargs["align_corners"] = data.draw(st.sampled_from([None, False, True]))
        if data.draw(st.booleans(), label="by size"):
            kwargs["size"] = data.draw(st.integers(1, 9), label="size")
        else:
            factor = data.draw(st.one_of(st.integers(1, 3), st.sampled_from(_FRACTIONS)))
            assume(math.floor(shape[2] * factor) >= 1)
            # PyTorch's 1-D nearest backward copies the gradient when a scale factor leaves
            # the size unchanged, although its forward reads floor(dst / scale): skip that
            # inconsistency (our backward is the gradient of the forward)
            assume(not (mode == "nearest" and factor != 1
                        and math.floor(shape[2] * factor) == shape[2]))
            kwargs["scale_factor"] = factor
    elif path == "iFormer bilinear resize":
        shape = (1, data.draw(st.integers(1, 3))) + _two(data, 2, 5, "H, W")
        kwargs = dict(size=_two(data, 2, 7, "size"), mode="bilinear")
    else:
        mode = path
        shape = _two(data, 1, 3, "N, C") + _two(data, 1, 6, "H, W")
        kwargs = dict(mode=mode)
        if mode in ("bilinear", "bicubic"):
            kwargs["align_corners"] = data.draw(st.sampled_from([None, False, True]))
        if data.draw(st.booleans(), label="by size"):
            kwargs["size"] = _as_given(data, _two(data, 1, 9, "size"), "size")
        else:
            factor = st.one_of(st.integers(1, 3), st.sampled_from(_FRACTIONS))
            scale = (data.draw(factor, label="scale_h"), data.draw(factor, label="scale_w"))
            same = scale[0] == scale[1] and data.draw(st.booleans(), label="one number")
            kwargs["scale_factor"] = scale[0] if same else scale
            recompute = data.draw(st.sampled_from([None, False, True]), label="recompute")
            if recompute is not None:
                kwargs["recompute_scale_factor"] = recompute
            out = [math.floor(n * s) for n, s in zip(shape[2:], scale)]
            assume(min(out) >= 1)
            # PyTorch's bicubic backward copies the gradient when a scale factor leaves the
            # size unchanged, although its forward does not copy: skip that inconsistency.
            kept = any(o == n for o, n in zip(out, shape[2:]))
            assume(not (mode == "bicubic" and not recompute and kept))
    x = draw_array(data, shape)
    return Case([x], lambda t: interpolate(t, **kwargs), lambda t: TF.interpolate(t, **kwargs))


SPECS: dict[str, Callable[[st.DataObject], Case]] = {
    "max_pool2d": max_pool2d_case,
    "avg_pool2d": avg_pool2d_case,
    "interpolate": interpolate_case,
}
