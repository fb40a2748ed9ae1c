"""Pooling and resizing: ``max_pool2d``, ``avg_pool2d`` and ``interpolate``.

iFormer uses all three. Its high-frequency mixer max-pools 3x3 with stride 1 (padding never
wins: it pads with -inf); its low-frequency mixer average-pools 2x2 before attention and
upsamples the result again with nearest neighbours; and position embeddings are resized to
a new image size by bilinear interpolation.

**Pooling as a loop over kernel offsets.** A k x k window has k*k positions. Instead of
visiting every window, the code visits every *offset* (i, j) of the window once, in row-major
order, and takes one strided view of the padded input that holds, for every output position
at once, the element at offset (i, j) of its window::

    view(i, j)[n, c, oh, ow] = x_pad[n, c, oh*s_h + i*d_h, ow*s_w + j*d_w]

Max pooling is then a running ``maximum`` over the k*k views, average pooling a running sum.
Backward walks the same views of a zero gradient buffer and adds into them. On 2 cores this
beats both a Python loop over windows and a reduction over a "window view" (as_strided) by a
wide margin; with stride 1 it is faster still, because every view is then a plain shift of
the flattened padded array (contiguous, one long row instead of many short ones).

**Resizing as two small matrices.** Every mode of ``interpolate`` computes each output pixel
as a weighted sum of input pixels, with weights that are a product of a row weight and a
column weight. So the whole resize is ``y = A_h @ x @ A_w^T`` per (n, c) plane, where A_h is
(H_out, H_in) and A_w is (W_out, W_in), and its backward is ``dx = A_h^T @ g @ A_w``: exact,
and two matrix products. Integer nearest up-scaling (iFormer's x2) skips the matrices: it is a
``repeat`` forward and a block sum backward.

Plain reference forms (a loop over windows, a loop over output pixels) are kept at the end of
the module, unregistered, for tests and lessons to compare against.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backend
from . import _cuda
from ..autograd import Function, Tensor, as_tensor, register_op
from .shape import squeeze, unsqueeze

__all__ = ["max_pool2d", "avg_pool2d", "interpolate"]

Pair = tuple[int, int]


def _xp() -> Any:
    return backend.get_xp()



# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
def _pair(value: Any, name: str, op: str) -> Pair:
    """An int or a sequence of one or two ints, as a (rows, cols) pair."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(items) not in (1, 2):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    try:
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        ints = tuple(operator.index(v) for v in items)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    return (ints[0], ints[-1])


