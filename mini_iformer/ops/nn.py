"""Neural-network operations: linear, layer and batch normalisation, GELU, attention,
dropout and stochastic depth, cross-entropy.

Each is one :class:`~mini_iformer.Function` with its forward and its closed-form backward side
by side, and a public function with PyTorch's name, argument names, order and defaults
(``torch.nn.functional``), so ``F.layer_norm(x, (C,), w, b, 1e-6)`` reads the same here and
there. Notation in the docstrings: ``g`` is the gradient of the loss with respect to the
output; a "row" is one slice that an operation normalises or reduces over.

Random operations (``dropout``, ``drop_path``, attention dropout) draw their masks on the host
from a ``numpy.random.Generator`` (the ``generator`` keyword; a fresh one when omitted) and
move them to the backend, so the same seed gives the same mask on NumPy and on CuPy. The
backward pass multiplies by that same mask.

Where the fast form differs from the textbook form, the docstring says why; the numbers behind
those choices were measured in float32 on iFormer-S shapes on a 2-core CPU.
"""

from __future__ import annotations

import math
import numbers
import operator
import threading
from typing import Any

import numpy as np

from .. import backend
from . import _cuda
from ._blocks import block_rows, for_each_block, tile_rows
from ..autograd import Function, Tensor, as_tensor, register_op

__all__ = [
    "linear", "layer_norm", "batch_norm", "gelu", "scaled_dot_product_attention", "dropout",
    "drop_path", "cross_entropy",
]


def _xp() -> Any:
    return backend.get_xp()


def _shape(x: Any, name: str, op: str) -> tuple[int, ...]:
    """The shape of a Tensor or array argument; ``TypeError`` naming it for anything else."""
    if isinstance(x, Tensor) or backend.is_array(x):
        return tuple(x.shape)
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}")


def _column_sums(m: Any) -> Any:
    """Sum over the rows of a 2-D array (one value per column).

    Reductions here are ``einsum``: 2-3x faster than ``.sum(axis=...)`` on these shapes (it
    vectorises the inner loop), and, unlike a matrix-vector product with a vector of ones,
    single-threaded, so it does not stall when the cores are busy with other work.
    """
    return _xp().einsum("ij->j", m)


def _check_probability(p: Any, name: str, op: str) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number in [0, 1], got {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: {name} has to be between 0 and 1, but got {p}")
    return float(p)


def _keep_mask(shape: tuple[int, ...], p: float, dtype: Any, generator: Any, op: str) -> Any:
    """A backend array of ``shape``: 1/(1-p) with probability 1-p, else 0 (all 0 when p == 1).

    Drawn on the host from ``generator`` (a ``numpy.random.Generator``; a fresh one if None),
    so a seed gives the same mask on every backend; sent to a GPU without waiting for it.
    """
    rng = np.random.default_rng() if generator is None else generator
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{op}: generator must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(generator).__name__}"
        )
    keep = rng.random(shape, dtype=np.float32) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return backend.to_device_async(keep).astype(dtype) * scale


# =============================================================================================
# linear
# =============================================================================================
class Linear(Function):
    """y = x W^T + b over the last axis of x: (..., in) -> (..., out), W (out, in).

    The leading axes are flattened into one, so the whole layer is one matrix product of a
    (M, in) matrix with W^T (M = product of the leading axes), then reshaped back:

        Y = X W^T + b          dX = G W          dW = G^T X          db = sum over rows of G

    A 1-D weight (in,) gives an output without the last axis, as in PyTorch.
    """

    name = "linear"

    def forward(self, x, weight, bias):
        need_x, need_w, _ = self.needs_input_grad
        w2 = weight[None, :] if weight.ndim == 1 else weight
        x2 = x.reshape(-1, x.shape[-1])
        y = x2 @ w2.T
        out_shape = x.shape[:-1] + weight.shape[:-1]
        y = y.reshape(out_shape)
        if bias is not None:
            if getattr(bias, "dtype", None) == y.dtype and np.shape(bias) == out_shape[-1:]:
                y += bias  # the usual case: no new array
            else:
                y = y + bias
        self.x_shape, self.w_shape = x.shape, weight.shape
        self.x2 = x2 if need_w else None  # dW needs X, dX needs W
        self.w2 = w2 if need_x else None
        self.bias_shape = None if bias is None else np.shape(bias)
        return y

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        g2 = g.reshape(-1, 1 if len(self.w_shape) == 1 else self.w_shape[0])
        dx = (g2 @ self.w2).reshape(self.x_shape) if need_x else None
        dw = (g2.T @ self.x2).reshape(self.w_shape) if need_w else None
        db = None
        if need_b:
            # A bias of shape (out,) is summed here; any other broadcast shape by the engine.
            usual = len(self.w_shape) == 2 and self.bias_shape == self.w_shape[:1]
            db = _column_sums(g2) if usual else g
        return dx, dw, db


