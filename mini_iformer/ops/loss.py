"""``cross_entropy``, like ``torch.nn.functional.cross_entropy`` (class indices or
probabilities, label smoothing). One implementation, its reference: the loss from a stable
log-softmax, and its gradient ``softmax(z) * sum(q) - q``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, register_op
from .args import check_probability, shape_of

__all__ = ["cross_entropy"]


class CrossEntropy(Function):
    """Cross-entropy of logits z against a target distribution q, per item (row):

        log p = z - logsumexp(z)            (shifted by max z first: stable for any logits)
        loss  = -sum_c q_c log p_c
        q     = (1 - eps) * target + eps / C     (label smoothing eps; target one-hot for
                                                   class indices, or given probabilities)
        dz    = g * (softmax(z) * sum_c q_c - q),     dtarget = -g * (1 - eps) * log p

    with g = upstream / (number of items) for the mean. The class axis is axis 1 (axis 0 for
    a single item of shape (C,)); it is moved last and the items flattened to (M, C).
    """

    name = "cross_entropy"

    def forward(self, z, target, index_target, axis, smoothing, reduction):
        # Logits near float32's limits (+-3e38) overflow to -inf in ``z - max z`` and the loss
        # to inf, exactly as PyTorch's do (the gradient stays finite): the answer, not a fault
        # to warn about (a warning that the test suite, and some users, turn into an error).
        with np.errstate(over="ignore"):
            return self._forward(z, target, index_target, axis, smoothing, reduction)

    def _forward(self, z, target, index_target, axis, smoothing, reduction):
        xp = backend.array_module(z)
        c = z.shape[axis]
        z2 = xp.moveaxis(z, axis, -1).reshape(-1, c)
        items = z2.shape[0]
        shifted = z2 - z2.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        if index_target:
            t = target.reshape(-1)
            picked = logp[xp.arange(items), t]
            loss = (1.0 - smoothing) * picked
            if smoothing:
                loss += (smoothing / c) * logp.sum(axis=1)
            loss = -loss
            q_sum = None
        else:
            t = xp.moveaxis(target, axis, -1).reshape(-1, c)
            q = (1.0 - smoothing) * t + smoothing / c if smoothing else t
            loss = -xp.einsum("ij,ij->i", q, logp)
            q_sum = q.sum(axis=1, keepdims=True)
        if any(self.needs_input_grad):
            self.logp, self.t, self.q_sum = logp, t, q_sum
            self.index_target, self.axis, self.smoothing, self.reduction = (
                index_target, axis, smoothing, reduction)
            self.z_shape = z.shape
        if reduction == "none":
            return loss.reshape(z.shape[:axis] + z.shape[axis + 1:])
        total = loss.sum()
        if reduction == "sum":
            return total
        return total / items if items else xp.asarray(np.nan, dtype=z.dtype)

    def _unflatten(self, m):
        shape = self.z_shape
        moved = shape[: self.axis] + shape[self.axis + 1:] + (shape[self.axis],)
        return backend.array_module(m).moveaxis(m.reshape(moved), -1, self.axis)

    def backward(self, g):
        xp = backend.array_module(g)
        need_z, need_t = self.needs_input_grad[:2]
        logp, t, eps = self.logp, self.t, self.smoothing
        c = logp.shape[1]
        if self.reduction == "none":
            gi = g.reshape(-1, 1)
        elif self.reduction == "sum":
            gi = g
        else:
            gi = g / max(logp.shape[0], 1)
        dz = dt = None
        if need_z:
            dz = xp.exp(logp)  # softmax
            if self.index_target:
                if eps:
                    dz -= eps / c
                dz[xp.arange(logp.shape[0]), t] -= 1.0 - eps
            else:
                dz *= self.q_sum
                dz -= (1.0 - eps) * t
                if eps:
                    dz -= eps / c
            dz *= gi
            dz = self._unflatten(dz)
        if need_t:
            dt = self._unflatten(-(1.0 - eps) * logp * gi)
        return dz, dt


@register_op("cross_entropy")
def cross_entropy(
    input: Any,  # noqa: A002
    target: Any,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between logits and a target, like ``torch.nn.functional.cross_entropy``.

    input: logits (N, C), (N, C, d1, ...) or (C,). target: class indices (integers, the shape
    of input without the class axis) or class probabilities (floats, input's shape: soft
    targets as made by Mixup/CutMix). ``label_smoothing`` mixes the target with the uniform
    distribution, (1 - eps) target + eps / C, for both kinds of target. ``reduction``:
    "mean" (over items), "sum" or "none". (PyTorch's ``weight`` and ``ignore_index`` are not
    supported: every index must be a class.)
    """
    op = "cross_entropy"
    z_shape = shape_of(input, "input", op)
    if len(z_shape) == 0:
        raise ValueError(f"{op}: input must have shape (N, C, ...) or (C,), got shape {z_shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    eps = check_probability(label_smoothing, "label_smoothing", op)
    axis = 0 if len(z_shape) == 1 else 1
    c = z_shape[axis]
    item_shape = z_shape[:axis] + z_shape[axis + 1:]
    if not (isinstance(target, Tensor) or backend.is_array(target)):
        target = np.asarray(target)
    t_shape, t_kind = tuple(target.shape), np.dtype(target.dtype).kind
    if t_kind in "iub":
        if t_kind == "b" or t_shape != item_shape:
            raise ValueError(
                f"{op}: target of class indices must be integers of shape {item_shape} for input "
                f"of shape {z_shape}, got {target.dtype} of shape {t_shape}"
            )
        t = backend.asarray(target.data if isinstance(target, Tensor) else target)
        if t.size:
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi >= c:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"{op}: target holds class index {bad}, outside [0, {c}) for input of shape "
                    f"{z_shape} ({c} classes)"
                )
        return CrossEntropy.apply(input, t, index_target=True, axis=axis, smoothing=eps,
                                  reduction=reduction)
    if t_kind != "f":
        raise TypeError(f"{op}: target must hold integers or floats, got {target.dtype}")
    if t_shape != z_shape:
        raise ValueError(
            f"{op}: target of class probabilities must have the input's shape {z_shape}, got "
            f"shape {t_shape} (class indices must be integers of shape {item_shape})"
        )
    if not isinstance(target, Tensor):
        target = backend.asarray(target)  # host data to the current backend
    return CrossEntropy.apply(input, target, index_target=False, axis=axis, smoothing=eps,
                              reduction=reduction)
