"""Tensor factories: new leaf tensors from data, constants, ranges and random draws.

``tensor``, ``zeros``, ``ones``, ``full``, ``zeros_like``, ``ones_like``, ``arange``,
``randn`` and ``rand``, with PyTorch's names and the dtype rules of
:mod:`mini_iformer.autograd` (float32 unless a dtype is given or the data has one). Each is
also available at the top level: ``mi.zeros(2, 3)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .autograd import DEFAULT_DTYPE, Tensor

__all__ = ["tensor", "zeros", "ones", "full", "zeros_like", "ones_like", "arange", "randn", "rand"]


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """A new leaf tensor on the current backend (see :class:`Tensor` for the dtype rules)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _shape_arg(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def zeros(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    data = backend.get_xp().zeros(_shape_arg(shape), dtype=dtype)
    return Tensor._make(data).requires_grad_(requires_grad)


def ones(*shape: Any, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    data = backend.get_xp().ones(_shape_arg(shape), dtype=dtype)
    return Tensor._make(data).requires_grad_(requires_grad)


def full(
    shape: Any, value: float, dtype: Any = DEFAULT_DTYPE, requires_grad: bool = False
) -> Tensor:
    """A tensor of ``shape`` filled with ``value``."""
    data = backend.get_xp().full(_shape_arg((shape,)), value, dtype=dtype)
    return Tensor._make(data).requires_grad_(requires_grad)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor._make(backend.get_xp().zeros(t.shape, dtype=dtype or t.dtype)).requires_grad_(
        requires_grad
    )


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor._make(backend.get_xp().ones(t.shape, dtype=dtype or t.dtype)).requires_grad_(
        requires_grad
    )


def arange(*args: Any, dtype: Any = None) -> Tensor:
    """Like ``numpy.arange``; float arguments give float32 unless ``dtype`` says otherwise."""
    data = np.arange(*args, dtype=dtype)
    if dtype is None and data.dtype.kind == "f":
        data = data.astype(DEFAULT_DTYPE)
    return Tensor._make(backend.asarray(data))


def _random(
    kind: str,
    shape: tuple[Any, ...],
    generator: np.random.Generator | None,
    dtype: Any,
    requires_grad: bool,
) -> Tensor:
    rng = generator if generator is not None else np.random.default_rng()
    host = getattr(rng, kind)(size=_shape_arg(shape))
    return Tensor(host.astype(dtype), requires_grad=requires_grad)


def randn(
    *shape: Any,
    generator: np.random.Generator | None = None,
    dtype: Any = DEFAULT_DTYPE,
    requires_grad: bool = False,
) -> Tensor:
    """Standard normal values, drawn on the host from ``generator`` (reproducible when given)."""
    return _random("standard_normal", shape, generator, dtype, requires_grad)


def rand(
    *shape: Any,
    generator: np.random.Generator | None = None,
    dtype: Any = DEFAULT_DTYPE,
    requires_grad: bool = False,
) -> Tensor:
    """Uniform values in [0, 1), drawn on the host from ``generator``."""
    return _random("random", shape, generator, dtype, requires_grad)
