"""Every core operation, and the Tensor methods and operators that call them.

The operations live in one file per family (``elementwise``, ``reduce``, ``linalg``,
``shape``); this module gathers them and attaches them to :class:`~mini_iformer.Tensor`, so
that ``a + b``, ``x.sum(axis=1)`` and ``mi.sum(x, axis=1)`` are the same operation.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..autograd import Tensor
from .elementwise import (
    abs, add, astype, clip, div, erf, exp, log, maximum, minimum, mul, neg, pow, sigmoid, sqrt,
    sub, tanh, where,
)
from .linalg import matmul
from .reduce import log_softmax, max, mean, min, softmax, sum, var
from .shape import (
    broadcast_to, chunk, concatenate, expand, flatten, getitem, pad, permute, reshape, split,
    squeeze, stack, transpose, unsqueeze,
)

__all__ = [
    "abs", "add", "astype", "clip", "div", "erf", "exp", "log", "maximum", "minimum", "mul",
    "neg", "pow", "sigmoid", "sqrt", "sub", "tanh", "where", "matmul", "log_softmax", "max",
    "mean", "min", "softmax", "sum", "var", "broadcast_to", "chunk", "concatenate", "expand",
    "flatten", "getitem", "pad", "permute", "reshape", "split", "squeeze", "stack",
    "transpose", "unsqueeze",
]


def _compare(ufunc: str) -> Any:
    """A comparison operator: elementwise, returns a bool tensor outside any graph."""

    def compare(self: Tensor, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            other = other.data
        elif not (isinstance(other, (int, float, bool)) or backend.is_array(other)):
            return NotImplemented
        backend.common_backend([self.data, other], ufunc)
        return Tensor._make(getattr(backend.get_xp(), ufunc)(self.data, other))

    compare.__name__ = f"__{ufunc}__"
    return compare


def _swap(fn: Any) -> Any:
    def reflected(self: Tensor, other: Any) -> Tensor:
        return fn(other, self)

    return reflected


def _install() -> None:
    methods = {
        "__add__": add, "__radd__": _swap(add), "__sub__": sub, "__rsub__": _swap(sub),
        "__mul__": mul, "__rmul__": _swap(mul), "__truediv__": div, "__rtruediv__": _swap(div),
        "__pow__": pow, "__rpow__": _swap(pow), "__matmul__": matmul,
        "__rmatmul__": _swap(matmul), "__neg__": neg, "__getitem__": getitem,
        "__abs__": abs,
        "exp": exp, "log": log, "sqrt": sqrt, "tanh": tanh, "sigmoid": sigmoid, "erf": erf,
        "abs": abs, "clip": clip, "astype": astype, "sum": sum, "mean": mean, "max": max,
        "min": min, "var": var, "softmax": softmax, "log_softmax": log_softmax,
        "reshape": reshape, "permute": permute, "transpose": transpose,
        "broadcast_to": broadcast_to, "expand": expand, "squeeze": squeeze,
        "unsqueeze": unsqueeze, "flatten": flatten, "split": split, "chunk": chunk,
        "matmul": matmul, "maximum": maximum, "minimum": minimum, "pad": pad,
        "view": reshape,
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    for op, ufunc in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                      ("ge", "greater_equal"), ("eq", "equal"), ("ne", "not_equal")]:
        setattr(Tensor, f"__{op}__", _compare(ufunc))
    Tensor.T = property(lambda self: permute(self, *reversed(range(self.ndim))))


_install()
