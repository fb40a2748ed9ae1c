"""The functional API (``import mini_iformer.functional as F``), with PyTorch's names,
argument orders and defaults, so that ``F.softmax(x, dim=-1)`` reads like PyTorch code.

Neural-network operations (convolution, pooling, normalisation, attention, losses) join this
module as the model needs them; the core operations live in :mod:`mini_iformer.ops`.
"""

from __future__ import annotations

from typing import Any

from . import ops
from .autograd import Tensor

__all__ = ["softmax", "log_softmax", "pad"]


def softmax(input: Any, dim: int = -1) -> Tensor:  # noqa: A002 - PyTorch's name
    """Softmax along ``dim`` (numerically stable)."""
    return ops.softmax(input, axis=dim)


def log_softmax(input: Any, dim: int = -1) -> Tensor:  # noqa: A002
    """log(softmax(input)) along ``dim`` (numerically stable)."""
    return ops.log_softmax(input, axis=dim)


def pad(input: Any, pad: Any, mode: str = "constant", value: float = 0.0) -> Tensor:  # noqa: A002
    """``torch.nn.functional.pad``; only ``mode="constant"`` is supported."""
    if mode != "constant":
        raise ValueError(f"pad: mode {mode!r} is not supported (only 'constant')")
    return ops.pad(input, pad, value=value)