@register_op("linear")
def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:  # noqa: A002 - PyTorch's name
    """``input @ weight.T + bias``, like ``torch.nn.functional.linear``.

    input (..., in), weight (out, in) or (in,), bias broadcastable to the output (usually
    (out,)). One matrix product over all leading axes at once.
    """
    x_shape = _shape(input, "input", "linear")
    w_shape = _shape(weight, "weight", "linear")
    if len(x_shape) == 0 or len(w_shape) not in (1, 2):
        raise ValueError(
            f"linear: input needs at least 1 dimension and weight 1 or 2, got input of shape "
            f"{x_shape} and weight of shape {w_shape}"
        )
    if x_shape[-1] != w_shape[-1]:
        raise ValueError(
            f"linear: input of shape {x_shape} has {x_shape[-1]} features, but weight of shape "
            f"{w_shape} expects {w_shape[-1]} (in_features is the last axis of both)"
        )
    if bias is not None:
        b_shape = _shape(bias, "bias", "linear") if not isinstance(bias, numbers.Number) else ()
        out_shape = x_shape[:-1] + w_shape[:-1]
        try:
            grown = np.broadcast_shapes(b_shape, out_shape) != out_shape
        except ValueError:
            grown = True
        if grown:
            raise ValueError(
                f"linear: bias of shape {b_shape} does not broadcast to the output shape "
                f"{out_shape} (input {x_shape}, weight {w_shape})"
            )
    return Linear.apply(input, weight, bias)


# =============================================================================================
# layer_norm
# =============================================================================================
def _normalized_shape(normalized_shape: Any, x_shape: tuple[int, ...], op: str) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple, checked against the trailing axes of the input."""
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    try:
        shape = tuple(operator.index(n) for n in normalized_shape)
    except TypeError:
        raise TypeError(
            f"{op}: normalized_shape must be a tuple of ints, got {normalized_shape!r}"
        ) from None
    if not shape:
        raise ValueError(f"{op}: normalized_shape must have at least one element, got {shape}")
    if len(shape) > len(x_shape) or x_shape[len(x_shape) - len(shape):] != shape:
        raise ValueError(
            f"{op}: normalized_shape={shape} must equal the trailing dimensions of the input, "
            f"but the input has shape {x_shape}"
        )
    return shape


def _outer(a: Any, b: Any, out: Any) -> Any:
    """``out[i, j] = a[i] * b[j]`` for a column ``a`` (n,) and a row ``b`` (d,), in one pass.

    Written as a matrix product with a zero second term, (n, 2) @ (2, d): NumPy hands a
    matrix product with an inner dimension of 1 to a slow non-BLAS loop (about 14x slower
    here), while with 2 it is one BLAS call that fills ``out`` faster than NumPy broadcasts
    ``a[:, None] * b``.
    """
    xp = _xp()
    left = xp.zeros((a.shape[0], 2), dtype=out.dtype)
    left[:, 0] = a
    right = xp.zeros((2, b.shape[0]), dtype=out.dtype)
    right[0] = b
    return xp.matmul(left, right, out=out)


class LayerNorm(Function):
    """Normalise each row (the trailing ``normalized_shape`` axes, D elements) to zero mean and
    unit variance, then scale and shift:

        mu = mean(x),  xc = x - mu,  r = 1 / sqrt(mean(xc^2) + eps),  x_hat = xc * r
        y = x_hat * weight + bias

    Backward, with g_hat = g * weight and means taken over the row:

        dx = r * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat))
        dweight = sum over rows of g * x_hat,   dbias = sum over rows of g

    The fast form saves the centred rows ``xc`` and ``r`` and expands both formulas into
    per-row scalars, matrix-vector products and outer products (``(r w)[i, j] = r[i] w[j]``):

        y  = xc * (r w) + bias
        dx = g * (r w) - xc * (r^3 m2) - r m1,  with m1 = mean(g_hat), m2 = mean(g_hat * xc)
        dweight = r @ (g * xc)

    Row means and dot products with ``w`` are BLAS matrix-vector products; the outer products
    are one BLAS call each (:func:`_outer`). On NumPy the rows are processed in blocks on all
    cores (:func:`~mini_iformer.ops._blocks.for_each_block`), so that each of the few passes
    works on data still in the cache.
    """

    name = "layer_norm"
    #: Elements per block: measured best on iFormer shapes (the per-call cost of NumPy matters
    #: more than the L2 size here; the working set stays in L3).
    BLOCK = 1 << 18

    def forward(self, x, weight, bias, normalized_shape, eps):
        xp = _xp()
        need_x, need_w, _ = self.needs_input_grad
        d = math.prod(normalized_shape)
        x2 = xp.ascontiguousarray(x).reshape(-1, d)
        n = x2.shape[0]
        rows = block_rows(d, self.BLOCK) if backend.array_backend(x2) == "numpy" else n
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

        for_each_block(n, d, block, x2, self.BLOCK)
        self.xc, self.r = xc, r
        self.weight = w
        self.shape, self.norm_shape, self.d = x.shape, normalized_shape, d
        return y.reshape(x.shape)

    def backward(self, g):
        xp = _xp()
        need_x, need_w, need_b = self.needs_input_grad
        g2 = xp.ascontiguousarray(g).reshape(-1, self.d)
        n, d, w, xc, r = g2.shape[0], self.d, self.weight, self.xc, self.r
        rows = block_rows(d, self.BLOCK) if backend.array_backend(g2) == "numpy" else n
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

        parts = for_each_block(n, d, block, g2, self.BLOCK)
        dw = sum(p[0] for p in parts).reshape(self.norm_shape) if need_w else None
        db = sum(p[1] for p in parts).reshape(self.norm_shape) if need_b else None
        return (dx.reshape(self.shape) if need_x else None), dw, db


@register_op("layer_norm")
def layer_norm(
    input: Any,  # noqa: A002 - PyTorch's name
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` axes, like
    ``torch.nn.functional.layer_norm``. iFormer uses it channel-last on (B, H, W, C) with
    ``normalized_shape=(C,)`` and ``eps=1e-6``. ``weight`` and ``bias`` have shape
    ``normalized_shape``."""
    x_shape = _shape(input, "input", "layer_norm")
    shape = _normalized_shape(normalized_shape, x_shape, "layer_norm")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and _shape(p, name, "layer_norm") != shape:
            raise ValueError(
                f"layer_norm: {name} must have the shape normalized_shape={shape}, but has shape "
                f"{_shape(p, name, 'layer_norm')} (input {x_shape})"
            )
    return LayerNorm.apply(input, weight, bias, normalized_shape=shape, eps=float(eps))