def _check_bool(value: Any, name: str, op: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")
    return bool(value)


def _pool_output_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's output length of a pooling along one axis.

    floor((n + 2p - d(k-1) - 1) / s) + 1 windows fit; with ``ceil_mode`` the division rounds up,
    but the last window must still start inside the input or its left padding.
    """
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _check_pool_input(x: Tensor, op: str) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}"
        )
    if 0 in x.shape[-3:]:
        raise ValueError(
            f"{op}: only the batch axis of the input may be empty, got shape {x.shape}"
        )


# ---------------------------------------------------------------------------------------------
# Windows: where each kernel offset reads from the padded input
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Windows:
    """The geometry of one 2-D pooling, and the views it reads and writes.

    ``pad(x)`` lays the (N, C, H, W) input out in a padded buffer; ``views(buffer)`` returns
    one view per kernel offset (row-major over the window), all of the same "grid" shape;
    ``crop`` turns a result on that grid into the (N, C, H_out, W_out) output, ``uncrop`` does
    the reverse for an output gradient, and ``unpad`` takes the input-shaped part out of a
    buffer.

    With stride 1 the grid is the whole padded (H_pad, W_pad) plane: view (i, j) is the
    flattened buffer shifted by i*d_h*W_pad + j*d_w, so each view is contiguous. Positions of
    the grid outside the output (the last rows and columns of each plane) are computed and
    thrown away. With a larger stride the grid is the output itself and the views are strided
    slices.
    """

    shape: tuple[int, int, int, int]  # input (N, C, H, W)
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    out: Pair  # (H_out, W_out)

    @property
    def padded(self) -> Pair:
        """(H_pad, W_pad): input, padding, and whatever more the last window reaches."""
        return tuple(  # type: ignore[return-value]
            max(n + 2 * p, (o - 1) * s + (k - 1) * d + 1)
            for n, p, o, s, k, d in zip(
                self.shape[2:], self.padding, self.out, self.stride, self.kernel, self.dilation
            )
        )

    @property
    def flat(self) -> bool:
        return self.stride == (1, 1)

    @property
    def offsets(self) -> list[Pair]:
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        return [(i * dh, j * dw) for i in range(kh) for j in range(kw)]

    def _plane_size(self) -> int:
        n, c = self.shape[:2]
        hp, wp = self.padded
        return n * c * hp * wp

    def _tail(self) -> int:
        """Room after the padded planes, so that every shifted view stays inside the buffer."""
        if not self.flat:
            return 0
        di, dj = self.offsets[-1]
        return di * self.padded[1] + dj

    def buffer(self, dtype: Any, fill: float) -> Any:
        return _xp().full(self._plane_size() + self._tail(), fill, dtype=dtype)

    def _planes(self, buf: Any) -> Any:
        n, c = self.shape[:2]
        return buf[: self._plane_size()].reshape(n, c, *self.padded)

    def pad(self, x: Any, fill: float) -> Any:
        """The buffer holding ``x`` surrounded by ``fill``."""
        n, c, h, w = self.shape
        ph, pw = self.padding
        buf = _xp().empty(self._plane_size() + self._tail(), dtype=x.dtype)
        planes = self._planes(buf)
        planes[:, :, :ph] = fill
        planes[:, :, ph + h :] = fill
        planes[:, :, :, :pw] = fill
        planes[:, :, :, pw + w :] = fill
        planes[:, :, ph : ph + h, pw : pw + w] = x
        buf[self._plane_size() :] = fill
        return buf

    def unpad(self, buf: Any) -> Any:
        (ph, pw), (h, w) = self.padding, self.shape[2:]
        return self._planes(buf)[:, :, ph : ph + h, pw : pw + w]

    def views(self, buf: Any) -> list[Any]:
        if self.flat:
            size, wp = self._plane_size(), self.padded[1]
            return [
                buf[di * wp + dj : di * wp + dj + size].reshape(self._planes(buf).shape)
                for di, dj in self.offsets
            ]
        planes = self._planes(buf)
        (oh, ow), (sh, sw) = self.out, self.stride
        return [
            planes[:, :, di : di + sh * (oh - 1) + 1 : sh, dj : dj + sw * (ow - 1) + 1 : sw]
            for di, dj in self.offsets
        ]

    def crop(self, grid: Any) -> Any:
        oh, ow = self.out
        return grid[:, :, :oh, :ow] if self.flat else grid

    def uncrop(self, g: Any) -> Any:
        if not self.flat:
            return g
        oh, ow = self.out
        grid = _xp().zeros(self.shape[:2] + self.padded, dtype=g.dtype)
        grid[:, :, :oh, :ow] = g
        return grid


def _windows(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
    ceil_mode: Any,
) -> _Windows:
    """Validate pooling arguments the way PyTorch does; return the geometry for a 4-D input."""
    kernel = _pair(kernel_size, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    strides = kernel if no_stride else _pair(stride, "stride", op)
    pads = _pair(padding, "padding", op)
    dils = _pair(dilation, "dilation", op)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode", op)
    for name, values, low in [
        ("kernel_size", kernel, 1), ("stride", strides, 1), ("dilation", dils, 1),
        ("padding", pads, 0),
    ]:
        if min(values) < low:
            which = "positive" if low else "non-negative"
            raise ValueError(f"{op}: {name} must be {which}, got {values}")
    for k, p in zip(kernel, pads):  # PyTorch compares with the kernel itself, not the dilated one
        if p > k // 2:
            raise ValueError(
                f"{op}: padding {pads} must be at most half of kernel_size {kernel}, so that "
                "every window holds an input element"
            )
    out = tuple(
        _pool_output_size(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(x.shape[-2:], kernel, strides, pads, dils)
    )
    if min(out) < 1:
        raise ValueError(
            f"{op}: output size {out} is too small: input shape {x.shape} with kernel_size "
            f"{kernel}, stride {strides}, padding {pads}, dilation {dils}"
        )
    shape = (1,) * (4 - x.ndim) + x.shape
    return _Windows(shape, kernel, strides, pads, dils, out)  # type: ignore[arg-type]


def _on_4d(fn: Any, x: Tensor) -> Tensor:
    """Run a 4-D operation on a 3-D (C, H, W) input by adding and removing a batch axis."""
    return squeeze(fn(unsqueeze(x, 0)), 0) if x.ndim == 3 else fn(x)


# ---------------------------------------------------------------------------------------------
# max_pool2d
# ---------------------------------------------------------------------------------------------
def _lowest(dtype: Any) -> Any:
    """The value that never wins a maximum: -inf, or the smallest integer."""
    dtype = np.dtype(dtype)
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


# On a GPU, the offset loop below is 2*k*k small kernels forward and as many backward; these two
# kernels do it in one pass each (conventions: mini_iformer.ops._cuda). The forward thread of
# an output keeps the running maximum and the *input* position it came from; the backward
# thread of an input pixel visits the outputs whose window holds it and takes the gradient of
# those that chose it. PyTorch's rules: the first maximum in row-major window order wins, a
# NaN wins over everything, and padding is never chosen (positions outside the input are
# skipped, so an all -inf window picks its first real element).
_CUDA_SOURCE = r"""
extern "C" __global__ void max_pool_forward(
        const T* x, T* y, int* arg, index_t total, index_t H, index_t W, index_t Ho,
        index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw, index_t ph, index_t pw,
        index_t dh, index_t dw, T lowest) {
    GRID_STRIDE_LOOP(i, total) {
        index_t j = i % Wo, t = i / Wo;
        index_t r = t % Ho;
        t /= Ho;
        const T* xs = x + t * H * W;
        T best = lowest;
        index_t where = -1;
        for (index_t a = 0; a < KH; ++a) {
            index_t p = r * sh - ph + a * dh;
            if (p < 0 || p >= H) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t q = j * sw - pw + b * dw;
                if (q < 0 || q >= W) continue;
                T v = xs[p * W + q];
                if (where < 0 || v > best || (v != v && best == best)) {
                    best = v;
                    where = p * W + q;
                }
            }
        }
        y[i] = best;
        arg[i] = (int)where;
    }
}

