"""The functional API (``import mini_iformer.functional as F``), with PyTorch's names,
argument orders and defaults, so that ``F.conv2d(x, w, b, stride=2, padding=1)`` reads like
PyTorch code.

The operations live in one file per family of :mod:`mini_iformer.ops`, each with its
reference forward and backward side by side (and its fast forms next to it):

* ``conv`` - ``conv2d``;  ``pool`` - ``max_pool2d``, ``avg_pool2d``;  ``resize`` -
  ``interpolate``;
* ``linear`` - ``linear``;  ``norm`` - ``layer_norm``, ``batch_norm``;  ``activation`` -
  ``gelu``;  ``attention`` - ``scaled_dot_product_attention``;  ``dropout`` - ``dropout``,
  ``drop_path``;  ``loss`` - ``cross_entropy``;
* the core operations (``softmax``/``log_softmax`` here take PyTorch's ``dim``).
"""

from __future__ import annotations

from typing import Any

from . import ops
from .autograd import Tensor
from .ops.activation import gelu
from .ops.attention import scaled_dot_product_attention
from .ops.conv import conv2d
from .ops.dropout import drop_path, dropout
from .ops.linear import linear
from .ops.loss import cross_entropy
from .ops.norm import batch_norm, layer_norm
from .ops.pool import avg_pool2d, max_pool2d
from .ops.resize import interpolate

__all__ = [
    "softmax",
    "log_softmax",
    "pad",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "interpolate",
    "linear",
    "layer_norm",
    "batch_norm",
    "gelu",
    "scaled_dot_product_attention",
    "dropout",
    "drop_path",
    "cross_entropy",
]


def softmax(input: Any, dim: int = -1, *, dtype: Any = None) -> Tensor:
    """Softmax along ``dim`` (numerically stable); ``dtype``: convert the input first."""
    return ops.softmax(input, axis=dim, dtype=dtype)


def log_softmax(input: Any, dim: int = -1, *, dtype: Any = None) -> Tensor:
    """log(softmax(input)) along ``dim`` (numerically stable); ``dtype``: convert the input
    first."""
    return ops.log_softmax(input, axis=dim, dtype=dtype)


def pad(input: Any, pad: Any, mode: str = "constant", value: float = 0.0) -> Tensor:
    """``torch.nn.functional.pad``: modes "constant", "reflect", "replicate", "circular"."""
    return ops.pad(input, pad, value=value, mode=mode)
