"""Training: optimisers (SGD, AdamW), parameter groups, gradient clipping and the learning-rate
schedule.

Typical use, as in the iFormer authors' recipe::

    from mini_iformer.optim import AdamW, WarmupCosine, clip_grad_norm_, param_groups_weight_decay

    optimizer = AdamW(param_groups_weight_decay(model, 0.05), lr=1e-3)
    schedule = WarmupCosine(optimizer, total_steps, warmup_steps=warmup, min_lr=1e-5)
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()

One module each: :mod:`~mini_iformer.optim.optimizer` (the ``Optimizer`` base class, its
parameter groups and state dict), :mod:`~mini_iformer.optim.sgd`,
:mod:`~mini_iformer.optim.adamw`, :mod:`~mini_iformer.optim.param_groups`,
:mod:`~mini_iformer.optim.clip_grad` and :mod:`~mini_iformer.optim.schedule`.
"""

from .adamw import AdamW
from .clip_grad import clip_grad_norm_
from .optimizer import Optimizer
from .param_groups import param_groups_weight_decay
from .schedule import WarmupCosine
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "AdamW",
    "param_groups_weight_decay",
    "clip_grad_norm_",
    "WarmupCosine",
]
