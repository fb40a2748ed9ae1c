"""In-place initialisers for parameters (``trunc_normal_(p, std=0.02)`` etc.).

They draw on the host from a ``numpy.random.Generator`` (default:
:func:`mini_iformer.random.default_generator`, so ``manual_seed`` makes a model's initial
weights reproducible on every backend) and write into the tensor's array.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend, random
from ..autograd import Tensor

__all__ = ["trunc_normal_", "uniform_", "normal_", "constant_", "zeros_", "ones_", "fan_in"]


def _write(t: Tensor, values: np.ndarray) -> Tensor:
    t.data = backend.asarray(values.reshape(t.shape), t.dtype)
    return t


def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    return generator if generator is not None else random.default_generator()


def trunc_normal_(
    t: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Normal(mean, std^2) values restricted to [a, b] (absolute bounds, as in PyTorch), drawn
    by redrawing the values that fall outside."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be positive, got {std}")
    rng = _rng(generator)
    values = rng.normal(mean, std, t.size)
    outside = (values < a) | (values > b)
    for _ in range(1000):
        if not outside.any():
            break
        values[outside] = rng.normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    else:  # [a, b] far in a tail: fall back to clipping, which still respects the bounds
        np.clip(values, a, b, out=values)
    return _write(t, values)


def uniform_(
    t: Tensor, low: float = 0.0, high: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Uniform values in [low, high)."""
    return _write(t, _rng(generator).uniform(low, high, t.size))


def normal_(
    t: Tensor, mean: float = 0.0, std: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    return _write(t, _rng(generator).normal(mean, std, t.size))


def constant_(t: Tensor, value: float) -> Tensor:
    return _write(t, np.full(t.size, value))


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1.0)


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs feeding one output: ``in`` for a Linear (out, in), ``in/groups * kh * kw`` for a
    Conv2d weight (out, in/groups, kh, kw)."""
    return int(math.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


def default_uniform_(weight: Tensor, bias: Tensor | None, generator: Any = None) -> None:
    """PyTorch's default for Linear and Conv2d: weight and bias uniform in
    [-1/sqrt(fan_in), 1/sqrt(fan_in)]."""
    bound = 1.0 / math.sqrt(max(fan_in(weight.shape), 1))
    uniform_(weight, -bound, bound, generator)
    if bias is not None:
        uniform_(bias, -bound, bound, generator)