extern "C" __global__ void max_pool_backward(
        const T* g, const int* arg, T* dx, index_t total, index_t H, index_t W, index_t Ho,
        index_t Wo, index_t KH, index_t KW, index_t sh, index_t sw, index_t ph, index_t pw,
        index_t dh, index_t dw) {
    GRID_STRIDE_LOOP(i, total) {
        index_t q = i % W, t = i / W;
        index_t p = t % H;
        t /= H;
        index_t me = p * W + q, base = t * Ho * Wo;
        T acc = 0;
        for (index_t a = 0; a < KH; ++a) {
            index_t r = gather_index(p + ph - a * dh, sh, Ho);
            if (r < 0) continue;
            for (index_t b = 0; b < KW; ++b) {
                index_t j = gather_index(q + pw - b * dw, sw, Wo);
                if (j >= 0 && arg[base + r * Wo + j] == me) acc += g[base + r * Wo + j];
            }
        }
        dx[i] = acc;
    }
}
"""
_MAX_POOL_FORWARD = _cuda.Kernel("max_pool_forward", _CUDA_SOURCE)
_MAX_POOL_BACKWARD = _cuda.Kernel("max_pool_backward", _CUDA_SOURCE)


def _max_pool_args(win: "_Windows") -> tuple[int, ...]:
    n, c, h, w = win.shape
    return (h, w, *win.out, *win.kernel, *win.stride, *win.padding, *win.dilation)


def _max_pool_forward_gpu(x: Any, win: "_Windows") -> tuple[Any, Any]:
    xp = _xp()
    x = xp.ascontiguousarray(x)
    y = xp.empty(win.shape[:2] + win.out, dtype=x.dtype)
    arg = xp.empty(y.shape, dtype=xp.int32)
    _MAX_POOL_FORWARD(y.size, x, y, arg, y.size, *_max_pool_args(win), float(_lowest(x.dtype)),
                      dtype=x.dtype)
    return y, arg


def _max_pool_backward_gpu(g: Any, arg: Any, win: "_Windows") -> Any:
    xp = _xp()
    g = xp.ascontiguousarray(g)
    dx = xp.empty(win.shape, dtype=g.dtype)
    _MAX_POOL_BACKWARD(dx.size, g, arg, dx, dx.size, *_max_pool_args(win), dtype=g.dtype)
    return dx


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max over the window of x_pad  (padding is -inf: it never wins).

    Forward keeps a running maximum over the k*k offset views, and with it ``arg``, the
    offset index k where the maximum was last *strictly* improved: the first maximum in
    row-major window order wins, as in PyTorch. Backward sends each g[n, c, oh, ow] to that
    one element: for every offset k, ``grad_view(k) += g * (arg == k)``.

    The argmax update is arithmetic (``arg += better * (k - arg)``) rather than a masked
    write: with a random mask, a masked write is some 30 times slower.

    On a GPU the kernels ``max_pool_forward`` / ``max_pool_backward`` above do each direction
    in one pass, with ``arg`` the position of the maximum in the input plane.
    """

    name = "max_pool2d"

    def forward(self, x, win):
        xp = _xp()
        self.gpu = _cuda.use_kernels(x) and max(win.shape[2] * win.shape[3], 1) < 2**31
        if self.gpu:
            y, arg = _max_pool_forward_gpu(x, win)
            self.win, self.arg = win, arg if self.needs_input_grad[0] else None
            return y
        views = win.views(win.pad(x, _lowest(x.dtype)))
        out = views[0].copy()
        need = self.needs_input_grad[0]
        arg = xp.zeros(out.shape, xp.int8 if len(views) <= 127 else xp.int32) if need else None
        for k, v in enumerate(views[1:], start=1):
            if need:
                better = v > out
                arg += better * (k - arg)
            xp.maximum(out, v, out=out)
        self.win, self.arg = win, arg
        return win.crop(out)

    def backward(self, g):
        win, arg = self.win, self.arg
        if self.gpu:
            return _max_pool_backward_gpu(g, arg, win)
        gq = win.uncrop(g)
        grad = win.buffer(g.dtype, 0)
        for k, view in enumerate(win.views(grad)):
            view += gq * (arg == k)
        return win.unpad(grad)