# =============================================================================================
# batch_norm
# =============================================================================================
class BatchNorm(Function):
    """Normalise each channel (axis 1) over the batch and all spatial positions.

    With x viewed as (N, C, L) and n = N*L values per channel:

    training: mu and var (biased) of each channel over its n values,
        x_hat = (x - mu) / sqrt(var + eps),   y = x_hat * weight + bias;
        the running statistics are updated in place:
        running_mean = (1 - momentum) running_mean + momentum mu,
        running_var  = (1 - momentum) running_var  + momentum var * n / (n - 1)  (unbiased);
        backward (sums over a channel's n values, a = weight / sigma):
        dx = a * (g - sum(g) / n - x_hat * sum(g x_hat) / n),
        dweight = sum(g x_hat),  dbias = sum(g).

    evaluation: an affine map per channel with the running statistics,
        y = x * s + (bias - running_mean * s),   s = weight / sqrt(running_var + eps);
        dx = g * s,  dweight = sum(g (x - running_mean)) / sqrt(running_var + eps),
        dbias = sum(g).
    """

    name = "batch_norm"

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        xp = _xp()
        need_x, need_w, _ = self.needs_input_grad
        x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
        count = x3.shape[0] * x3.shape[2]
        w = weight
        self.training, self.shape = training, x.shape
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
            self.x_hat = x_hat if need_x or need_w else None
            self.scale = (rstd * w if w is not None else rstd) if need_x else None
            self.count = count
            return y.reshape(x.shape)
        inv_std = 1.0 / xp.sqrt(running_var + eps)
        scale = inv_std * w if w is not None else inv_std
        shift = -running_mean * scale
        if bias is not None:
            shift = shift + bias
        y = x3 * scale[:, None]
        y += shift[:, None]
        self.scale = scale if need_x else None
        if need_w:  # a copy of the running mean: a later training call updates it in place
            self.x3, self.mean, self.inv_std = x3, running_mean.copy(), inv_std
        return y.reshape(x.shape)

    def backward(self, g):
        xp = _xp()
        need_x, need_w, need_b = self.needs_input_grad
        g3 = g.reshape(self.shape[0], self.shape[1], -1)
        need_sum_g = need_b or (need_x and self.training) or (need_w and not self.training)
        sum_g = xp.einsum("ncl->c", g3) if need_sum_g else None
        dx = dw = None
        if self.training:
            sum_gx = xp.einsum("ncl,ncl->c", g3, self.x_hat) if need_w or need_x else None
            if need_w:
                dw = sum_gx
            if need_x:  # a * (g - mean(g) - x_hat * mean(g x_hat)), one new array
                dx = self.x_hat * (sum_gx / self.count)[:, None]
                dx += (sum_g / self.count)[:, None]
                xp.subtract(g3, dx, out=dx)
                dx *= self.scale[:, None]
        else:
            if need_w:
                sum_g_x = xp.einsum("ncl,ncl->c", g3, self.x3)
                dw = (sum_g_x - self.mean * sum_g) * self.inv_std
            if need_x:
                dx = g3 * self.scale[:, None]
        if dx is not None:
            dx = dx.reshape(self.shape)
        return dx, dw, (sum_g if need_b else None)


def _buffer(t: Any) -> Any:
    """The array inside a running-statistics buffer (updated in place)."""
    return t.data if isinstance(t, Tensor) else t


