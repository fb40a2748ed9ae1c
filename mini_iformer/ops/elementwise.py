"""Elementwise operations: arithmetic, exp/log and friends, comparisons-with-gradient.

All broadcast like NumPy. A backward may return a gradient of the output's (broadcast)
shape: the engine sums it back to each input's shape (``backprop.reduce_to``), so the
functions here only state the calculus.

Notation in the docstrings: ``g`` is the gradient of the loss with respect to the output
``y``; each backward returns ``dL/dinput = g * dy/dinput``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, numbers_as_arrays, register_op

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "pow",
    "exp",
    "log",
    "sqrt",
    "tanh",
    "sigmoid",
    "erf",
    "abs",
    "maximum",
    "minimum",
    "where",
    "clip",
    "astype",
]


def _xp(*arrays: Any) -> Any:
    """The array module of an operation's arrays (numbers are ignored)."""
    return backend.array_module(*arrays)


# -- arithmetic --------------------------------------------------------------------------------
class Add(Function):
    """y = a + b;  da = g, db = g."""

    name = "add"

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    """y = a - b;  da = g, db = -g."""

    name = "sub"

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b;  da = g * b, db = g * a."""

    name = "mul"

    def forward(self, a, b):
        need_a, need_b = self.needs_input_grad
        self.b = b if need_a else None  # da needs b, db needs a
        self.a = a if need_b else None
        return a * b

    def backward(self, g):
        da = g * self.b if self.needs_input_grad[0] else None
        db = g * self.a if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """y = a / b;  da = g / b, db = -g * a / b**2 = -g * y / b.

    True division: integers divided by integers give float32, as in PyTorch (NumPy would give
    float64)."""

    name = "div"

    def forward(self, a, b):
        y = a / b
        if _kind(a) not in "fc" and _kind(b) not in "fc":
            y = y.astype(np.float32)
        self.b = b if any(self.needs_input_grad) else None
        self.y = y if self.needs_input_grad[1] else None
        return y

    def backward(self, g):
        da = g / self.b if self.needs_input_grad[0] else None
        db = -g * self.y / self.b if self.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    """y = -x;  dx = -g."""

    name = "neg"

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Function):
    """y = a ** b;  da = g * b * a**(b-1), db = g * y * log(a), with PyTorch's values at the
    special points: da = 0 where b = 0 (also at a = 0), db = 0 where a = 0 and b >= 0.
    0 ** negative is inf, as in PyTorch, without a warning."""

    name = "pow"

    def forward(self, a, b):
        self.a, self.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):
            self.y = a**b
        return self.y

    def backward(self, g):
        xp = _xp(g)
        a, b = self.a, self.b
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                da = xp.where(b == 0, 0.0, g * b * _power(xp, a, b - 1)).astype(g.dtype, copy=False)
            if self.needs_input_grad[1]:
                flat = (a == 0) & (b >= 0)
                db = xp.where(flat, 0.0, g * self.y * xp.log(a)).astype(g.dtype, copy=False)
        return da, db


def _power(xp: Any, a: Any, p: Any) -> Any:
    """a ** p; for a Python number p = -0.5 as 1 / sqrt(a), as PyTorch computes it (NaN at
    -inf, where the C library's pow gives 0)."""
    if isinstance(p, float) and p == -0.5:
        return 1 / xp.sqrt(a)
    return a**p


def _kind(v: Any) -> str:
    """'b', 'i', 'f' or 'c': the kind of a Tensor's, an array's or a Python number's dtype."""
    return np.dtype(getattr(v, "dtype", type(v))).kind


def _scaled(b: Any, alpha: Any, a: Any, op: str) -> Any:
    """``alpha * b`` for ``add``/``sub``'s ``alpha`` (PyTorch's rules for its type)."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Number):
        raise TypeError(f"{op}: alpha must be a number, got {alpha!r}")
    if isinstance(alpha, float) and _kind(a) in "biu" and _kind(b) in "biu":
        raise ValueError(f"{op}: for integer inputs, alpha must not be a float, got {alpha!r}")
    return b if alpha == 1 else mul(b, alpha)


@register_op("add")
def add(a: Any, b: Any, *, alpha: Any = 1) -> Tensor:
    """Elementwise ``a + alpha * b`` with broadcasting, like ``torch.add``."""
    return Add.apply(a, _scaled(b, alpha, a, "add"))


@register_op("sub")
def sub(a: Any, b: Any, *, alpha: Any = 1) -> Tensor:
    """Elementwise ``a - alpha * b`` with broadcasting, like ``torch.sub``."""
    return Sub.apply(a, _scaled(b, alpha, a, "sub"))


@register_op("mul")
def mul(a: Any, b: Any) -> Tensor:
    """Elementwise ``a * b`` with broadcasting."""
    return Mul.apply(a, b)


class RoundedDiv(Function):
    """y = trunc(a / b) or floor(a / b) (integers stay integers);  no gradient: the result is
    piecewise constant, and PyTorch's gradient is 0 for both inputs."""

    name = "div"

    def forward(self, a, b, rounding_mode):
        xp = _xp(a, b)
        if _kind(a) in "biu" and _kind(b) in "biu":  # exact integer arithmetic
            q = xp.floor_divide(a, b)
            if rounding_mode == "trunc":  # floor rounds towards -inf: step back up
                q = q + ((q < 0) & (q * b != a))
            return q
        if rounding_mode == "trunc":
            return xp.trunc(a / b)
        # not floor(a / b): Python's floor division, as PyTorch's, rounds the exact quotient
        # (5 // -inf is -1, inf // 2 is NaN), which a rounded a / b can miss
        return xp.floor_divide(a, b)

    def backward(self, g):
        xp = _xp(g)
        return (
            xp.zeros_like(g) if self.needs_input_grad[0] else None,
            xp.zeros_like(g) if self.needs_input_grad[1] else None,
            None,
        )


@register_op("div")
def div(a: Any, b: Any, *, rounding_mode: str | None = None) -> Tensor:
    """Elementwise ``a / b`` with broadcasting, like ``torch.div``: true division by default;
    ``rounding_mode="trunc"`` rounds towards zero, ``"floor"`` towards -inf (integer inputs
    then give integers)."""
    if rounding_mode is None:
        return Div.apply(a, b)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(
            f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}"
        )
    return RoundedDiv.apply(a, b, rounding_mode=rounding_mode)


