"""Gradient clipping: :func:`clip_grad_norm_` rescales all gradients together so that their
total norm is at most a bound, as ``torch.nn.utils.clip_grad_norm_`` does."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor
from .optimizer import _real, _xp_of

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0) -> float:
    r"""Rescale gradients in place so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients taken together as one vector
    (``inf`` for the largest absolute value), accumulated in float64::

        total = (sum over every gradient element of |g| ** norm_type) ** (1 / norm_type)
        coef  = max_norm / (total + 1e-6)
        if coef < 1: every g <- g * coef

    as ``torch.nn.utils.clip_grad_norm_`` does (so gradients whose norm does not exceed
    ``max_norm`` are left exactly as they were). Gradient arrays are scaled in place; a
    gradient that cannot be (a read-only broadcast view left by a backward pass) is replaced
    on its tensor by its scaled copy. Parameters whose ``.grad`` is
    None are ignored; with no gradients at all the norm is 0.0.

    A non-finite total (a NaN or infinite gradient) is returned as it is and the gradients
    are **not** scaled, so the caller can see the problem and skip the step (PyTorch would
    multiply them by NaN or 0).

    Returns the total norm (before clipping) as a Python float.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    max_norm = _real(max_norm, "max_norm")
    norm_type = _real(norm_type, "norm_type")
    if not max_norm >= 0.0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0.0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf), got {norm_type}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    arrays = [g.data if isinstance(g, Tensor) else g for g in grads]
    # One partial result per gradient, kept on its device and read back once at the end (on a
    # GPU each read waits for the queued work, so one read per parameter would stall).
    parts = []
    for a in arrays:
        xp = _xp_of(a)
        if not a.size:
            continue
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
    values = [float(v) for v in backend.to_numpy(_xp_of(arrays[0]).stack(parts))] if parts else []
    if math.isinf(norm_type):
        total = max(values, default=0.0)
    else:
        acc = 0.0
        for v in values:  # summed in the same order as before: the same float64 result
            acc += v
        total = acc ** (1.0 / norm_type) if norm_type != 2.0 else math.sqrt(acc)
    if not math.isfinite(total):
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            if isinstance(g, Tensor) and not _writable(g.data):
                g.data = g.data * coef  # e.g. a read-only broadcast view: replace it
            else:
                a = g.data if isinstance(g, Tensor) else g
                a *= coef
    return total


def _writable(a: Any) -> bool:
    """True when ``a`` can be scaled in place: writeable, no two elements sharing memory."""
    flags = getattr(a, "flags", None)
    if flags is not None and not getattr(flags, "writeable", True):
        return False
    return not any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape))
