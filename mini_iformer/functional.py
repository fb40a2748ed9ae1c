"""The functional API (``import mini_iformer.functional as F``), with PyTorch's names,
argument orders and defaults, so that ``F.conv2d(x, w, b, stride=2, padding=1)`` reads like
PyTorch code.

The operations live in one file per family, forward and backward side by side:

* :mod:`mini_iformer.ops.conv` - ``conv2d`` (pointwise, depthwise and general fast paths);
* :mod:`mini_iformer.ops.pool` - ``max_pool2d``, ``avg_pool2d``, ``interpolate``;
* :mod:`mini_iformer.ops.nn` - ``linear``, ``layer_norm``, ``batch_norm``, ``gelu``,
  ``scaled_dot_product_attention``, ``dropout``, ``drop_path``, ``cross_entropy``;
* :mod:`mini_iformer.ops` - the core operations (``softmax``/``log_softmax`` here take
  PyTorch's ``dim``).
"""

from __future__ import annotations

from typing import Any

from . import ops
from .autograd import Tensor
from .ops.conv import *  # noqa: F403
from .ops.conv import __all__ as _conv_all
from .ops.nn import *  # noqa: F403
from .ops.nn import __all__ as _nn_all
from .ops.pool import *  # noqa: F403
from .ops.pool import __all__ as _pool_all

__all__ = ["softmax", "log_softmax", "pad", *_conv_all, *_pool_all, *_nn_all]


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
