"""Grad mode: whether operations record a graph for backward (``no_grad``, ``enable_grad``).

PyTorch's rule: inside ``with no_grad():`` (or a function decorated with ``@no_grad()``)
nothing is recorded and results do not require gradients, which is what evaluation and
optimiser updates want; ``enable_grad()`` turns recording back on inside such a block.
"""

from __future__ import annotations

import contextlib

__all__ = ["no_grad", "enable_grad", "is_grad_enabled"]

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True when operations record a graph for backward."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode inside a ``with`` block or a decorated function, then restores it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._previous.pop()


def no_grad() -> _GradMode:
    """Context manager and decorator: record no graph inside it (evaluation, updates)."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager and decorator: record the graph again inside a ``no_grad`` block."""
    return _GradMode(True)