@register_op("batch_norm")
def batch_norm(
    input: Any,  # noqa: A002
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over axis 1 of (N, C, ...) input, like
    ``torch.nn.functional.batch_norm``.

    ``training=True`` normalises with the batch statistics and, when given, updates
    ``running_mean`` and ``running_var`` (tensors without gradient, shape (C,)) in place;
    ``training=False`` uses the running statistics, which must then be given.
    """
    op = "batch_norm"
    x_shape = _shape(input, "input", op)
    if len(x_shape) < 2:
        raise ValueError(f"{op}: input must have shape (N, C, ...), got shape {x_shape}")
    c = x_shape[1]
    named = (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
             ("bias", bias))
    for name, p in named:
        if p is not None and _shape(p, name, op) != (c,):
            raise ValueError(
                f"{op}: {name} must have shape ({c},), one value per channel of the input of "
                f"shape {x_shape}, but has shape {_shape(p, name, op)}"
            )
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}: momentum must be a float, got {momentum!r}")
    if training:
        if math.prod(x_shape) // c <= 1:
            raise ValueError(
                f"{op}: Expected more than 1 value per channel when training, got input of "
                f"shape {x_shape}"
            )
    elif running_mean is None or running_var is None:
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode")
    for name, p in named[:2]:
        if isinstance(p, Tensor) and p.requires_grad:
            raise ValueError(f"{op}: {name} is a buffer and must not require grad")
    return BatchNorm.apply(
        input, weight, bias, running_mean=_buffer(running_mean), running_var=_buffer(running_var),
        training=bool(training), momentum=float(momentum), eps=float(eps),
    )


# =============================================================================================
# gelu
# =============================================================================================
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

# Phi(-|x|) = 0.5 erfc(|x|/sqrt 2) = t P(t) exp(-x^2/2), with t = 1 / (1 + _TAIL_K |x|) and P
# the degree-7 polynomial below (highest power first). Fitted here in float64 to
# 0.5 * scipy.special.erfcx(z) / t on z = |x|/sqrt 2 in [0, 10], minimising the largest
# *relative* error (weighted least squares, reweighted by the residual, Lawson's method):
# 9.4e-8, below float32 resolution. Relative accuracy in the tail matters: it keeps GELU(x)
# for x around -5 correct to float32 precision, where 1 + erf(x/sqrt 2) would cancel.
_TAIL_K = 0.33 * _SQRT_HALF
_TAIL_POLY = (
    -0.06767420592205974, 0.2301244128768065, -0.17558533625537148, 0.20426010144636578,
    0.023604672106030358, 0.10061377334359671, 0.0914776542167307, 0.09317892419217423,
)
_scratch_rows = threading.local()


def _scratch(rows: int, n: int) -> np.ndarray:
    """float32 scratch rows for this thread, reused across blocks (a fresh allocation per block
    would cost page faults)."""
    buf = getattr(_scratch_rows, "buf", None)
    if buf is None or buf.shape[0] < rows or buf.shape[1] < n:
        buf = _scratch_rows.buf = np.empty((rows, n), np.float32)
    return buf[:rows, :n]


def _gelu_erf_block(x, y, d):
    """y = x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, and d = Phi(x) + x phi(x)."""
    xp = _xp()
    cdf = backend.erf(x * _SQRT_HALF)
    cdf += 1.0
    cdf *= 0.5
    xp.multiply(x, cdf, out=y)
    if d is not None:
        pdf = xp.exp(-0.5 * x * x)
        pdf *= _INV_SQRT_2PI
        xp.multiply(x, pdf, out=d)
        d += cdf


# The same tail in the variable s = 1 / (1/_TAIL_K + |x|) = _TAIL_K t, which costs one NumPy
# pass less than t: t P(t) = Q(s), Q's coefficients those of P divided by powers of _TAIL_K.
_INV_TAIL_K = np.float32(1.0 / _TAIL_K)


def _tail_poly_s() -> tuple[np.float32, ...]:
    """Q's float32 coefficients, the constant term nudged by a few units in the last place
    so that float32 evaluation at x = 0 gives Phi(0) = 1/2 exactly (then GELU'(0) = 1/2, as
    PyTorch has it)."""
    coefs = [np.float32(c / _TAIL_K ** (len(_TAIL_POLY) - i)) for i, c in enumerate(_TAIL_POLY)]
    s0 = np.reciprocal(_INV_TAIL_K)  # s at x = 0, as the block computes it

    def at_zero(last: np.float32) -> np.float32:
        h = coefs[0] * s0
        for c in (*coefs[1:-1], last):
            h = (h + c) * s0
        return h

    last = coefs[-1]
    for _ in range(64):
        value = at_zero(last)
        if value == np.float32(0.5):
            return (*coefs[:-1], last)
        last = np.nextafter(last, np.float32(np.inf if value < 0.5 else -np.inf))
    raise AssertionError("no float32 constant term gives Phi(0) = 1/2")  # pragma: no cover


_TAIL_POLY_S = _tail_poly_s()


def _gelu_fitted_block(x, y, d, scratch):
    """float32 NumPy form of :func:`_gelu_erf_block`: Phi from the fitted tail (see
    ``_TAIL_POLY``), in place in four scratch rows. scipy's erf is a scalar loop: for the
    9.6M float32 activations of an iFormer-S stage-1 MLP, GELU and its slope take ~140 ms
    with it and ~47 ms with this.

    Every line is one pass over the block: 28 for GELU, 31 with its slope.
    """
    n = x.shape[0]
    a, e, h = scratch[0, :n], scratch[1, :n], scratch[2, :n]
    np.abs(x, out=a)
    np.add(a, _INV_TAIL_K, out=h)
    np.reciprocal(h, out=e)  # s = 1 / (1/k + |x|)
    np.multiply(e, _TAIL_POLY_S[0], out=h)
    for c in _TAIL_POLY_S[1:]:  # Horner: h = Q(s)
        h += c
        h *= e
    np.multiply(a, a, out=e)
    e *= np.float32(-0.5)
    np.exp(e, out=e)  # e = exp(-x^2 / 2)
    h *= e  # h = Phi(-|x|)
    # Phi(x) = h for x < 0 and 1 - h for x >= 0, as h + [x >= 0] (1 - 2h): exactly h in the
    # tail, where GELU(x) = x h is tiny (1 + erf(x / sqrt 2) would cancel there). Branch-free
    # arithmetic: NumPy's copysign, where, heaviside and masked copies are 5-30 times slower
    # per element than a multiply.
    cdf, step = a, scratch[3, :n]
    np.greater_equal(x, np.float32(0.0), out=step)  # [x >= 0] as 0.0 / 1.0
    np.multiply(h, np.float32(-2.0), out=cdf)
    cdf += np.float32(1.0)
    cdf *= step
    cdf += h
    np.multiply(x, cdf, out=y)
    if d is not None:
        np.multiply(x, e, out=d)
        d *= np.float32(_INV_SQRT_2PI)
        d += cdf  # Phi(x) + x phi(x)


def _gelu_tanh_block(x, y, d):
    """y = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3);
    d = (1 + tanh u)/2 + x/2 (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    xp = _xp()
    x2 = x * x
    th = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x2))
    half = 0.5 * (1.0 + th)
    xp.multiply(x, half, out=y)
    if d is not None:
        du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x2)
        du *= 1.0 - th * th
        du *= 0.5 * x
        xp.add(half, du, out=d)


