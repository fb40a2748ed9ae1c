"""Every operation, one file per family, and the Tensor methods and operators that call them.

Where the math lives: each operation's *reference* implementation, forward and backward side
by side in plain array expressions (``conv.py``: ``conv2d_forward``/``conv2d_backward``;
``norm.py``: ``layer_norm_forward``/``layer_norm_backward``; ...). Where the speed lives: its
fast forms, in the ``*_fast.py``, ``conv_*.py`` and ``*_cuda.py`` files next to it, with the
CUDA kernels in ``.cu`` files. :mod:`.registry` holds the mechanism that picks one per call:

* :func:`implementations` (``"conv2d"``) -> {name: Implementation}, "reference" always there;
* ``with use("reference"):`` computes every operation in its reference form (the
  environment variable ``MINI_IFORMER_IMPL=reference`` does it for a whole process);
  ``use(conv2d="im2col")`` forces one operation's implementation.

The core operations (``elementwise``, ``reduce``, ``linalg``, ``shape``) are gathered here and
attached to :class:`~mini_iformer.Tensor`, so that ``a + b``, ``x.sum(axis=1)`` and
``mi.sum(x, axis=1)`` are the same operation; the neural-network ones (``conv``, ``pool``,
``resize``, ``linear``, ``norm``, ``activation``, ``attention``, ``dropout``, ``loss``) are
reached through :mod:`mini_iformer.functional`.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..autograd import Tensor
from .elementwise import (
    abs,
    add,
    astype,
    clip,
    div,
    erf,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from .linalg import matmul
from .reduce import log_softmax, max, mean, min, softmax, sum, var
from .registry import implementations, use  # noqa: F401 - the public doors, not star-exported
from .shape import (
    broadcast_to,
    chunk,
    concatenate,
    expand,
    flatten,
    getitem,
    pad,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    unsqueeze,
)

__all__ = [  # what ``from mini_iformer.ops import *`` (and so ``mini_iformer``) exports
    "abs",
    "add",
    "astype",
    "clip",
    "div",
    "erf",
    "exp",
    "log",
    "maximum",
    "minimum",
    "mul",
    "neg",
    "pow",
    "sigmoid",
    "sqrt",
    "sub",
    "tanh",
    "where",
    "matmul",
    "log_softmax",
    "max",
    "mean",
    "min",
    "softmax",
    "sum",
    "var",
    "broadcast_to",
    "chunk",
    "concatenate",
    "expand",
    "flatten",
    "getitem",
    "pad",
    "permute",
    "reshape",
    "split",
    "squeeze",
    "stack",
    "transpose",
    "unsqueeze",
]


def _compare(ufunc: str) -> Any:
    """A comparison operator: elementwise, returns a bool tensor outside any graph."""

    def compare(self: Tensor, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            other = other.data
        elif not (isinstance(other, (int, float, bool)) or backend.is_array(other)):
            return NotImplemented
        backend.common_backend([self.data, other], ufunc)
        xp = backend.array_module(self.data, other)
        return Tensor._make(getattr(xp, ufunc)(self.data, other))

    compare.__name__ = f"__{ufunc}__"
    return compare


def _swap(fn: Any) -> Any:
    def reflected(self: Tensor, other: Any) -> Tensor:
        return fn(other, self)

    return reflected


def _install() -> None:
    methods = {
        "__add__": add,
        "__radd__": _swap(add),
        "__sub__": sub,
        "__rsub__": _swap(sub),
        "__mul__": mul,
        "__rmul__": _swap(mul),
        "__truediv__": div,
        "__rtruediv__": _swap(div),
        "__pow__": pow,
        "__rpow__": _swap(pow),
        "__matmul__": matmul,
        "__rmatmul__": _swap(matmul),
        "__neg__": neg,
        "__getitem__": getitem,
        "__abs__": abs,
        "exp": exp,
        "log": log,
        "sqrt": sqrt,
        "tanh": tanh,
        "sigmoid": sigmoid,
        "erf": erf,
        "abs": abs,
        "clip": clip,
        "astype": astype,
        "sum": sum,
        "mean": mean,
        "max": max,
        "min": min,
        "var": var,
        "softmax": softmax,
        "log_softmax": log_softmax,
        "reshape": reshape,
        "permute": permute,
        "transpose": transpose,
        "broadcast_to": broadcast_to,
        "expand": expand,
        "squeeze": squeeze,
        "unsqueeze": unsqueeze,
        "flatten": flatten,
        "split": split,
        "chunk": chunk,
        "matmul": matmul,
        "maximum": maximum,
        "minimum": minimum,
        "pad": pad,
        "view": reshape,
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    for op, ufunc in [
        ("lt", "less"),
        ("le", "less_equal"),
        ("gt", "greater"),
        ("ge", "greater_equal"),
        ("eq", "equal"),
        ("ne", "not_equal"),
    ]:
        setattr(Tensor, f"__{op}__", _compare(ufunc))
    # (declared as a property in tensor_methods, which mypy cannot see being assigned here)
    Tensor.T = property(lambda self: permute(self, *reversed(range(self.ndim))))  # type: ignore


_install()

# The neural-network operations register themselves (and their implementations) on import.
from . import (  # noqa: E402, F401
    activation,
    attention,
    conv,
    dropout,
    linear,
    loss,
    norm,
    pool,
    resize,
)
