"""``linear``: y = x W^T + b over the last axis, like ``torch.nn.functional.linear``."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, register_op
from .args import shape_of

__all__ = ["linear"]


class Linear(Function):
    """y = x W^T + b over the last axis of x: (..., in) -> (..., out), W (out, in).

    The leading axes are flattened into one, so the whole layer is one matrix product of a
    (M, in) matrix with W^T (M = product of the leading axes), then reshaped back:

        Y = X W^T + b          dX = G W          dW = G^T X          db = sum over rows of G

    A 1-D weight (in,) gives an output without the last axis, as in PyTorch.
    """

    name = "linear"

    def forward(self, x, weight, bias):
        need_x, need_w, _ = self.needs_input_grad
        w2 = weight[None, :] if weight.ndim == 1 else weight
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # (rows, in), also when empty
        y = x2 @ w2.T
        out_shape = x.shape[:-1] + weight.shape[:-1]
        y = y.reshape(out_shape)
        if bias is not None:
            if getattr(bias, "dtype", None) == y.dtype and np.shape(bias) == out_shape[-1:]:
                y += bias  # the usual case: no new array
            else:
                y = y + bias
        self.x_shape, self.w_shape = x.shape, weight.shape
        self.x2 = x2 if need_w else None  # dW needs X, dX needs W
        self.w2 = w2 if need_x else None
        self.bias_shape = None if bias is None else np.shape(bias)
        return y

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        out = 1 if len(self.w_shape) == 1 else self.w_shape[0]
        g2 = g.reshape(math.prod(self.x_shape[:-1]), out)
        dx = (g2 @ self.w2).reshape(self.x_shape) if need_x else None
        dw = (g2.T @ self.x2).reshape(self.w_shape) if need_w else None
        db = None
        if need_b:
            # A bias of shape (out,) is summed here; any other broadcast shape by the engine.
            usual = len(self.w_shape) == 2 and self.bias_shape == self.w_shape[:1]
            # einsum's column sums: 2-3x faster than .sum(axis=0) here, and single-threaded
            db = backend.array_module(g2).einsum("ij->j", g2) if usual else g
        return dx, dw, db


@register_op("linear")
def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:
    """``input @ weight.T + bias``, like ``torch.nn.functional.linear``.

    input (..., in), weight (out, in) or (in,), bias broadcastable to the output (usually
    (out,)). One matrix product over all leading axes at once.
    """
    x_shape = shape_of(input, "input", "linear")
    w_shape = shape_of(weight, "weight", "linear")
    if len(x_shape) == 0 or len(w_shape) not in (1, 2):
        raise ValueError(
            f"linear: input needs at least 1 dimension and weight 1 or 2, got input of shape "
            f"{x_shape} and weight of shape {w_shape}"
        )
    if x_shape[-1] != w_shape[-1]:
        raise ValueError(
            f"linear: input of shape {x_shape} has {x_shape[-1]} features, but weight of shape "
            f"{w_shape} expects {w_shape[-1]} (in_features is the last axis of both)"
        )
    if bias is not None:
        b_shape = shape_of(bias, "bias", "linear") if not isinstance(bias, numbers.Number) else ()
        out_shape = x_shape[:-1] + w_shape[:-1]
        try:
            grown = np.broadcast_shapes(b_shape, out_shape) != out_shape
        except ValueError:
            grown = True
        if grown:
            raise ValueError(
                f"linear: bias of shape {b_shape} does not broadcast to the output shape "
                f"{out_shape} (input {x_shape}, weight {w_shape})"
            )
    return Linear.apply(input, weight, bias)
