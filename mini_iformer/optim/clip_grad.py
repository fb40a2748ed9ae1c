"""Gradient clipping: :func:`clip_grad_norm_` rescales all gradients together so that their
total norm is at most a bound, as ``torch.nn.utils.clip_grad_norm_`` does."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor
from .optimizer import real, xp_of

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0) -> Tensor:
    r"""Rescale gradients in place so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients taken together as one vector
    (``inf`` for the largest absolute value), accumulated in float64::

        total = (sum over every gradient element of |g| ** norm_type) ** (1 / norm_type)
        coef  = min(1, max_norm / (total + 1e-6))
        every g <- g * coef

    as ``torch.nn.utils.clip_grad_norm_`` does (so gradients whose norm does not exceed
    ``max_norm`` are multiplied by exactly 1: left as they were). Gradient arrays are scaled
    in place; a gradient that cannot be (a read-only broadcast view left by a backward pass) is
    replaced on its tensor by its scaled copy. Parameters whose ``.grad`` is None are ignored;
    with no gradients at all the norm is 0.

    A non-finite total (a NaN or infinite gradient) is returned as it is and the gradients
    are **not** scaled, so the caller can see the problem and skip the step (PyTorch would
    multiply them by NaN or 0).

    Everything stays on the gradients' backend: on a GPU nothing is read back, so the step
    does not wait for the GPU. Returns the total norm (before clipping) as a 0-d float64
    tensor, as PyTorch returns a tensor; ``float(total)`` reads it.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    max_norm = real(max_norm, "max_norm")
    norm_type = real(norm_type, "norm_type")
    if not max_norm >= 0.0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0.0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf), got {norm_type}")
    grads = [p.grad for p in parameters if p.grad is not None]
    arrays = [g.data if isinstance(g, Tensor) else g for g in grads if g.size]
    if not arrays:
        return Tensor(backend.get_xp().zeros((), np.float64))
    xp = xp_of(arrays[0])
    parts = []  # one partial result per gradient, on its device
    for a in arrays:
        if math.isinf(norm_type):
            parts.append(xp.abs(a).max().astype(np.float64))
            continue
        x = a.astype(np.float64, copy=False).ravel()
        if norm_type == 2.0:
            parts.append(xp.dot(x, x))
        elif norm_type == 1.0:
            parts.append(xp.abs(x).sum())
        else:
            parts.append((xp.abs(x) ** norm_type).sum())
    stacked = xp.stack(parts)
    if math.isinf(norm_type):
        total = stacked.max()
    else:
        acc = stacked.sum()
        total = xp.sqrt(acc) if norm_type == 2.0 else acc ** (1.0 / norm_type)
    # 1 where the total is not finite: such gradients are left for the caller to see
    with np.errstate(invalid="ignore", over="ignore"):
        coef = xp.where(xp.isfinite(total), xp.minimum(1.0, max_norm / (total + 1e-6)), 1.0)
    if backend.array_backend(coef) != "cupy" and coef == 1.0:  # on the host, knowing is free:
        return Tensor(total)  # no pass over the gradients to multiply them by 1
    for g in grads:
        a = g.data if isinstance(g, Tensor) else g
        scale = coef.astype(a.dtype)
        if isinstance(g, Tensor) and not _writable(a):
            g.data = a * scale  # e.g. a read-only broadcast view: replace it
        else:
            a *= scale
    return Tensor(total)


def _writable(a: Any) -> bool:
    """True when ``a`` can be scaled in place: writeable, no two elements sharing memory."""
    flags = getattr(a, "flags", None)
    if flags is not None and not getattr(flags, "writeable", True):
        return False
    return not any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape))
