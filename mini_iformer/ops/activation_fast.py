"""Fast forms of ``gelu``, each ``(forward, backward)`` with the contract of the reference in
``activation.py``, tested equal to it.

All of them compute GELU'(x) alongside GELU(x) in forward (the two share every intermediate)
and save only that slope, so backward is a single multiplication.

* **blocked** (NumPy): the reference's formulas in cache-sized blocks on all cores
  (:func:`~mini_iformer.runtime.for_each_block`), into preallocated outputs.
* **fitted-tail** (NumPy, float32, exact GELU): the same blocks, with Phi from a fitted
  rational tail instead of scipy's ``erf``, a scalar loop: for the 9.6M float32 activations of
  an iFormer-S stage-1 MLP, GELU and its slope take ~140 ms with ``erf`` and ~47 ms with this.
* **cuda**: one kernel (``activation.cu``) that reads x once and writes GELU(x) and its slope.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .. import backend
from ..runtime import for_each_block
from .cuda import Kernel

__all__ = [
    "blocked_forward",
    "fitted_forward",
    "fitted_supported",
    "cuda_forward",
    "slope_backward",
]

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
    -0.06767420592205974,
    0.2301244128768065,
    -0.17558533625537148,
    0.20426010144636578,
    0.023604672106030358,
    0.10061377334359671,
    0.0914776542167307,
    0.09317892419217423,
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
    """y = x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2, and d = Phi(x) + x phi(x)."""
    xp = backend.array_module(x)
    cdf = backend.erfc(x * -_SQRT_HALF)  # 1 + erf(x / sqrt 2), without its cancellation
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
    xp = backend.array_module(x)
    x2 = x * x
    th = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x2))
    half = 0.5 * (1.0 + th)
    xp.multiply(x, half, out=y)
    if d is not None:
        du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x2)
        du *= 1.0 - th * th
        du *= 0.5 * x
        xp.add(half, du, out=d)


def _run_blocks(ctx, x, approximate, block_fn):
    xp = backend.array_module(x)
    flat = xp.ascontiguousarray(x).reshape(-1)
    y = xp.empty_like(flat)
    d = xp.empty_like(flat) if ctx.needs_input_grad[0] else None
    for_each_block(
        flat.size, 1, lambda s, e: block_fn(flat[s:e], y[s:e], None if d is None else d[s:e]), flat
    )
    ctx.slope = d.reshape(x.shape) if d is not None else None
    return y.reshape(x.shape)


def blocked_forward(ctx, x, approximate):
    """GELU and its slope in cache-sized blocks on all cores, by the reference's formulas."""
    block = _gelu_tanh_block if approximate == "tanh" else _gelu_erf_block
    return _run_blocks(ctx, x, approximate, block)


def fitted_supported(x, approximate) -> bool:
    return approximate == "none" and x.dtype == np.float32 and backend.array_module(x) is np


def fitted_forward(ctx, x, approximate):
    """Exact GELU in float32, in blocks, with Phi from a fitted rational tail (``_TAIL_POLY``)
    instead of ``erf``."""
    return _run_blocks(
        ctx,
        x,
        approximate,
        lambda xb, yb, db: _gelu_fitted_block(xb, yb, db, _scratch(4, xb.shape[0])),
    )


GELU_FORWARD = Kernel("gelu_forward", "activation.cu")


def cuda_forward(ctx, x, approximate):
    """GELU and its slope by one kernel."""
    xp = backend.array_module(x)
    flat = xp.ascontiguousarray(x).reshape(-1)
    y = xp.empty_like(flat)
    d = xp.empty_like(flat) if ctx.needs_input_grad[0] else None
    GELU_FORWARD(
        flat.size,
        flat,
        y,
        y if d is None else d,
        flat.size,
        int(approximate == "tanh"),
        int(d is not None),
        dtype=flat.dtype,
    )
    ctx.slope = d.reshape(x.shape) if d is not None else None
    return y.reshape(x.shape)


def slope_backward(ctx, g):
    """dx = g * GELU'(x), the slope forward kept."""
    return g * ctx.slope
