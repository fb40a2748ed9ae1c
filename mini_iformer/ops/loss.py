"""``cross_entropy``, like ``torch.nn.functional.cross_entropy`` (class indices or
probabilities, class weights, an ignored index, label smoothing). One implementation, its
reference: the loss from a stable log-softmax, and its gradient ``softmax(z) * sum(q) - q``."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, register_op
from .args import check_probability, shape_of

__all__ = ["cross_entropy"]


class CrossEntropy(Function):
    """Cross-entropy of logits z against a target distribution q, per item (row), with
    per-class weights w (all 1 when none are given):

        log p = z - logsumexp(z)                  (shifted by max z first: stable for any logits)
        loss  = -sum_c q_c log p_c
        q_c   = w_c * ((1 - eps) * target_c + eps / C)  (label smoothing eps; target one-hot for
                                                         class indices, or given probabilities)
        dz    = g * (softmax(z) * sum_c q_c - q),    dtarget = -g * (1 - eps) * w * log p

    Items whose class index is ``ignore_index`` have q = 0: no loss, no gradient. The mean is
    over items for probability targets, and divides by the summed weights of the targets'
    classes for class indices (the number of items not ignored, without weights), as PyTorch
    does. The class axis is axis 1 (axis 0 for a single item of shape (C,)); it is moved last
    and the items flattened to (M, C).
    """

    name = "cross_entropy"

    def forward(self, z, target, index_target, axis, smoothing, reduction, weight, ignore_index):
        # Logits near float32's limits (+-3e38) overflow to -inf in ``z - max z`` and the loss
        # to inf, exactly as PyTorch's do (the gradient stays finite): the answer, not a fault
        # to warn about (a warning that the test suite, and some users, turn into an error).
        with np.errstate(over="ignore", invalid="ignore"):
            return self._forward(
                z, target, index_target, axis, smoothing, reduction, weight, ignore_index
            )

    def _forward(self, z, target, index_target, axis, smoothing, reduction, weight, ignore_index):
        xp = backend.array_module(z)
        c = z.shape[axis]
        z2 = xp.moveaxis(z, axis, -1).reshape(-1, c)
        items = z2.shape[0]
        shifted = z2 - z2.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        w = None if weight is None else weight.astype(z.dtype, copy=False)
        if index_target:
            t = target.reshape(-1)
            keep = t != ignore_index
            outside = keep & ((t < 0) | (t >= c))  # only for labels on a GPU, unchecked
            t = xp.where(keep & ~outside, t, 0)  # any class, for the (unused) lookups
            w_t = keep.astype(z.dtype) if w is None else xp.where(keep, w[t], 0)
            picked = logp[xp.arange(items), t]
            loss = (1.0 - smoothing) * w_t * picked
            if smoothing:
                loss += (smoothing / c) * (logp.sum(axis=1) if w is None else logp @ w)
            loss = -xp.where(keep, loss, 0)  # 0, not 0 * log p, for ignored items
            loss = xp.where(outside, xp.nan, loss)
            denom, q = w_t.sum(), None
            self.keep, self.w_t = keep, w_t
        else:
            t = xp.moveaxis(target, axis, -1).reshape(-1, c)
            q = (1.0 - smoothing) * t + smoothing / c if smoothing else t
            if w is not None:
                q = q * w
            loss = -xp.einsum("ij,ij->i", q, logp)
            denom = items
        if any(self.needs_input_grad):
            self.logp, self.t, self.q, self.w, self.denom = logp, t, q, w, denom
            self.index_target, self.axis, self.smoothing, self.reduction = (
                index_target,
                axis,
                smoothing,
                reduction,
            )
            self.z_shape = z.shape
        if reduction == "none":
            return loss.reshape(z.shape[:axis] + z.shape[axis + 1 :])
        total = loss.sum()
        if reduction == "sum":
            return total
        return total / denom if items else xp.asarray(np.nan, dtype=z.dtype)

    def _unflatten(self, m):
        shape = self.z_shape
        moved = shape[: self.axis] + shape[self.axis + 1 :] + (shape[self.axis],)
        return backend.array_module(m).moveaxis(m.reshape(moved), -1, self.axis)

    def backward(self, g):
        xp = backend.array_module(g)
        need_z, need_t = self.needs_input_grad[:2]
        logp, t, eps, w = self.logp, self.t, self.smoothing, self.w
        m, c = logp.shape
        if self.reduction == "none":
            gi = g.reshape(-1, 1)
        elif self.reduction == "sum":
            gi = g
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                gi = g / self.denom if m else g
        dz = dt = None
        if need_z:
            softmax = xp.exp(logp)
            if self.index_target:  # q = keep (w_t (1 - eps) onehot(t) + eps / C * w)
                keep = self.keep[:, None]
                uniform = (eps / c) * (1.0 if w is None else w)
                q_sum = (1.0 - eps) * self.w_t + (eps / c) * (c if w is None else w.sum())
                dz = softmax * (q_sum * self.keep)[:, None]
                dz[xp.arange(m), t] -= (1.0 - eps) * self.w_t
                if eps:
                    dz -= keep * uniform
            else:
                dz = softmax * self.q.sum(axis=1, keepdims=True) - self.q
            dz *= gi
            dz = self._unflatten(dz)
        if need_t:
            dt = -(1.0 - eps) * logp * gi
            if w is not None:
                dt = dt * w
            dt = self._unflatten(dt)
        return dz, dt


@register_op("cross_entropy")
def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between logits and a target, like ``torch.nn.functional.cross_entropy``.

    input: logits (N, C), (N, C, d1, ...) or (C,). target: class indices (integers, the shape
    of input without the class axis) or class probabilities (floats, input's shape: soft
    targets as made by Mixup/CutMix). ``label_smoothing`` mixes the target with the uniform
    distribution, (1 - eps) target + eps / C, for both kinds of target. ``reduction``:
    "mean" (over items), "sum" or "none". ``weight`` (C,) rescales each class's loss, and with
    class indices the mean divides by the summed weights of the targets' classes.
    ``ignore_index``: items with this class index add no loss and get no gradient (and do not
    count in the mean); it is for class indices only, as in PyTorch. An input without classes
    (C = 0) is refused (PyTorch refuses it too unless every item is ignored, and then returns
    0 or NaN). Class indices already on a GPU are not checked, since reading them back would
    wait for the queued work: an index outside [0, C) gives that item a NaN loss.
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
    if c == 0:
        raise ValueError(
            f"{op}: the input of shape {z_shape} has no classes (axis {axis} is empty)"
        )
    item_shape = z_shape[:axis] + z_shape[axis + 1 :]
    if not (isinstance(target, Tensor) or backend.is_array(target)):
        target = np.asarray(target)
    t_shape, t_kind = tuple(target.shape), np.dtype(target.dtype).kind
    w = None
    if weight is not None:
        w_shape = shape_of(weight, "weight", op)
        if w_shape != (c,) or np.dtype(weight.dtype).kind != "f":
            raise ValueError(
                f"{op}: weight must be a floating-point tensor of shape ({c},), one value per "
                f"class of the input of shape {z_shape}, got {weight.dtype} of shape {w_shape}"
            )
        w = backend.asarray(weight.data if isinstance(weight, Tensor) else weight)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    if t_kind in "iub":
        if t_kind == "b" or t_shape != item_shape:
            raise ValueError(
                f"{op}: target of class indices must be integers of shape {item_shape} for input "
                f"of shape {z_shape}, got {target.dtype} of shape {t_shape}"
            )
        data = target.data if isinstance(target, Tensor) else target
        if backend.array_backend(data) != "cupy":  # host labels: checked here, for free
            host = np.asarray(data)
            classes = host[host != ignore_index]
            if classes.size and (classes.min() < 0 or classes.max() >= c):
                bad = int(classes.min() if classes.min() < 0 else classes.max())
                raise ValueError(
                    f"{op}: target holds class index {bad}, outside [0, {c}) for input of shape "
                    f"{z_shape} ({c} classes; ignore_index={ignore_index})"
                )
        # (labels already on a GPU are not read back, which would wait for the queued work:
        # an index outside [0, C) gives that item a NaN loss instead)
        t = backend.asarray(data)
        return CrossEntropy.apply(
            input,
            t,
            index_target=True,
            axis=axis,
            smoothing=eps,
            reduction=reduction,
            weight=w,
            ignore_index=int(ignore_index),
        )
    if t_kind != "f":
        raise TypeError(f"{op}: target must hold integers or floats, got {target.dtype}")
    if ignore_index != -100:
        raise ValueError(
            f"{op}: ignore_index={ignore_index} is for targets of class indices, but the target "
            f"holds probabilities ({target.dtype})"
        )
    if t_shape != z_shape:
        raise ValueError(
            f"{op}: target of class probabilities must have the input's shape {z_shape}, got "
            f"shape {t_shape} (class indices must be integers of shape {item_shape})"
        )
    if not isinstance(target, Tensor):
        target = backend.asarray(target)  # host data to the current backend
    return CrossEntropy.apply(
        input,
        target,
        index_target=False,
        axis=axis,
        smoothing=eps,
        reduction=reduction,
        weight=w,
        ignore_index=int(ignore_index),
    )
