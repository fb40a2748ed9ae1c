"""Parameter groups: a model's parameters split into a weight-decay group and a no-decay
group (biases, normalisation weights, layer scales), as the iFormer recipe trains them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import check_weight_decay

__all__ = ["param_groups_weight_decay"]


def param_groups_weight_decay(
    model: Any, weight_decay: float = 1e-5, skip_list: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Split a model's trainable parameters into a no-decay group and a decay group.

    A parameter goes to the no-decay group (``weight_decay = 0.0``) when it has at most one
    dimension (biases, normalisation weights, layer scales), when its name ends with
    ``".bias"``, or when its name is in ``skip_list``; every other parameter (convolution and
    linear weights, and the 4-D position embeddings) goes to the decay group with
    ``weight_decay``. Parameters with ``requires_grad=False`` are left out.

    Returns ``[{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay":
    weight_decay}]`` (either list may be empty), ready for :class:`AdamW`.
    """
    weight_decay = check_weight_decay(weight_decay)
    if isinstance(skip_list, str):
        skip_list = (skip_list,)
    skip = set(skip_list)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or name in skip:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]