# On a GPU the erf form above is a dozen elementwise kernels, each reading and writing the
# whole array; this one kernel reads x once and writes GELU(x) and its slope (conventions:
# mini_iformer.ops._cuda). Phi(x) is written erfc(-x / sqrt 2) / 2, which keeps its relative
# accuracy for very negative x, where 1 + erf(x / sqrt 2) would cancel.
_GELU_SOURCE = r"""
extern "C" __global__ void gelu_forward(
        const T* x, T* y, T* d, index_t n, index_t tanh_form, index_t need_slope) {
    const T k = (T)0.7978845608028654, c = (T)0.044715;        // sqrt(2/pi)
    GRID_STRIDE_LOOP(i, n) {
        T v = x[i], cdf, slope;
        if (tanh_form) {
            T th = tanh(k * (v + c * v * v * v));
            cdf = (T)0.5 * ((T)1 + th);
            slope = cdf + (T)0.5 * v * ((T)1 - th * th) * k * ((T)1 + (T)3 * c * v * v);
        } else {
            cdf = (T)0.5 * erfc(-v * (T)0.7071067811865476);
            slope = cdf + v * exp((T)-0.5 * v * v) * (T)0.3989422804014327;  // + x phi(x)
        }
        y[i] = v * cdf;
        if (need_slope) d[i] = slope;
    }
}
"""
_GELU_FORWARD = _cuda.Kernel("gelu_forward", _GELU_SOURCE)


class GELU(Function):
    """GELU(x) = x Phi(x), Phi the standard normal CDF (or its tanh approximation);
    dx = g * GELU'(x),  GELU'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi).

    Forward computes GELU'(x) alongside GELU(x) (it shares every intermediate) and saves only
    that slope, so backward is a single multiplication. On NumPy the work is done in blocks
    that stay in the cache, on all cores (:mod:`mini_iformer.ops._blocks`); float32
    uses the fitted tail described at ``_TAIL_POLY`` instead of scipy's erf; float64 uses
    ``backend.erf``. On a GPU one kernel (``gelu_forward`` above) does it all in one pass.
    """

    name = "gelu"

    def forward(self, x, approximate):
        xp = _xp()
        flat = xp.ascontiguousarray(x).reshape(-1)
        y = xp.empty_like(flat)
        d = xp.empty_like(flat) if self.needs_input_grad[0] else None
        if _cuda.use_kernels(x):
            _GELU_FORWARD(flat.size, flat, y, y if d is None else d, flat.size,
                          int(approximate == "tanh"), int(d is not None), dtype=flat.dtype)
            self.slope = d.reshape(x.shape) if d is not None else None
            return y.reshape(x.shape)
        on_numpy = backend.array_backend(x) == "numpy"
        fitted = on_numpy and approximate == "none" and x.dtype == np.float32

        def block(s, e):  # one cache-sized block of flat[s:e]
            db = d[s:e] if d is not None else None
            if approximate == "tanh":
                _gelu_tanh_block(flat[s:e], y[s:e], db)
            elif fitted:
                _gelu_fitted_block(flat[s:e], y[s:e], db, _scratch(4, e - s))
            else:
                _gelu_erf_block(flat[s:e], y[s:e], db)

        for_each_block(flat.size, 1, block, flat)
        self.slope = d.reshape(x.shape) if d is not None else None
        return y.reshape(x.shape)

    def backward(self, g):
        return g * self.slope


