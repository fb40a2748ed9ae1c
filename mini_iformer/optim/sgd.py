"""SGD: stochastic gradient descent with momentum, dampening, Nesterov momentum and (coupled,
L2) weight decay, with PyTorch's update rule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import Tensor
from .optimizer import Optimizer, check_lr, check_weight_decay, real, xp_of

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, with PyTorch's ``torch.optim.SGD`` update rule.

    For each parameter :math:`p` with gradient :math:`g`, at step :math:`t`::

        g <- g + weight_decay * p                       (if weight_decay != 0)
        if momentum != 0:
            b <- g                                      (first step: the buffer is g)
            b <- momentum * b + (1 - dampening) * g     (later steps)
            g <- g + momentum * b   if nesterov   else   b
        p <- p - lr * g

    The gradient itself is never modified. The momentum buffer (state ``"momentum_buffer"``)
    exists only when ``momentum != 0``.

    Parameters
    ----------
    params : iterable of Tensors or parameter-group dicts
    lr : float
        Learning rate, >= 0.
    momentum : float
        Momentum factor, >= 0 (0 turns momentum off).
    dampening : float
        Dampening of the gradient's contribution to the momentum buffer, in [0, 1].
    weight_decay : float
        L2 penalty coefficient, >= 0 (added to the gradient, not decoupled).
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    """

    _state_arrays = ("momentum_buffer",)

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
            ),
        )

    def _check_group(self, group: dict[str, Any]) -> dict[str, Any]:
        group = dict(group)
        group["lr"] = check_lr(group["lr"])
        group["weight_decay"] = check_weight_decay(group["weight_decay"])
        momentum = real(group["momentum"], "momentum")
        if not momentum >= 0.0 or math.isinf(momentum):
            raise ValueError(f"invalid momentum={momentum}: it must be a finite number >= 0")
        dampening = real(group["dampening"], "dampening")
        if not 0.0 <= dampening <= 1.0:
            raise ValueError(f"invalid dampening={dampening}: it must be in [0, 1]")
        nesterov = group["nesterov"]
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        nesterov = bool(nesterov)
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError(
                f"Nesterov momentum needs momentum > 0 and dampening == 0 (got "
                f"momentum={momentum}, dampening={dampening})"
            )
        group.update(momentum=momentum, dampening=dampening, nesterov=nesterov)
        return group

    def _update(self, p: Tensor, grad: Any, group: dict[str, Any]) -> None:
        xp = xp_of(p.data)
        lr = float(group["lr"])
        weight_decay = float(group["weight_decay"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        # ``d`` is the update direction; ``scratch`` says whether it is our own array (which
        # may be overwritten) rather than the gradient or the momentum buffer.
        d, scratch = grad, False
        if weight_decay != 0.0:
            d = xp.multiply(p.data, weight_decay, out=xp.empty_like(p.data))
            d += grad
            scratch = True
        if momentum != 0.0:
            state = self.state.setdefault(p, {})
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = xp.array(d, dtype=p.dtype, copy=True)
            else:
                buf *= momentum
                if dampening == 0.0:
                    buf += d
                else:
                    buf += xp.multiply(d, 1.0 - dampening, out=xp.empty_like(buf))
            if group["nesterov"]:
                nesterov = xp.multiply(buf, momentum, out=xp.empty_like(buf))
                nesterov += d
                d, scratch = nesterov, True
            else:
                d, scratch = buf, False
        if scratch:
            d *= -lr
            p.data += d
        else:
            p.data += xp.multiply(d, -lr, out=xp.empty_like(p.data))
