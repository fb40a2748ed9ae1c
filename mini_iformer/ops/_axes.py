"""Axis arguments, checked once with errors that name the op, the axis and the shape."""

from __future__ import annotations

import operator
from typing import Any


def normalize_axis(axis: Any, ndim: int, op: str, shape: tuple[int, ...]) -> int:
    """One axis as a non-negative int; ``ValueError`` if it is out of range for ``shape``."""
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{op}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= axis < max(ndim, 1) or (ndim == 0 and axis not in (0, -1)):
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