@register_op("gelu")
def gelu(input: Any, approximate: str = "none") -> Tensor:  # noqa: A002
    """Gaussian error linear unit, like ``torch.nn.functional.gelu``: ``x * Phi(x)`` with the
    exact erf form (``approximate="none"``, what iFormer uses) or the tanh approximation
    (``approximate="tanh"``)."""
    _shape(input, "input", "gelu")
    if np.dtype(input.dtype).kind != "f":
        raise TypeError(f"gelu: input must be a floating-point tensor, got {input.dtype}")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(input, approximate=approximate)


# =============================================================================================
# scaled_dot_product_attention
# =============================================================================================
class ScaledDotProductAttention(Function):
    """out = A' V,  A = softmax(S) over the keys,  S = scale * Q K^T + M,  A' = A * keep.

    Shapes: Q (..., L, E), K (..., S, E), V (..., S, Ev), out (..., L, Ev); M (optional, an
    additive mask broadcast to (..., L, S)); keep (optional) the attention-dropout mask, 0 or
    1/(1-p). Backward:

        dV = A'^T g        dA = (g V^T) * keep        dS = A * (dA - sum(dA * A, keys))
        dQ = scale * dS K  dK = scale * dS^T Q        dM = dS

    The scale is applied to Q (L x E numbers) rather than to S (L x S numbers); the softmax is
    done in place in the score array, which backward keeps as A.
    """

    name = "scaled_dot_product_attention"

    def forward(self, q, k, v, mask, keep, scale):
        xp = _xp()
        need_q, need_k, need_v, need_m = self.needs_input_grad[:4]
        qs = q * scale
        s = qs @ xp.swapaxes(k, -1, -2)
        if mask is not None:
            s += mask
        s -= s.max(axis=-1, keepdims=True)
        xp.exp(s, out=s)
        # one reciprocal per row, then multiply: faster than dividing every score
        s *= (1.0 / xp.einsum("...ij->...i", s))[..., None]
        a = s
        a_drop = a * keep if keep is not None else a
        out = a_drop @ v
        need_scores = need_q or need_k or need_m
        self.a = a if need_scores or need_v else None
        self.keep = keep
        self.v = v if need_scores else None
        self.k = k if need_q else None
        self.qs = qs if need_k else None
        self.scale = scale
        return out

    def backward(self, g):
        xp = _xp()
        need_q, need_k, need_v, need_m = self.needs_input_grad[:4]
        a, keep = self.a, self.keep
        dq = dk = dv = ds = None
        if need_v:
            a_drop = a * keep if keep is not None else a
            dv = xp.swapaxes(a_drop, -1, -2) @ g
        if need_q or need_k or need_m:
            ds = g @ xp.swapaxes(self.v, -1, -2)  # dA' ...
            if keep is not None:
                ds *= keep  # ... dA
            ds -= xp.einsum("...ij,...ij->...i", ds, a)[..., None]
            ds *= a  # dS = A * (dA - sum(dA * A))
            if need_q:
                dq = (ds @ self.k) * self.scale
            if need_k:
                dk = xp.swapaxes(ds, -1, -2) @ self.qs
        return dq, dk, dv, (ds if need_m else None), None


