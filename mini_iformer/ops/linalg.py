"""Matrix multiplication, batched and broadcasting like ``numpy.matmul``.

For C = A @ B with A (..., m, k) and B (..., k, n):

    dA = dC @ B^T      (..., m, n) @ (..., n, k) -> (..., m, k)
    dB = A^T @ dC      (..., k, m) @ (..., m, n) -> (..., k, n)

summed over any batch dimensions that were broadcast (the engine does that sum). A 1-D
operand is treated as a matrix with one row (on the left) or one column (on the right), and
that axis is removed again from its gradient.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..autograd import Function, Tensor, register_op

__all__ = ["matmul"]


def _check_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ValueError(
            f"matmul: both operands need at least 1 dimension, got shapes {a_shape} and {b_shape}"
        )
    k_a = a_shape[-1]
    k_b = b_shape[-2] if len(b_shape) > 1 else b_shape[0]
    if k_a != k_b:
        raise ValueError(
            f"matmul: shapes {a_shape} and {b_shape} do not match: the last axis of the first "
            f"({k_a}) must equal the {'second-to-last' if len(b_shape) > 1 else 'only'} axis "
            f"of the second ({k_b})"
        )
    batch_a, batch_b = a_shape[:-2], b_shape[:-2]
    for x, y in zip(reversed(batch_a), reversed(batch_b)):
        if x != y and x != 1 and y != 1:
            raise ValueError(
                f"matmul: batch dimensions {batch_a} and {batch_b} of shapes {a_shape} and "
                f"{b_shape} cannot be broadcast together"
            )


class MatMul(Function):
    """C = A @ B;  dA = dC @ B^T, dB = A^T @ dC (see the module docstring for 1-D operands)."""

    name = "matmul"

    def forward(self, a, b):
        _check_shapes(tuple(a.shape), tuple(b.shape))
        need_a, need_b = self.needs_input_grad
        both_vectors = a.ndim == 1 and b.ndim == 1
        self.a = a if need_b or both_vectors else None  # dB needs A, dA needs B
        self.b = b if need_a or both_vectors else None
        self.a_ndim, self.b_ndim = a.ndim, b.ndim
        return backend.array_module(a, b).matmul(a, b)

    def backward(self, g):
        xp = backend.array_module(g)
        a, b = self.a, self.b
        if self.a_ndim == 1 and self.b_ndim == 1:  # a dot product: g is a scalar
            return g * b, g * a
        if self.a_ndim == 1:
            g = xp.expand_dims(g, -2)
        if self.b_ndim == 1:
            g = xp.expand_dims(g, -1)
        da = db = None
        if self.needs_input_grad[0]:
            b2 = b[:, None] if b.ndim == 1 else b
            da = xp.matmul(g, xp.swapaxes(b2, -1, -2))
            if self.a_ndim == 1:
                da = da[..., 0, :]
        if self.needs_input_grad[1]:
            a2 = a[None, :] if a.ndim == 1 else a
            db = xp.matmul(xp.swapaxes(a2, -1, -2), g)
            if self.b_ndim == 1:
                db = db[..., 0]
        return da, db


@register_op("matmul")
def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product ``a @ b`` with NumPy's rules for 1-D operands and batch broadcasting."""
    return MatMul.apply(a, b)
