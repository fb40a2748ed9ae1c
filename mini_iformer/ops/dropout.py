"""Dropout and stochastic depth (``dropout``, ``drop_path``), and the keep-masks they (and
attention dropout) draw.

Random operations draw their masks on the host from a ``numpy.random.Generator`` (the
``generator`` keyword; a fresh one when omitted) and move them to the backend, so the same seed
gives the same mask on NumPy and on CuPy. The backward pass multiplies by that same mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import runtime
from ..autograd import Function, Tensor, as_tensor, register_op
from .args import check_probability, shape_of

__all__ = ["dropout", "drop_path", "keep_mask"]


def keep_mask(shape: tuple[int, ...], p: float, dtype: Any, generator: Any, op: str) -> Any:
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
    return runtime.to_device_async(keep).astype(dtype) * scale


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
    input: Any,
    p: float = 0.5,
    training: bool = True,
    *,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Zero each element with probability ``p`` and scale the survivors by 1/(1-p), like
    ``torch.nn.functional.dropout``; the identity when ``training`` is False or ``p == 0``.
    The mask comes from ``generator`` (same seed, same mask, on every backend)."""
    x_shape = shape_of(input, "input", "dropout")
    p = check_probability(p, "dropout probability p", "dropout")
    if not training or p == 0.0:
        return as_tensor(input)
    return Dropout.apply(input, keep_mask(x_shape, p, input.dtype, generator, "dropout"))


@register_op("drop_path")
def drop_path(
    input: Any,
    p: float = 0.0,
    training: bool = False,
    *,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Stochastic depth: drop each *sample* (index of the first axis) of a residual branch
    with probability ``p`` and scale the kept ones by 1/(1-p); the identity in evaluation or
    when ``p == 0``. Used as ``x + drop_path(branch(x), p, training)``."""
    x_shape = shape_of(input, "input", "drop_path")
    p = check_probability(p, "drop_path probability p", "drop_path")
    if not training or p == 0.0:
        return as_tensor(input)
    if len(x_shape) == 0:
        raise ValueError("drop_path: input needs a batch axis, got a 0-d tensor")
    mask_shape = (x_shape[0],) + (1,) * (len(x_shape) - 1)
    return DropPath.apply(input, keep_mask(mask_shape, p, input.dtype, generator, "drop_path"))
