"""``gelu``, the Gaussian error linear unit, like ``torch.nn.functional.gelu``.

    GELU(x) = x Phi(x),    Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2
    GELU'(x) = Phi(x) + x phi(x),    phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

or, with ``approximate="tanh"``, Phi(x) ~ (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715
x^3). iFormer uses the exact form.

Phi is the standard normal CDF, computed here as ``erfc(-x / sqrt 2) / 2``: the same number,
but ``1 + erf`` cancels for very negative x (below about -5.5 in float32 it is 0), where
``erfc`` keeps its relative accuracy.

**The reference** (:func:`gelu_forward`, :func:`gelu_backward`) is these formulas. **The fast
forms** (``activation_fast.py``): the same in cache-sized blocks on all cores, a fitted tail
for float32 in place of scipy's ``erf`` loop, and one CUDA kernel (``activation.cu``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor, register_op
from . import activation_fast as fast
from . import cuda
from .args import shape_of
from .registry import Dispatch, Implementation, register

__all__ = ["gelu", "gelu_forward", "gelu_backward"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_forward(ctx, x, approximate):
    """y = x Phi(x), with Phi(x) = erfc(-x / sqrt 2) / 2 (or the tanh approximation)."""
    xp = backend.array_module(x)
    if approximate == "tanh":
        phi_cdf = 0.5 * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
    else:
        phi_cdf = 0.5 * backend.erfc(-x / math.sqrt(2.0))
    ctx.x, ctx.approximate = x, approximate
    return x * phi_cdf


def gelu_backward(ctx, g):
    """dx = g * (Phi(x) + x phi(x)); for the tanh form the derivative of
    x (1 + tanh(u)) / 2, which is (1 + tanh u) / 2 + x/2 (1 - tanh(u)^2) du/dx."""
    xp = backend.array_module(g)
    x = ctx.x
    if ctx.approximate == "tanh":
        th = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
        du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x**2)
        return g * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th**2) * du)
    phi_cdf = 0.5 * backend.erfc(-x / math.sqrt(2.0))
    phi_pdf = xp.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    return g * (phi_cdf + x * phi_pdf)


class GELU(Dispatch):
    name = "gelu"


@register_op("gelu")
def gelu(input: Any, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, like ``torch.nn.functional.gelu``: ``x * Phi(x)`` with the
    exact erf form (``approximate="none"``, what iFormer uses) or the tanh approximation
    (``approximate="tanh"``)."""
    shape_of(input, "input", "gelu")
    if np.dtype(input.dtype).kind != "f":
        raise TypeError(f"gelu: input must be a floating-point tensor, got {input.dtype}")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(input, approximate=approximate)


IMPLEMENTATIONS = register(
    "gelu",
    [
        Implementation("reference", gelu_forward, gelu_backward),
        Implementation("cuda", fast.cuda_forward, fast.slope_backward, supports=cuda.supports),
        Implementation(
            "fitted-tail", fast.fitted_forward, fast.slope_backward, supports=fast.fitted_supported
        ),
        Implementation("blocked", fast.blocked_forward, fast.slope_backward),
    ],
)