@register_op("max_pool2d")
def max_pool2d(
    input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,  # noqa: A002
    dilation: Any = 1, ceil_mode: bool = False,
) -> Tensor:
    """2-D max pooling over (N, C, H, W) or (C, H, W), like ``torch.nn.functional.max_pool2d``.

    ``kernel_size``, ``stride`` (default: ``kernel_size``), ``padding`` and ``dilation`` are an
    int or a (rows, cols) pair. Padding is at most half the kernel and never wins the max.
    Output size per axis: floor((n + 2p - d(k-1) - 1) / s) + 1 (rounded up with ``ceil_mode``).
    The gradient goes to one maximum per window, the first in row-major order.
    (PyTorch's ``return_indices`` is not offered.)
    """
    x = as_tensor(input)
    _check_pool_input(x, "max_pool2d")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"max_pool2d: expected a numeric input, got dtype {x.dtype}")
    win = _windows("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    return _on_4d(lambda t: MaxPool2d.apply(t, win=win), x)


# ---------------------------------------------------------------------------------------------
# avg_pool2d
# ---------------------------------------------------------------------------------------------
def _window_counts(n: int, k: int, s: int, p: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output index along one axis: the window length counting padding (but not the part
    past the padding that ``ceil_mode`` may add), and the number of input elements in it."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, n + p)
    inside = np.minimum(end, n) - np.maximum(start, 0)
    return end - start, inside


def _avg_scale(win: _Windows, count_include_pad: bool, divisor_override: int | None) -> Any:
    """1 / divisor for every output position, as an (H_out, W_out) array (or a float)."""
    if divisor_override is not None:
        return 1.0 / divisor_override
    (h_all, h_in), (w_all, w_in) = (
        _window_counts(n, k, s, p, o)
        for n, k, s, p, o in zip(win.shape[2:], win.kernel, win.stride, win.padding, win.out)
    )
    rows, cols = (h_all, w_all) if count_include_pad else (h_in, w_in)
    return 1.0 / np.outer(rows, cols)


class AvgPool2d(Function):
    """y[n, c, oh, ow] = (sum over the window of x_pad) / divisor[oh, ow]  (padding is 0).

    The divisor is the window area (``count_include_pad``), the number of input elements in
    the window, or ``divisor_override``. Forward sums the k*k offset views; backward adds
    g / divisor into every one of them.
    """

    name = "avg_pool2d"

    def forward(self, x, win, scale):
        xp = _xp()
        scale = scale if isinstance(scale, float) else xp.asarray(scale, dtype=x.dtype)
        views = win.views(win.pad(x, 0))
        total = views[0].copy()
        for v in views[1:]:
            total += v
        self.win, self.scale = win, scale
        return win.crop(total) * scale

    def backward(self, g):
        win = self.win
        gq = win.uncrop(g * self.scale)
        grad = win.buffer(g.dtype, 0)
        for view in win.views(grad):
            view += gq
        return win.unpad(grad)


class AvgPool2dBlocks(Function):
    """The windows tile the input (kernel == stride, no padding, sizes divisible).

    Seen as x.reshape(N, C, H/kh, kh, W/kw, kw), each output is the mean of one
    (kh, kw) block: y = scale * sum_{i, j} x[:, :, :, i, :, j]. Backward gives every element
    of a block the same g * scale: a ``repeat`` along both axes. (Measured: adding the
    block's slices one by one is over 10x faster than ``mean`` over the two small block axes,
    and ``repeat`` 2-4x faster than broadcasting to the blocks and reshaping.)
    """

    name = "avg_pool2d"

    def forward(self, x, kernel, scale):
        n, c, h, w = x.shape
        kh, kw = kernel
        blocks = x.reshape(n, c, h // kh, kh, w // kw, kw)
        out = blocks[:, :, :, 0, :, 0].copy()
        for i in range(kh):
            for j in range(kw):
                if i or j:
                    out += blocks[:, :, :, i, :, j]
        out *= scale
        self.kernel, self.scale = kernel, scale
        return out

    def backward(self, g):
        xp = _xp()
        kh, kw = self.kernel
        return xp.repeat(xp.repeat(g * self.scale, kw, axis=3), kh, axis=2)


@register_op("avg_pool2d")
def avg_pool2d(
    input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,  # noqa: A002
    ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling over (N, C, H, W) or (C, H, W), like
    ``torch.nn.functional.avg_pool2d``.

    Each output is the sum of its window (zero padding) divided by the window area when
    ``count_include_pad``, else by the number of input elements in the window, or by
    ``divisor_override`` when given. ``kernel_size``, ``stride`` (default: ``kernel_size``) and
    ``padding`` are an int or a (rows, cols) pair; padding is at most half the kernel.
    """
    op = "avg_pool2d"
    x = as_tensor(input)
    _check_pool_input(x, op)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")
    win = _windows(op, x, kernel_size, stride, padding, 1, ceil_mode)
    include = _check_bool(count_include_pad, "count_include_pad", op)
    if divisor_override is not None:
        try:
            divisor_override = operator.index(divisor_override)
        except TypeError:
            raise TypeError(
                f"{op}: divisor_override must be an int, got {divisor_override!r}"
            ) from None
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must be non-zero")
    scale = _avg_scale(win, include, divisor_override)
    tiles = (
        win.kernel == win.stride
        and win.padding == (0, 0)
        and all(n % k == 0 for n, k in zip(win.shape[2:], win.kernel))
    )
    if tiles:
        area_scale = float(scale) if isinstance(scale, float) else float(scale.flat[0])
        return _on_4d(lambda t: AvgPool2dBlocks.apply(t, kernel=win.kernel, scale=area_scale), x)
    return _on_4d(lambda t: AvgPool2d.apply(t, win=win, scale=scale), x)


# ---------------------------------------------------------------------------------------------
# interpolate: where each output pixel reads, along one axis
# ---------------------------------------------------------------------------------------------
MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
_CUBIC_A = -0.75  # the cubic convolution kernel's parameter (Keys), as PyTorch


def _ratio(n_in: int, n_out: int, scale: float | None, align_corners: bool) -> float:
    """Input pixels per output pixel, PyTorch's rule: with ``align_corners`` the corner
    centres match, (n_in - 1) / (n_out - 1); otherwise 1 / scale_factor when one was given
    (it may differ from n_in / n_out, because the output size was rounded down)."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _nearest_index(n_in: int, n_out: int, scale: float | None, exact: bool) -> np.ndarray:
    """Source index of every output index: floor(dst * ratio) ("nearest", PyTorch's legacy
    rule, with its two shortcuts) or floor((dst + 0.5) * ratio) ("nearest-exact", pixel
    centres). The ratio is a float32, as in PyTorch, and so is the product for "nearest":
    the float rounding decides which pixel is picked when dst * ratio is close to an integer.
    """
    dst = np.arange(n_out)
    if not exact and n_out == n_in:
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


def _taps(
    mode: str, n_in: int, n_out: int, scale: float | None, align_corners: bool
) -> tuple[np.ndarray, np.ndarray]:
    """For every output index along one axis, the input indices it reads and their weights,
    both (n_out, taps): output[o] = sum_t weights[o, t] * input[index[o, t]]."""
    dst = np.arange(n_out)
    if mode in ("nearest", "nearest-exact"):
        idx = _nearest_index(n_in, n_out, scale, mode == "nearest-exact")
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
        if n_out == n_in:  # PyTorch copies when the size does not change
            return dst[:, None], np.ones((n_out, 1))
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


def _matrix(idx: np.ndarray, weights: np.ndarray, n_in: int) -> np.ndarray:
    """The (n_out, n_in) matrix of one axis: row o holds the weights of output o."""
    a = np.zeros((idx.shape[0], n_in))
    np.add.at(a, (np.arange(idx.shape[0])[:, None], idx), weights)  # clamped taps may repeat
    return a


class Resize2d(Function):
    """y = A_h @ x @ A_w^T for every (n, c) plane;  dx = A_h^T @ g @ A_w.

    A_h (H_out, H_in) and A_w (W_out, W_in) hold the interpolation weights along each axis
    (one 1 per row for nearest, two weights for bilinear, four for bicubic, a bin of equal
    weights for area). Forward applies A_w to the rows (one big matrix product over all
    N*C*H rows), then A_h to the columns of every plane; backward applies the transposes in
    reverse order.
    """

    name = "interpolate"

    def forward(self, x, a_h, a_w):
        xp = _xp()
        n, c, h, w = x.shape
        a_h, a_w = xp.asarray(a_h, dtype=x.dtype), xp.asarray(a_w, dtype=x.dtype)
        rows = (x.reshape(n * c * h, w) @ a_w.T).reshape(n, c, h, a_w.shape[0])
        self.a_h, self.a_w = a_h, a_w
        return xp.matmul(a_h, rows)

    def backward(self, g):
        xp = _xp()
        n, c, oh, ow = g.shape
        h, w = self.a_h.shape[1], self.a_w.shape[1]
        cols = xp.matmul(self.a_h.T, g)  # (N, C, H_in, W_out)
        return (cols.reshape(n * c * h, ow) @ self.a_w).reshape(n, c, h, w)


class RepeatUpsample(Function):
    """Nearest up-scaling by integer factors (f_h, f_w): every pixel becomes an f_h x f_w block.

    y = x repeated f_w times along W, then f_h times along H;  dx = the sum of g over each
    block (the f_h * f_w strided slices of g, added up).
    """

    name = "interpolate"

    def forward(self, x, factors):
        xp = _xp()
        fh, fw = factors
        self.factors = factors
        return xp.repeat(xp.repeat(x, fw, axis=3), fh, axis=2)

    def backward(self, g):
        n, c, oh, ow = g.shape
        fh, fw = self.factors
        blocks = g.reshape(n, c, oh // fh, fh, ow // fw, fw)
        dx = blocks[:, :, :, 0, :, 0].copy()
        for i in range(fh):
            for j in range(fw):
                if i or j:
                    dx += blocks[:, :, :, i, :, j]
        return dx


def _integer_factor(idx: np.ndarray, n_in: int) -> int | None:
    """f when the nearest index map is exactly "each input pixel f times" (dst // f)."""
    n_out = idx.shape[0]
    if idx.shape[1] != 1 or n_out % n_in:
        return None
    f = n_out // n_in
    return f if np.array_equal(idx[:, 0], np.arange(n_out) // f) else None


def _spatial(value: Any, name: str, kind: str) -> list[Any]:
    """``size`` or ``scale_factor``: one value for both axes, or a sequence of two."""
    items = list(value) if isinstance(value, (tuple, list)) else [value, value]
    if len(items) != 2:
        raise ValueError(
            f"interpolate: {name} must have one value per spatial axis (2 for a 4-D input), "
            f"got {value!r}"
        )
    for v in items:
        wanted = numbers.Integral if kind == "int" else numbers.Real
        if not isinstance(v, wanted) or isinstance(v, bool):
            raise TypeError(f"interpolate: {name} must be {kind}s, got {value!r}")
    return [operator.index(v) for v in items] if kind == "int" else [float(v) for v in items]


@register_op("interpolate")
def interpolate(
    input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",  # noqa: A002
    align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
) -> Tensor:
    """Resize the H and W axes of an (N, C, H, W) input, like
    ``torch.nn.functional.interpolate``.

    Give exactly one of ``size`` (int or (H_out, W_out)) and ``scale_factor`` (number or pair;
    the output size is floor(n * scale_factor)). ``mode``: "nearest" (source index
    floor(dst * ratio)), "nearest-exact" (floor((dst + 0.5) * ratio)), "bilinear", "bicubic"
    or "area" (adaptive average). ``align_corners`` (bilinear and bicubic only, default False):
    True maps the corner pixel centres onto each other, ratio = (n_in - 1) / (n_out - 1);
    False maps pixel edges, with source coordinate (dst + 0.5) * ratio - 0.5. When
    ``scale_factor`` is given, ratio = 1 / scale_factor unless ``recompute_scale_factor``,
    then (like with ``size``) ratio = n_in / n_out. (PyTorch's ``antialias`` is not offered.)
    """
    op = "interpolate"
    x = as_tensor(input)
    if mode not in MODES:
        raise ValueError(
            f"{op}: unsupported mode {mode!r} for a 4-D input; choose one of {', '.join(MODES)}"
        )
    if mode in ("nearest", "nearest-exact", "area"):
        if align_corners is not None:
            raise ValueError(
                f"{op}: align_corners can only be set with the interpolating modes bilinear "
                f"and bicubic, not with mode {mode!r}"
            )
        align_corners = False
    elif align_corners is None:
        align_corners = False
    else:
        align_corners = _check_bool(align_corners, "align_corners", op)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    if recompute_scale_factor and size is not None:
        raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")
    h, w = x.shape[2:]
    if size is not None:
        out = _spatial(size, "size", "int")
        scales: list[float | None] = [None, None]
    else:
        factors = _spatial(scale_factor, "scale_factor", "number")
        if not all(math.isfinite(f) for f in factors):
            raise ValueError(f"{op}: scale_factor must be finite, got {scale_factor!r}")
        out = [math.floor(n * f) for n, f in zip((h, w), factors)]
        scales = [None, None] if recompute_scale_factor or mode == "area" else factors
    if x.shape[1] == 0 or h == 0 or w == 0 or min(out) < 1:
        raise ValueError(
            f"{op}: input and output sizes must be positive: input shape {x.shape}, "
            f"output size {tuple(out)}"
        )
    (ih, wh), (iw, ww) = (
        _taps(mode, n, o, s, align_corners) for n, o, s in zip((h, w), out, scales)
    )
    fh, fw = _integer_factor(ih, h), _integer_factor(iw, w)
    if fh and fw:
        return RepeatUpsample.apply(x, factors=(fh, fw))
    return Resize2d.apply(x, a_h=_matrix(ih, wh, h), a_w=_matrix(iw, ww, w))


# ---------------------------------------------------------------------------------------------
# Reference forms (unregistered): the definitions, one window or one pixel at a time
# ---------------------------------------------------------------------------------------------
def _reference_geometry(x: np.ndarray, kernel_size, stride, padding, dilation, ceil_mode, op):
    t = Tensor(x)
    _check_pool_input(t, op)
    return _windows(op, t, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool2d_reference(
    x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling of a NumPy (N, C, H, W) array by a loop over windows.

    Returns the output and, like PyTorch's ``return_indices``, the flat index h * W + w of the
    input element each output came from (the first maximum in row-major window order).
    Padding is skipped rather than stored: it never wins.
    """
    g = _reference_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    n, c, h, w = x.shape
    (oh, ow), (sh, sw), (ph, pw) = g.out, g.stride, g.padding
    out = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    index = np.full((n, c, oh, ow), -1, dtype=np.int64)
    for a in range(oh):
        for b in range(ow):
            for di, dj in g.offsets:  # row-major over the window
                r, s = a * sh - ph + di, b * sw - pw + dj
                if 0 <= r < h and 0 <= s < w:
                    v = x[:, :, r, s]
                    better = v > out[:, :, a, b]
                    out[:, :, a, b] = np.where(better, v, out[:, :, a, b])
                    index[:, :, a, b] = np.where(better, r * w + s, index[:, :, a, b])
    return out, index


def avg_pool2d_reference(
    x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
    ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None,
) -> np.ndarray:
    """Average pooling of a NumPy (N, C, H, W) array by a loop over windows, with PyTorch's
    divisor: the window clipped to the padded input, or to the input itself."""
    g = _reference_geometry(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    n, c, h, w = x.shape
    (oh, ow), (sh, sw), (ph, pw), (kh, kw) = g.out, g.stride, g.padding, g.kernel
    out = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for a in range(oh):
        for b in range(ow):
            r0, s0 = a * sh - ph, b * sw - pw
            r1, s1 = min(r0 + kh, h + ph), min(s0 + kw, w + pw)
            area = (r1 - r0) * (s1 - s0)
            r0, s0, r1, s1 = max(r0, 0), max(s0, 0), min(r1, h), min(s1, w)
            total = x[:, :, r0:r1, s0:s1].sum(axis=(2, 3))
            if divisor_override is not None:
                divisor = divisor_override
            else:
                divisor = area if count_include_pad else (r1 - r0) * (s1 - s0)
            out[:, :, a, b] = total / divisor
    return out


def interpolate_reference(
    x: np.ndarray, size: Pair, scales: tuple[float | None, float | None] = (None, None),
    mode: str = "nearest", align_corners: bool = False,
) -> np.ndarray:
    """Resize a NumPy (N, C, H, W) array to ``size`` one output pixel at a time:
    y[..., o, p] = sum_{s, t} wh[o, s] ww[p, t] x[..., ih[o, s], iw[p, t]], with the taps of
    each axis. ``scales`` are the scale factors PyTorch's index rule uses (None: n_in / n_out).
    """
    n, c, h, w = x.shape
    ih, wh = _taps(mode, h, size[0], scales[0], align_corners)
    iw, ww = _taps(mode, w, size[1], scales[1], align_corners)
    out = np.zeros((n, c) + tuple(size), dtype=x.dtype)
    for o in range(size[0]):
        for p in range(size[1]):
            for s in range(ih.shape[1]):
                for t in range(iw.shape[1]):
                    out[:, :, o, p] += wh[o, s] * ww[p, t] * x[:, :, ih[o, s], iw[p, t]]
    return out
