"""Learning-rate schedules, stepped once per optimiser step (per iteration, not per epoch)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

__all__ = ["WarmupCosine"]


def _step_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"WarmupCosine: {what} must be an integer, got {value!r}")
    return int(value)


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"WarmupCosine: {what} must be a number, got {value!r}")
    value = float(value)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"WarmupCosine: {what} must be a finite number >= 0, got {value}")
    return value


class WarmupCosine:
    r"""Linear warm-up, then cosine decay, of every parameter group's learning rate.

    With ``W = warmup_steps``, ``T = total_steps``, ``base`` the group's peak learning rate,
    the learning rate at step ``t`` (0, 1, 2, ...) is::

        t < W:       lr = warmup_lr + (base - warmup_lr) * t / W
        W <= t < T:  lr = min_lr + 0.5 * (base - min_lr)
                                 * (1 + cos(pi * (t - W) / max(1, T - W)))
        t >= T:      lr = min_lr

    so the warm-up climbs linearly from ``warmup_lr`` (at t = 0) towards ``base``, the cosine
    starts at ``base`` (t = W) and reaches ``min_lr`` at t = T, where it stays. With
    ``warmup_steps=0`` there is no warm-up; with ``warmup_steps == total_steps`` there is no
    cosine part.

    The constructor writes step 0's learning rate into every group; each :meth:`step` (called
    once after every ``optimizer.step()``) advances :attr:`last_step` by one and writes that
    step's rates.

    Parameters
    ----------
    optimizer : Optimizer
        Its ``param_groups[i]["lr"]`` are set by the schedule.
    total_steps : int
        Length of the schedule in steps, >= 1.
    warmup_steps : int
        Steps of linear warm-up, ``0 <= warmup_steps <= total_steps``.
    warmup_lr : float
        Learning rate at step 0 of the warm-up, >= 0.
    min_lr : float
        Learning rate at the end of the cosine and after it, >= 0.
    base_lr : float, sequence of floats, or None
        The peak learning rate: one for all groups, one per group, or None for each group's
        ``lr`` when the schedule is created.
    """

    def __init__(
        self,
        optimizer: Any,
        total_steps: int,
        warmup_steps: int = 0,
        warmup_lr: float = 1e-6,
        min_lr: float = 1e-6,
        base_lr: Any = None,
    ) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not groups:
            raise TypeError(
                "WarmupCosine: optimizer must be an optimiser with param_groups, "
                f"got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.total_steps, self.warmup_steps = self._check_steps(total_steps, warmup_steps)
        self.warmup_lr = _rate(warmup_lr, "warmup_lr")
        self.min_lr = _rate(min_lr, "min_lr")
        if base_lr is None:
            base_lr = [g["lr"] for g in groups]
        elif isinstance(base_lr, numbers.Real) and not isinstance(base_lr, bool):
            base_lr = [base_lr] * len(groups)
        self.base_lrs = self._check_base_lrs(base_lr)
        self.last_step = 0
        self._apply()

    # -- validation ---------------------------------------------------------------------------
    @staticmethod
    def _check_steps(total_steps: Any, warmup_steps: Any) -> tuple[int, int]:
        total_steps = _step_count(total_steps, "total_steps")
        warmup_steps = _step_count(warmup_steps, "warmup_steps")
        if total_steps < 1:
            raise ValueError(f"WarmupCosine: total_steps must be >= 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"WarmupCosine: warmup_steps must be in [0, total_steps="
                f"{total_steps}], got {warmup_steps}"
            )
        return total_steps, warmup_steps

    def _check_base_lrs(self, base_lrs: Any) -> list[float]:
        n = len(self.optimizer.param_groups)
        if isinstance(base_lrs, (str, bytes)) or not hasattr(base_lrs, "__len__"):
            raise TypeError(
                f"WarmupCosine: base_lr must be a number, a sequence of {n} numbers "
                f"or None, got {base_lrs!r}"
            )
        if len(base_lrs) != n:
            raise ValueError(
                f"WarmupCosine: {len(base_lrs)} base learning rates for an "
                f"optimiser with {n} parameter groups"
            )
        return [_rate(v, f"base_lr[{i}]") for i, v in enumerate(base_lrs)]

    # -- the schedule -------------------------------------------------------------------------
    def lr_at(self, step: int) -> list[float]:
        """The learning rate of each parameter group at ``step`` (an integer >= 0)."""
        t = _step_count(step, "step")
        if t < 0:
            raise ValueError(f"WarmupCosine.lr_at: step must be >= 0, got {t}")
        if t >= self.total_steps:
            return [self.min_lr for _ in self.base_lrs]
        if t < self.warmup_steps:
            frac = t / self.warmup_steps
            return [self.warmup_lr + (base - self.warmup_lr) * frac for base in self.base_lrs]
        span = max(1, self.total_steps - self.warmup_steps)
        cosine = 1.0 + math.cos(math.pi * (t - self.warmup_steps) / span)
        return [self.min_lr + 0.5 * (base - self.min_lr) * cosine for base in self.base_lrs]

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.lr_at(self.last_step)):
            group["lr"] = lr

    def step(self) -> None:
        """Advance one step and write its learning rates into the optimiser's groups."""
        self.last_step += 1
        self._apply()

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and position, as plain ints, floats and a list."""
        return {
            "last_step": self.last_step,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "warmup_lr": self.warmup_lr,
            "min_lr": self.min_lr,
            "base_lrs": list(self.base_lrs),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` and write its current learning rates into
        the optimiser. Everything is validated first; on error nothing changes."""
        keys = ("last_step", "total_steps", "warmup_steps", "warmup_lr", "min_lr", "base_lrs")
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"WarmupCosine.load_state_dict: expected a dict, got {type(state_dict).__name__}"
            )
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise ValueError(f"WarmupCosine.load_state_dict: missing {', '.join(missing)}")
        total, warmup = self._check_steps(state_dict["total_steps"], state_dict["warmup_steps"])
        warmup_lr = _rate(state_dict["warmup_lr"], "warmup_lr")
        min_lr = _rate(state_dict["min_lr"], "min_lr")
        base_lrs = self._check_base_lrs(state_dict["base_lrs"])
        last = _step_count(state_dict["last_step"], "last_step")
        if last < 0:
            raise ValueError(f"WarmupCosine.load_state_dict: last_step must be >= 0, got {last}")
        self.total_steps, self.warmup_steps = total, warmup
        self.warmup_lr, self.min_lr, self.base_lrs = warmup_lr, min_lr, base_lrs
        self.last_step = last
        self._apply()

    def __repr__(self) -> str:
        return (
            f"WarmupCosine(total_steps={self.total_steps}, warmup_steps={self.warmup_steps}"
            f", warmup_lr={self.warmup_lr}, min_lr={self.min_lr}, base_lrs={self.base_lrs}"
            f", last_step={self.last_step})"
        )