@register_op("scaled_dot_product_attention")
def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Softmax attention, like ``torch.nn.functional.scaled_dot_product_attention``.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); leading axes
    broadcast. ``scale`` defaults to 1/sqrt(E). ``attn_mask``: boolean (True = may attend) or
    additive float, broadcastable to (..., L, S); ``is_causal``: query i attends to keys
    0..i. A row that may attend to no key gives NaN, as in PyTorch's reference formula.
    ``dropout_p > 0`` drops attention weights (survivors scaled by 1/(1-p)) with a mask
    drawn from ``generator``; like PyTorch, the caller passes ``dropout_p=0`` in evaluation.
    """
    op = "scaled_dot_product_attention"
    shapes = [_shape(t, name, op) for t, name in ((query, "query"), (key, "key"), (value, "value"))]
    q_shape, k_shape, v_shape = shapes
    if min(len(s) for s in shapes) < 2:
        raise ValueError(
            f"{op}: query, key and value need at least 2 dimensions (..., tokens, features), "
            f"got shapes {q_shape}, {k_shape} and {v_shape}"
        )
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(
            f"{op}: query of shape {q_shape} and key of shape {k_shape} must have the same "
            f"feature size (last axis)"
        )
    if k_shape[-2] != v_shape[-2]:
        raise ValueError(
            f"{op}: key of shape {k_shape} and value of shape {v_shape} must have the same "
            f"number of tokens (second-to-last axis)"
        )
    try:
        batch = np.broadcast_shapes(q_shape[:-2], k_shape[:-2], v_shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: the leading axes of query {q_shape}, key {k_shape} and value {v_shape} "
            "cannot be broadcast together"
        ) from None
    p = _check_probability(dropout_p, "dropout_p", op)
    scores_shape = batch + (q_shape[-2], k_shape[-2])
    dtype = np.result_type(query.dtype, key.dtype, value.dtype)
    if attn_mask is not None and is_causal:
        raise ValueError(f"{op}: give either attn_mask or is_causal=True, not both")
    mask = attn_mask
    if is_causal:
        mask = np.tril(np.ones(scores_shape[-2:], dtype=bool))
    if mask is not None:
        m_shape = _shape(mask, "attn_mask", op)
        try:
            grown = np.broadcast_shapes(m_shape, scores_shape) != scores_shape
        except ValueError:
            grown = True
        if grown:
            raise ValueError(
                f"{op}: attn_mask of shape {m_shape} does not broadcast to the attention "
                f"scores' shape {scores_shape} (query {q_shape}, key {k_shape})"
            )
        if mask.dtype == bool:  # True: may attend -> 0, False -> -inf
            host = np.where(backend.to_numpy(_buffer(mask)), 0.0, -np.inf).astype(dtype)
            mask = backend.asarray(host)
    if scale is None:
        scale = 1.0 / math.sqrt(q_shape[-1])
    keep = _keep_mask(scores_shape, p, dtype, generator, op) if p > 0 else None
    return ScaledDotProductAttention.apply(query, key, value, mask, keep, scale=float(scale))


# =============================================================================================
# dropout and drop_path
# =============================================================================================
class Dropout(Function):
    """y = x * keep,  dx = g * keep, where keep is 0 (dropped) or 1/(1-p) (kept): the
    expectation of y is x. The mask is drawn before the call and reused by backward."""

    name = "dropout"

    def forward(self, x, keep):
        self.keep = keep
        return x * keep

    def backward(self, g):
        return g * self.keep, None


class DropPath(Dropout):
    """Dropout of whole samples: keep has shape (N, 1, ..., 1), one draw per sample."""

    name = "drop_path"



@register_op("dropout")
def dropout(
    input: Any,  # noqa: A002
    p: float = 0.5,
    training: bool = True,
    *,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Zero each element with probability ``p`` and scale the survivors by 1/(1-p), like
    ``torch.nn.functional.dropout``; the identity when ``training`` is False or ``p == 0``.
    The mask comes from ``generator`` (same seed, same mask, on every backend)."""
    x_shape = _shape(input, "input", "dropout")
    p = _check_probability(p, "dropout probability p", "dropout")
    if not training or p == 0.0:
        return as_tensor(input)
    return Dropout.apply(input, _keep_mask(x_shape, p, input.dtype, generator, "dropout"))


