"""Resizing: ``interpolate``, with PyTorch's arguments and results.

iFormer's low-frequency mixer upsamples its pooled attention output again with nearest
neighbours (x2), and position embeddings are resized to a new image size bilinearly.

**The reference: a weighted sum of taps along each axis.** Every mode computes output pixel
(o, p) as a weighted sum of input pixels whose weights are a product of a row weight and a
column weight: along one axis, output[o] = sum_t w[o, t] * input[i[o, t]] (:func:`taps` gives
i and w: one input pixel for nearest, two for bilinear, four for bicubic, a bin for area). The
reference applies that along W, then along H. As a map it is linear,

    y = A_h @ x @ A_w^T   per (n, c) plane,          dx = A_h^T @ g @ A_w

with A_h (H_out, H_in) and A_w (W_out, W_in) holding the tap weights (:func:`axis_matrix`),
which is how the reference's backward is written. The forward reads only the taps, so a NaN or
an inf in one pixel reaches only the outputs that read it, as in PyTorch (a dense matrix would
multiply it by 0 everywhere else, and 0 * NaN is NaN).

**The fast forms.** ``repeat``: integer nearest up-scaling, iFormer's x2, as a ``repeat``
forward and a block sum backward. ``matrices``: the forward as the two matrix products (2 to
4 times faster on 2 CPU cores), for finite inputs.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor, as_tensor, register_op
from .args import check_bool
from .registry import Dispatch, Implementation, register
from .shape import reshape
from .window import block_sums

__all__ = [
    "interpolate",
    "interpolate_forward",
    "interpolate_backward",
    "matrices_forward",
    "taps",
    "axis_matrix",
    "MODES",
]


# ---------------------------------------------------------------------------------------------
# interpolate: where each output pixel reads, along one axis
# ---------------------------------------------------------------------------------------------
MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
MODES_1D = ("nearest", "nearest-exact", "linear", "area")  # for (N, C, L) inputs
_CUBIC_A = -0.75  # the cubic convolution kernel's parameter (Keys), as PyTorch


def _ratio(n_in: int, n_out: int, scale: float | None, align_corners: bool) -> float:
    """Input pixels per output pixel, PyTorch's rule: with ``align_corners`` the corner
    centres match, (n_in - 1) / (n_out - 1); otherwise 1 / scale_factor when one was given
    (it may differ from n_in / n_out, because the output size was rounded down)."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _nearest_index(
    n_in: int, n_out: int, scale: float | None, exact: bool, copy_same_size: bool = True
) -> np.ndarray:
    """Source index of every output index: floor(dst * ratio) ("nearest", PyTorch's legacy
    rule, with its two shortcuts) or floor((dst + 0.5) * ratio) ("nearest-exact", pixel
    centres). The ratio is a float32, as in PyTorch, and so is the product for "nearest":
    the float rounding decides which pixel is picked when dst * ratio is close to an integer.
    """
    dst = np.arange(n_out)
    if not exact and n_out == n_in and copy_same_size:  # (PyTorch's 2-D rule, not its 1-D one)
        return dst
    if not exact and n_out == 2 * n_in:
        return dst >> 1
    if scale is not None and scale > 0:
        ratio = np.float32(1.0 / scale)
    else:
        ratio = np.float32(n_in) / np.float32(n_out)
    if exact:
        src = ((dst + 0.5) * np.float64(ratio)).astype(np.float32)
    else:
        src = dst.astype(np.float32) * ratio
    return np.minimum(np.floor(src).astype(np.int64), n_in - 1)


