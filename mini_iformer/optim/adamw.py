"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), the optimiser the iFormer
authors trained with, with PyTorch's update rule."""

from __future__ import annotations

import math
from typing import Any

from ..autograd import Tensor
from .optimizer import Optimizer, check_lr, check_weight_decay, real, xp_of

__all__ = ["AdamW"]


class AdamW(Optimizer):
    r"""Adam with decoupled weight decay, with PyTorch's ``torch.optim.AdamW`` update rule.

    For each parameter :math:`p` with gradient :math:`g`, with ``(b1, b2) = betas`` and the
    parameter's step count ``t`` (1 on its first update)::

        p   <- p * (1 - lr * weight_decay)                  (decoupled weight decay, first)
        m   <- m + (1 - b1) * (g - m)                       (exp_avg: lerp towards g)
        v   <- b2 * v + (1 - b2) * g * g                    (exp_avg_sq)
        bc1 = 1 - b1 ** t ,   bc2 = 1 - b2 ** t
        denom = sqrt(v) / sqrt(bc2) + eps
        p   <- p - (lr / bc1) * m / denom

    ``m`` and ``v`` start at zero. The scalars are computed in Python (double precision);
    the array arithmetic runs in the parameter's dtype, in the order PyTorch's single-tensor
    implementation uses, so float32 results agree with PyTorch's to float32 rounding. State
    per parameter: ``"step"`` (int), ``"exp_avg"``, ``"exp_avg_sq"``.

    Parameters
    ----------
    params : iterable of Tensors or parameter-group dicts
    lr : float
        Learning rate, >= 0.
    betas : (float, float)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float
        Added to the denominator for numerical stability, > 0.
    weight_decay : float
        Decoupled weight-decay coefficient, >= 0.
    """

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_ints = ("step",)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas) if isinstance(betas, list) else betas,
                eps=eps,
                weight_decay=weight_decay,
            ),
        )

    def _check_group(self, group: dict[str, Any]) -> dict[str, Any]:
        group = dict(group)
        group["lr"] = check_lr(group["lr"])
        group["weight_decay"] = check_weight_decay(group["weight_decay"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of numbers, got {betas!r}")
        betas = tuple(real(b, f"betas[{i}]") for i, b in enumerate(betas))
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {b} (it must be in [0, 1))")
        eps = real(group["eps"], "eps")
        if not eps > 0.0 or math.isinf(eps):
            raise ValueError(f"invalid eps={eps}: it must be a finite number > 0")
        group.update(betas=betas, eps=eps)
        return group

    def _update(self, p: Tensor, grad: Any, group: dict[str, Any]) -> None:
        xp = xp_of(p.data)
        data = p.data
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {
                "step": 0,
                "exp_avg": xp.zeros_like(data),
                "exp_avg_sq": xp.zeros_like(data),
            }
        lr = float(group["lr"])
        weight_decay = float(group["weight_decay"])
        eps = float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        state["step"] += 1
        step = state["step"]

        if weight_decay != 0.0:
            data *= 1.0 - lr * weight_decay

        # exp_avg.lerp_(grad, 1 - beta1), with the two branches of PyTorch's lerp.
        weight = 1.0 - beta1
        scratch = xp.subtract(grad, exp_avg, out=xp.empty_like(data))
        if abs(weight) < 0.5:
            scratch *= weight
            exp_avg += scratch
        else:
            one = data.dtype.type(1)
            scratch *= float(one - data.dtype.type(weight))
            xp.subtract(grad, scratch, out=exp_avg)

        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        exp_avg_sq *= beta2
        xp.multiply(grad, 1.0 - beta2, out=scratch)
        scratch *= grad
        exp_avg_sq += scratch

        bias_correction1 = 1.0 - beta1**step
        bias_correction2 = 1.0 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5

        # denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
        denom = xp.sqrt(exp_avg_sq, out=scratch)
        denom /= bias_correction2_sqrt
        denom += eps
        # p.addcdiv_(exp_avg, denom, value=-step_size): p + (-step_size * m) / denom
        update = xp.multiply(exp_avg, -step_size, out=xp.empty_like(data))
        update /= denom
        data += update
