"""The training loop: one step, one epoch, evaluation, and resumable state.

A run is a sequence of *steps* (one batch: forward, loss, backward, optimiser update,
schedule update). Everything that decides what the next step does is in the run's state:

* the model's parameters and BatchNorm statistics;
* the optimiser's moments and step counts, and the schedule's step;
* the loader's position (epoch and batches done; each sample's augmentation comes from a
  generator seeded by (seed, epoch, index), so it does not depend on when it is drawn);
* the library's random generator (drop path masks);
* the epoch's running sums (loss, correct predictions, images), so the epoch's metrics are
  the same whether or not it was interrupted.

:class:`RunState` gathers the last three; a checkpoint stores all of it, so a run killed at
any point and resumed from its last checkpoint repeats exactly the steps it lost and ends with
the same weights, bit for bit, as a run never interrupted.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..nn import Module

__all__ = ["RunState", "NonFiniteLossError", "train_steps", "evaluate", "topk_correct"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class RunState:
    """The counters of a run that are not in the model, optimiser, schedule or loader."""

    epoch: int = 0  # the epoch in progress (0-based)
    global_step: int = 0  # optimiser steps taken since the start of the run
    loss_sum: float = 0.0  # over the current epoch's batches, weighted by batch size
    correct: int = 0  # current epoch: predictions equal to the label (hard labels only)
    seen: int = 0  # current epoch: training images so far
    train_seconds: float = 0.0  # current epoch: time spent in steps
    best_acc1: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.loss_sum, self.correct, self.seen, self.train_seconds = epoch, 0.0, 0, 0, 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def topk_correct(logits: np.ndarray, labels: np.ndarray, ks: Iterable[int]) -> list[int]:
    """How many rows have their label among the k largest logits, for each k (ties broken by
    index, lowest first)."""
    order = np.argsort(-logits, axis=1, kind="stable")
    hits = order == labels[:, None]
    return [int(hits[:, :k].any(axis=1).sum()) for k in ks]


def _to_device(a: np.ndarray) -> Any:
    return backend.asarray(a)


def train_steps(
    model: Module,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    optimizer: Any,
    schedule: Any,
    state: RunState,
    *,
    label_smoothing: float = 0.0,
    clip_grad: float | None = None,
    after_step: Callable[[RunState, float], bool] | None = None,
) -> bool:
    """Train on ``batches`` (the rest of the current epoch), updating ``state``.

    Targets are class indices (then ``label_smoothing`` applies) or soft targets of shape
    (N, classes) from Mixup/CutMix (already smoothed). ``after_step(state, loss)`` runs after
    every step; if it returns True training stops early (e.g. to save and exit on Ctrl-C) and
    this returns False. Raises :class:`NonFiniteLossError` before updating the weights when
    the loss is not finite.
    """
    from ..optim import clip_grad_norm_

    model.train()
    for x, y in batches:
        start = time.perf_counter()
        logits = model(Tensor(_to_device(x)))
        soft = y.ndim == 2
        target = Tensor(_to_device(y))
        loss = F.cross_entropy(logits, target, label_smoothing=0.0 if soft else label_smoothing)
        value = float(loss.item())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the loss is {value} at epoch {state.epoch + 1}, step {state.global_step + 1}"
            )
        optimizer.zero_grad()
        loss.backward()
        if clip_grad:
            clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        schedule.step()
        n = int(y.shape[0])
        state.global_step += 1
        state.loss_sum += value * n
        state.seen += n
        if not soft:
            state.correct += topk_correct(backend.to_numpy(logits.data), y, [1])[0]
        state.train_seconds += time.perf_counter() - start
        if after_step is not None and after_step(state, value):
            return False
    return True


def evaluate(model: Module, batches: Iterable[tuple[np.ndarray, np.ndarray]],
             num_classes: int) -> dict[str, float]:
    """Mean cross-entropy, Acc@1 and Acc@5 (percent) over ``batches`` in evaluation mode."""
    was_training = model.training
    model.eval()
    total, loss_sum, hit1, hit5 = 0, 0.0, 0, 0
    k5 = min(5, num_classes)
    try:
        with no_grad():
            for x, y in batches:
                logits = model(Tensor(_to_device(x)))
                loss = F.cross_entropy(logits, Tensor(_to_device(y)))
                host = backend.to_numpy(logits.data)
                c1, c5 = topk_correct(host, y, [1, k5])
                n = int(y.shape[0])
                total, loss_sum = total + n, loss_sum + float(loss.item()) * n
                hit1, hit5 = hit1 + c1, hit5 + c5
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluate: the evaluation data is empty")
    return {"loss": loss_sum / total, "acc1": 100.0 * hit1 / total, "acc5": 100.0 * hit5 / total}