@register_op("drop_path")
def drop_path(
    input: Any,  # noqa: A002
    p: float = 0.0,
    training: bool = False,
    *,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Stochastic depth: drop each *sample* (index of the first axis) of a residual branch
    with probability ``p`` and scale the kept ones by 1/(1-p); the identity in evaluation or
    when ``p == 0``. Used as ``x + drop_path(branch(x), p, training)``."""
    x_shape = _shape(input, "input", "drop_path")
    p = _check_probability(p, "drop_path probability p", "drop_path")
    if not training or p == 0.0:
        return as_tensor(input)
    if len(x_shape) == 0:
        raise ValueError("drop_path: input needs a batch axis, got a 0-d tensor")
    mask_shape = (x_shape[0],) + (1,) * (len(x_shape) - 1)
    return DropPath.apply(input, _keep_mask(mask_shape, p, input.dtype, generator, "drop_path"))


# =============================================================================================
# cross_entropy
# =============================================================================================
class CrossEntropy(Function):
    """Cross-entropy of logits z against a target distribution q, per item (row):

        log p = z - logsumexp(z)            (shifted by max z first: stable for any logits)
        loss  = -sum_c q_c log p_c
        q     = (1 - eps) * target + eps / C     (label smoothing eps; target one-hot for
                                                   class indices, or given probabilities)
        dz    = g * (softmax(z) * sum_c q_c - q),     dtarget = -g * (1 - eps) * log p

    with g = upstream / (number of items) for the mean. The class axis is axis 1 (axis 0 for
    a single item of shape (C,)); it is moved last and the items flattened to (M, C).
    """

    name = "cross_entropy"

    def forward(self, z, target, index_target, axis, smoothing, reduction):
        # Logits near float32's limits (+-3e38) overflow to -inf in ``z - max z`` and the loss
        # to inf, exactly as PyTorch's do (the gradient stays finite): the answer, not a fault
        # to warn about (a warning that the test suite, and some users, turn into an error).
        with np.errstate(over="ignore"):
            return self._forward(z, target, index_target, axis, smoothing, reduction)

    def _forward(self, z, target, index_target, axis, smoothing, reduction):
        xp = _xp()
        c = z.shape[axis]
        z2 = xp.moveaxis(z, axis, -1).reshape(-1, c)
        items = z2.shape[0]
        shifted = z2 - z2.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        if index_target:
            t = target.reshape(-1)
            picked = logp[xp.arange(items), t]
            loss = (1.0 - smoothing) * picked
            if smoothing:
                loss += (smoothing / c) * logp.sum(axis=1)
            loss = -loss
            q_sum = None
        else:
            t = xp.moveaxis(target, axis, -1).reshape(-1, c)
            q = (1.0 - smoothing) * t + smoothing / c if smoothing else t
            loss = -xp.einsum("ij,ij->i", q, logp)
            q_sum = q.sum(axis=1, keepdims=True)
        if any(self.needs_input_grad):
            self.logp, self.t, self.q_sum = logp, t, q_sum
            self.index_target, self.axis, self.smoothing, self.reduction = (
                index_target, axis, smoothing, reduction)
            self.z_shape = z.shape
        if reduction == "none":
            return loss.reshape(z.shape[:axis] + z.shape[axis + 1:])
        total = loss.sum()
        if reduction == "sum":
            return total
        return total / items if items else xp.asarray(np.nan, dtype=z.dtype)

    def _unflatten(self, m):
        shape = self.z_shape
        moved = shape[: self.axis] + shape[self.axis + 1:] + (shape[self.axis],)
        return _xp().moveaxis(m.reshape(moved), -1, self.axis)

    def backward(self, g):
        xp = _xp()
        need_z, need_t = self.needs_input_grad[:2]
        logp, t, eps = self.logp, self.t, self.smoothing
        c = logp.shape[1]
        if self.reduction == "none":
            gi = g.reshape(-1, 1)
        elif self.reduction == "sum":
            gi = g
        else:
            gi = g / max(logp.shape[0], 1)
        dz = dt = None
        if need_z:
            dz = xp.exp(logp)  # softmax
            if self.index_target:
                if eps:
                    dz -= eps / c
                dz[xp.arange(logp.shape[0]), t] -= 1.0 - eps
            else:
                dz *= self.q_sum
                dz -= (1.0 - eps) * t
                if eps:
                    dz -= eps / c
            dz *= gi
            dz = self._unflatten(dz)
        if need_t:
            dt = self._unflatten(-(1.0 - eps) * logp * gi)
        return dz, dt


@register_op("cross_entropy")
def cross_entropy(
    input: Any,  # noqa: A002
    target: Any,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between logits and a target, like ``torch.nn.functional.cross_entropy``.

    input: logits (N, C), (N, C, d1, ...) or (C,). target: class indices (integers, the shape
    of input without the class axis) or class probabilities (floats, input's shape: soft
    targets as made by Mixup/CutMix). ``label_smoothing`` mixes the target with the uniform
    distribution, (1 - eps) target + eps / C, for both kinds of target. ``reduction``:
    "mean" (over items), "sum" or "none". (PyTorch's ``weight`` and ``ignore_index`` are not
    supported: every index must be a class.)
    """
    op = "cross_entropy"
    z_shape = _shape(input, "input", op)
    if len(z_shape) == 0:
        raise ValueError(f"{op}: input must have shape (N, C, ...) or (C,), got shape {z_shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    eps = _check_probability(label_smoothing, "label_smoothing", op)
    axis = 0 if len(z_shape) == 1 else 1
    c = z_shape[axis]
    item_shape = z_shape[:axis] + z_shape[axis + 1:]
    if not (isinstance(target, Tensor) or backend.is_array(target)):
        target = np.asarray(target)
    t_shape, t_kind = tuple(target.shape), np.dtype(target.dtype).kind
    if t_kind in "iub":
        if t_kind == "b" or t_shape != item_shape:
            raise ValueError(
                f"{op}: target of class indices must be integers of shape {item_shape} for input "
                f"of shape {z_shape}, got {target.dtype} of shape {t_shape}"
            )
        t = backend.asarray(target.data if isinstance(target, Tensor) else target)
        if t.size:
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi >= c:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"{op}: target holds class index {bad}, outside [0, {c}) for input of shape "
                    f"{z_shape} ({c} classes)"
                )
        return CrossEntropy.apply(input, t, index_target=True, axis=axis, smoothing=eps,
                                  reduction=reduction)
    if t_kind != "f":
        raise TypeError(f"{op}: target must hold integers or floats, got {target.dtype}")
    if t_shape != z_shape:
        raise ValueError(
            f"{op}: target of class probabilities must have the input's shape {z_shape}, got "
            f"shape {t_shape} (class indices must be integers of shape {item_shape})"
        )
    if not isinstance(target, Tensor):
        target = backend.asarray(target)  # host data to the current backend
    return CrossEntropy.apply(input, target, index_target=False, axis=axis, smoothing=eps,
                              reduction=reduction)
