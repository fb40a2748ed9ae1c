"""Arguments checked once, with errors that name the op, the argument and the shape."""

from __future__ import annotations

import numbers
import operator
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor


def normalize_axis(axis: Any, ndim: int, op: str, shape: tuple[int, ...]) -> int:
    """One axis as a non-negative int; ``ValueError`` if it is out of range for ``shape``."""
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{op}: axis must be an integer, got {axis!r}") from None
    if not -max(ndim, 1) <= axis < max(ndim, 1):  # a 0-d tensor takes 0 and -1, as in PyTorch
        raise ValueError(
            f"{op}: axis {axis} is out of range for a tensor of {ndim} dimensions "
            f"(shape {tuple(shape)})"
        )
    return axis % ndim if ndim else 0


def normalize_axes(axis: Any, ndim: int, op: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``None`` (all axes), an int or a sequence of ints, as a sorted tuple of distinct axes."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(sorted(normalize_axis(a, ndim, op, shape) for a in items))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: axis {axis!r} repeats an axis (shape {tuple(shape)})")
    if ndim == 0:
        return ()
    return axes


def shape_of(x: Any, name: str, op: str) -> tuple[int, ...]:
    """The shape of a Tensor or array argument; ``TypeError`` naming it for anything else."""
    if isinstance(x, Tensor) or backend.is_array(x):
        return tuple(x.shape)
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}")


def check_bool(value: Any, name: str, op: str) -> bool:
    """A True/False argument; ``TypeError`` naming it for anything else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")
    return bool(value)


def check_probability(p: Any, name: str, op: str) -> float:
    """A probability argument as a float; ``TypeError``/``ValueError`` naming it otherwise."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number in [0, 1], got {p!r}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{op}: {name} has to be between 0 and 1, but got {p}")
    return float(p)


def pair(
    value: Any,
    name: str,
    op: str,
    error: type[Exception] = TypeError,
    *,
    minimum: int | None = None,
) -> tuple[int, int]:
    """An int, or a sequence of one or two ints, as a (rows, cols) pair: PyTorch's rule for
    kernel sizes, strides, paddings and image sizes, one normaliser for every op, layer and
    transform.

    A sequence of another length raises ``error`` (PyTorch's pools say ValueError, ``conv2d``
    TypeError); anything that is not an int raises ``TypeError``; with ``minimum``, a smaller
    value raises ``ValueError``. Every message names ``op`` and ``name``.
    """
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(items) not in (1, 2):
        raise error(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    try:
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        ints = tuple(operator.index(v) for v in items)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if minimum is not None and min(ints) < minimum:
        raise ValueError(f"{op}: {name} must be at least {minimum}, got {value!r}")
    return ints[0], ints[-1]