def taps(
    mode: str,
    n_in: int,
    n_out: int,
    scale: float | None,
    align_corners: bool,
    copy_same_size: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """For every output index along one axis, the input indices it reads and their weights,
    both (n_out, taps): output[o] = sum_t weights[o, t] * input[index[o, t]].
    ``copy_same_size=False``: "nearest" keeps the scale factor's ratio also where the size
    does not change (PyTorch's rule for (N, C, L) inputs; 2-D inputs are copied)."""
    dst = np.arange(n_out)
    if mode in ("nearest", "nearest-exact"):
        idx = _nearest_index(n_in, n_out, scale, mode == "nearest-exact", copy_same_size)
        return idx[:, None], np.ones((n_out, 1))
    if mode == "area":  # adaptive average pooling: bins [floor(o n/m), ceil((o+1) n/m))
        start = dst * n_in // n_out
        end = -(-(dst + 1) * n_in // n_out)
        width = int((end - start).max())
        idx = start[:, None] + np.arange(width)
        inside = idx < end[:, None]
        return np.minimum(idx, n_in - 1), inside / (end - start)[:, None]
    ratio = _ratio(n_in, n_out, scale, align_corners)
    if mode == "bilinear":
        if n_out == n_in:  # PyTorch's rule: a copy, with the second tap on the same pixel
            return np.stack([dst, dst], axis=1), np.tile([1.0, 0.0], (n_out, 1))
        src = ratio * dst if align_corners else np.maximum(ratio * (dst + 0.5) - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        lam = np.clip(src - i0, 0.0, 1.0)
        i1 = i0 + (i0 < n_in - 1)
        return np.stack([i0, i1], axis=1), np.stack([1 - lam, lam], axis=1)
    # bicubic: 4 taps around floor(src), clamped at the borders, Keys' cubic weights
    src = ratio * dst if align_corners else ratio * (dst + 0.5) - 0.5
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    t = np.clip(src - i0, 0.0, 1.0)
    a = _CUBIC_A
    near = lambda u: ((a + 2) * u - (a + 3)) * u * u + 1  # noqa: E731 - |u| <= 1
    far = lambda u: ((a * u - 5 * a) * u + 8 * a) * u - 4 * a  # noqa: E731 - 1 < |u| < 2
    weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)
    idx = np.clip(i0[:, None] + np.arange(-1, 3), 0, n_in - 1)
    return idx, weights


def axis_matrix(idx: np.ndarray, weights: np.ndarray, n_in: int) -> np.ndarray:
    """The (n_out, n_in) matrix of one axis: row o holds the weights of output o."""
    a = np.zeros((idx.shape[0], n_in))
    np.add.at(a, (np.arange(idx.shape[0])[:, None], idx), weights)  # clamped taps may repeat
    return a


def _along_last(x, idx, weights, area):
    """sum_t weights[o, t] * x[..., idx[o, t]] for every output index o of the last axis (for
    "area", only the taps inside the bin: the others have weight 0 and are not read)."""
    xp = backend.array_module(x)
    w = xp.asarray(weights, dtype=x.dtype)
    picked = x[..., xp.asarray(idx)] * w  # (..., n_out, taps)
    if area:
        picked = xp.where(w != 0, picked, 0)
    return picked.sum(axis=-1)


def interpolate_forward(ctx, x, taps_h, taps_w, area, factors):
    """y[n, c, o, p] = sum_t sum_s w_h[o, t] w_w[p, s] x[n, c, i_h[o, t], i_w[p, s]].

    ``taps_h`` = (i_h, w_h) and ``taps_w`` = (i_w, w_w) are :func:`taps` of each axis (host
    arrays): the input indices each output index reads, and their weights. The sum runs along
    W, then along H (the axes swapped for it and back).
    """
    ctx.x_shape, ctx.taps, ctx.a_h = x.shape, (taps_h, taps_w), None
    rows = _along_last(x, *taps_w, area)  # (N, C, H_in, W_out)
    return _along_last(rows.swapaxes(2, 3), *taps_h, area).swapaxes(2, 3)


def _matrices(ctx, like):
    """A_h and A_w (:func:`axis_matrix` of the saved taps) on ``like``'s backend and dtype,
    made once per call and kept on ``ctx`` for the backward."""
    if getattr(ctx, "a_h", None) is None:
        xp = backend.array_module(like)
        (taps_h, taps_w), (_, _, n_h, n_w) = ctx.taps, ctx.x_shape
        ctx.a_h = xp.asarray(axis_matrix(*taps_h, n_h), dtype=like.dtype)
        ctx.a_w = xp.asarray(axis_matrix(*taps_w, n_w), dtype=like.dtype)
    return ctx.a_h, ctx.a_w


def interpolate_backward(ctx, g):
    """dx = A_h^T @ g @ A_w: the forward is the linear map y = A_h @ x @ A_w^T, with A_h and A_w
    the (n_out, n_in) matrices of the tap weights (:func:`axis_matrix`)."""
    a_h, a_w = _matrices(ctx, g)
    with np.errstate(invalid="ignore"):  # OpenBLAS's flag, as in matrices_forward
        return a_h.T @ (g @ a_w)


def matrices_forward(ctx, x, taps_h, taps_w, area, factors):
    """y = A_h @ x @ A_w^T for every (n, c) plane: A_w on the rows (one matrix product over all
    N*C*H rows), then A_h on the columns of every plane. For finite inputs: a dense product
    multiplies every pixel, also those that no tap reads, by its weight 0."""
    ctx.x_shape, ctx.taps, ctx.a_h = x.shape, (taps_h, taps_w), None
    a_h, a_w = _matrices(ctx, x)
    # OpenBLAS's small-matrix kernels can leave the processor's invalid-operation flag set for
    # finite inputs, which NumPy reports as "invalid value encountered in matmul" although
    # every value is right; a NaN in the data still gives NaN (and PyTorch no notice either).
    with np.errstate(invalid="ignore"):
        return a_h @ (x @ a_w.T)


def repeat_forward(ctx, x, taps_h, taps_w, area, factors):
    """Nearest up-scaling by integer factors (f_h, f_w): every pixel becomes an f_h x f_w
    block, ``repeat`` along W then along H. Applies when the nearest index map is exactly
    "each input pixel f times" on both axes (iFormer's x2)."""
    xp = backend.array_module(x)
    fh, fw = ctx.factors = factors
    return xp.repeat(xp.repeat(x, fw, axis=3), fh, axis=2)


def repeat_backward(ctx, g):
    """dx = the sum of g over each block: the f_h * f_w strided slices of g, added up."""
    return block_sums(g, *ctx.factors)


class Interpolate(Dispatch):
    name = "interpolate"


def _integer_factor(idx: np.ndarray, n_in: int) -> int | None:
    """f when the nearest index map is exactly "each input pixel f times" (dst // f)."""
    n_out = idx.shape[0]
    if idx.shape[1] != 1 or n_out % n_in:
        return None
    f = n_out // n_in
    return f if np.array_equal(idx[:, 0], np.arange(n_out) // f) else None


def _spatial(value: Any, name: str, kind: str, axes: int) -> list[Any]:
    """``size`` or ``scale_factor``: one value for every spatial axis, or one per axis."""
    items = list(value) if isinstance(value, (tuple, list)) else [value] * axes
    if len(items) != axes:
        raise ValueError(
            f"interpolate: {name} must have one value per spatial axis ({axes} for a "
            f"{axes + 2}-D input), got {value!r}"
        )
    for v in items:
        wanted = numbers.Integral if kind == "int" else numbers.Real
        if not isinstance(v, wanted) or isinstance(v, bool):
            raise TypeError(f"interpolate: {name} must be {kind}s, got {value!r}")
    return [operator.index(v) for v in items] if kind == "int" else [float(v) for v in items]


@register_op("interpolate")
def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> Tensor:
    """Resize the H and W axes of an (N, C, H, W) input, or the L axis of an (N, C, L) one,
    like ``torch.nn.functional.interpolate``.

    Give exactly one of ``size`` (int or (H_out, W_out)) and ``scale_factor`` (number or pair;
    the output size is floor(n * scale_factor)). ``mode``: "nearest" (source index
    floor(dst * ratio)), "nearest-exact" (floor((dst + 0.5) * ratio)), "bilinear", "bicubic"
    or "area" (adaptive average). ``align_corners`` (bilinear and bicubic only, default False):
    True maps the corner pixel centres onto each other, ratio = (n_in - 1) / (n_out - 1);
    False maps pixel edges, with source coordinate (dst + 0.5) * ratio - 0.5. When
    ``scale_factor`` is given, ratio = 1 / scale_factor unless ``recompute_scale_factor``,
    then (like with ``size``) ratio = n_in / n_out. A 3-D input takes the modes "nearest",
    "nearest-exact", "linear" (bilinear's rule along one axis) and "area". (PyTorch's
    ``antialias`` is not offered.)
    """
    op = "interpolate"
    x = as_tensor(input)
    input_ndim = x.ndim
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape {x.shape}"
        )
    modes = MODES_1D if x.ndim == 3 else MODES
    if mode not in modes:
        raise ValueError(
            f"{op}: unsupported mode {mode!r} for a {x.ndim}-D input; choose one of "
            f"{', '.join(modes)}"
        )
    if mode in ("nearest", "nearest-exact", "area"):
        if align_corners is not None:
            raise ValueError(
                f"{op}: align_corners can only be set with the interpolating modes linear, "
                f"bilinear and bicubic, not with mode {mode!r}"
            )
        align_corners = False
    elif align_corners is None:
        align_corners = False
    else:
        align_corners = check_bool(align_corners, "align_corners", op)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    if recompute_scale_factor and size is not None:
        raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")
    sides = x.shape[2:]
    if size is not None:
        out = _spatial(size, "size", "int", len(sides))
        scales: list[float | None] = [None] * len(sides)
    else:
        factors = _spatial(scale_factor, "scale_factor", "number", len(sides))
        if not all(math.isfinite(f) for f in factors):
            raise ValueError(f"{op}: scale_factor must be finite, got {scale_factor!r}")
        out = [math.floor(n * f) for n, f in zip(sides, factors)]
        scales = [None] * len(sides) if recompute_scale_factor or mode == "area" else factors
    if 0 in sides or min(out) < 1 or (x.shape[1] == 0 and mode != "area"):
        # (an empty batch is fine, and no channels with "area", as in PyTorch)
        raise ValueError(
            f"{op}: input and output sizes must be positive: input shape {x.shape}, "
            f"output size {tuple(out)}"
        )
    if x.ndim == 3:  # (N, C, L) as (N, C, 1, L): the same resize, with nothing to do along H
        x = reshape(x, (x.shape[0], x.shape[1], 1, sides[0]))
        sides, out, scales = (1, *sides), [1, *out], [None, *scales]
    axis_mode = "bilinear" if mode == "linear" else mode
    (ih, wh), (iw, ww) = (
        taps(axis_mode, n, o, s, align_corners, copy_same_size=input_ndim == 4)
        for n, o, s in zip(sides, out, scales)
    )
    if input_ndim == 3:  # no H axis to interpolate along: one tap, weight 1
        ih, wh = np.zeros((1, 1), dtype=np.int64), np.ones((1, 1))
    fh, fw = _integer_factor(ih, sides[0]), _integer_factor(iw, sides[1])
    repeats = (fh, fw) if fh and fw else None
    y = Interpolate.apply(x, taps_h=(ih, wh), taps_w=(iw, ww), area=mode == "area", factors=repeats)
    return reshape(y, y.shape[:2] + (out[1],)) if input_ndim == 3 else y


IMPLEMENTATIONS = register(
    "interpolate",
    [
        Implementation("reference", interpolate_forward, interpolate_backward),
        Implementation(
            "repeat",
            repeat_forward,
            repeat_backward,
            supports=lambda x, factors, **taps: factors is not None,
        ),
        Implementation(
            "matrices",
            matrices_forward,
            interpolate_backward,
            supports=lambda x, **params: bool(backend.array_module(x).isfinite(x).all()),
        ),
    ],
)