@register_op("neg")
def neg(x: Any) -> Tensor:
    """Elementwise ``-x``."""
    return Neg.apply(x)


@register_op("pow")
def pow(a: Any, b: Any) -> Tensor:  # noqa: A001 - the operator's name
    """Elementwise ``a ** b``; either side may be a tensor or a number."""
    return Pow.apply(a, b)


# -- unary functions ---------------------------------------------------------------------------
class Exp(Function):
    """y = exp(x);  dx = g * y."""

    name = "exp"

    def forward(self, x):
        self.y = _xp(x).exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    """y = log(x);  dx = g / x."""

    name = "log"

    def forward(self, x):
        self.x = x
        return _xp(x).log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    """y = sqrt(x);  dx = g / (2 y)."""

    name = "sqrt"

    def forward(self, x):
        self.y = _xp(x).sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


class Tanh(Function):
    """y = tanh(x);  dx = g * (1 - y**2)."""

    name = "tanh"

    def forward(self, x):
        self.y = _xp(x).tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)), computed without overflow;  dx = g * y * (1 - y)."""

    name = "sigmoid"

    def forward(self, x):
        xp = _xp(x)
        # exp of a non-positive number only: e = exp(-|x|); y = 1/(1+e) for x >= 0, e/(1+e) else.
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Erf(Function):
    """y = erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt;  dx = g * 2/sqrt(pi) * exp(-x^2)."""

    name = "erf"

    def forward(self, x):
        self.x = x
        return backend.erf(x)

    def backward(self, g):
        two_over_sqrt_pi = 1.1283791670955126
        return g * (two_over_sqrt_pi * _xp(g).exp(-self.x * self.x))


class Abs(Function):
    """y = |x|;  dx = g * sign(x)  (0 at x = 0 and at NaN, as in PyTorch)."""

    name = "abs"

    def forward(self, x):
        self.x = x
        return _xp(x).abs(x)

    def backward(self, g):
        x = self.x
        return g * (x > 0) - g * (x < 0)  # sign(x), with 0 at NaN


@register_op("exp")
def exp(x: Any) -> Tensor:
    """Elementwise e**x."""
    return Exp.apply(x)


@register_op("log")
def log(x: Any) -> Tensor:
    """Elementwise natural logarithm."""
    return Log.apply(x)


@register_op("sqrt")
def sqrt(x: Any) -> Tensor:
    """Elementwise square root."""
    return Sqrt.apply(x)


@register_op("tanh")
def tanh(x: Any) -> Tensor:
    """Elementwise hyperbolic tangent."""
    return Tanh.apply(x)


@register_op("sigmoid")
def sigmoid(x: Any) -> Tensor:
    """Elementwise logistic function 1 / (1 + e**-x), stable for large |x|."""
    return Sigmoid.apply(x)


@register_op("erf")
def erf(x: Any) -> Tensor:
    """Elementwise error function (the heart of the exact GELU)."""
    return Erf.apply(x)


@register_op("abs")
def abs(x: Any) -> Tensor:  # noqa: A001 - the operator's name
    """Elementwise absolute value."""
    return Abs.apply(x)


# -- selections --------------------------------------------------------------------------------
class Maximum(Function):
    """y = max(a, b);  the gradient goes to the larger input, split in half on ties, and to
    both where either is NaN (NaN is neither larger nor smaller), as in PyTorch."""

    name = "maximum"
    pick = "greater"

    def forward(self, a, b):
        xp = _xp(a, b)
        self.a, self.b = a, b
        return xp.maximum(a, b) if self.pick == "greater" else xp.minimum(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        a_loses, b_loses = (a < b, a > b) if self.pick == "greater" else (a > b, a < b)
        g_tie = g * (1.0 - 0.5 * (a == b))  # g, halved on ties
        da = g_tie * ~a_loses if self.needs_input_grad[0] else None
        db = g_tie * ~b_loses if self.needs_input_grad[1] else None
        return da, db


class Minimum(Maximum):
    """y = min(a, b);  the gradient goes to the smaller input, split in half on ties, and to
    both where either is NaN."""

    name = "minimum"
    pick = "less"


class Where(Function):
    """y = x where cond else other;  dx = g * cond, dother = g * (not cond).  cond gets none."""

    name = "where"

    def forward(self, cond, x, other):
        xp = _xp(cond, x, other)
        self.cond = xp.asarray(cond, dtype=bool)
        return xp.where(self.cond, x, other)

    def backward(self, g):
        xp = _xp(g)
        zero = xp.zeros((), dtype=g.dtype)
        dx = xp.where(self.cond, g, zero) if self.needs_input_grad[1] else None
        dother = xp.where(self.cond, zero, g) if self.needs_input_grad[2] else None
        return None, dx, dother


class Clip(Function):
    """y = min(max(x, lo), hi), PyTorch's clamp: with lo > hi, every output is hi.

    The gradient goes to whichever of x, lo and hi the output is:

        dx  = g where lo <= x <= hi
        dlo = g where x < lo (and lo < hi, when there is a hi)
        dhi = g where x > hi (or hi < lo, when there is a lo)

    The bounds may be numbers or tensors (broadcast against x); tensor bounds get gradients.
    """

    name = "clip"

    def forward(self, x, lo, hi):
        xp = _xp(x, lo, hi)
        y = x
        if lo is not None:
            y = xp.maximum(y, lo)
        if hi is not None:
            y = xp.minimum(y, hi)
        self.x, self.lo, self.hi = x, lo, hi
        return y

    def backward(self, g):
        x, lo, hi = self.x, self.lo, self.hi
        above_lo = True if lo is None else x >= lo
        below_hi = True if hi is None else x <= hi
        dx = g * (above_lo & below_hi)
        dlo = dhi = None
        if self.needs_input_grad[1]:
            dlo = g * ((x < lo) & (True if hi is None else lo < hi))
        if self.needs_input_grad[2]:
            dhi = g * ((x > hi) | (False if lo is None else hi < lo))
        return dx, dlo, dhi


class AsType(Function):
    """y = x converted to another dtype;  dx = g converted back (the engine casts)."""

    name = "astype"

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, g):
        return g


@register_op("maximum")
def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise larger of ``a`` and ``b``, like ``torch.maximum`` (where either is NaN, the
    result is NaN and both get the gradient). Unlike ``torch.maximum``, a Python number is
    taken too, as by ``torch.clamp``."""
    return Maximum.apply(a, b)


@register_op("minimum")
def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise smaller of ``a`` and ``b``, like ``torch.minimum`` (and, unlike it, a
    Python number is taken too)."""
    return Minimum.apply(a, b)


@register_op("where")
def where(condition: Any, x: Any, other: Any) -> Tensor:
    """``x`` where ``condition`` is true, else ``other`` (all three broadcast together). Two
    Python numbers give PyTorch's dtype for their tensors (float32 for a float)."""
    if isinstance(condition, Tensor):
        condition = condition.data
    if all(isinstance(v, numbers.Number) for v in (x, other)):
        x, other = numbers_as_arrays([x, other])
    return Where.apply(condition, x, other)


@register_op("clip")
def clip(x: Any, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to ``[min, max]``, like ``torch.clamp``: either bound may be None, a
    number or a tensor (broadcast against ``x``; a tensor bound that requires grad gets its
    gradient). With min > max every output is max, as in PyTorch."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return Clip.apply(x, min, max)


@register_op("astype")
def astype(x: Any, dtype: Any) -> Tensor:
    """Convert to ``dtype``; the gradient is converted back to the input's dtype."""
    return AsType.apply(x, dtype=np.dtype(dtype))
