"""The layers iFormer is built from, each a thin :class:`Module` around one functional op.

A layer owns its parameters (and buffers) and its hyper-parameters; the arithmetic and its
gradient live in :mod:`mini_iformer.functional`. Names, arguments, defaults and parameter
shapes are PyTorch's (``Conv2d.weight`` is (out, in/groups, kh, kw), ``Linear.weight`` is
(out, in)), so state dicts line up key for key and shape for shape.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import functional as F
from .. import random
from ..autograd import Tensor, float32
from ..ops.args import pair
from . import init
from .module import Module, Parameter

__all__ = [
    "Identity",
    "Linear",
    "Conv2d",
    "LayerNorm",
    "BatchNorm2d",
    "GELU",
    "Dropout",
    "DropPath",
    "MaxPool2d",
    "AvgPool2d",
    "Upsample",
]


def _positive_int(value: Any, name: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _check_input(x: Any, layer: str, empty_ok: bool = True) -> None:
    """Refuse a non-floating input (and, unless ``empty_ok``, one with no elements) with an
    error naming the layer, the dtype or the shape; two attribute reads, no computation.

    Without it, an integer input to Linear would be promoted silently to float64, one to
    LayerNorm would fail deep inside NumPy, and an empty batch would fail in a reshape.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise TypeError(
            f"{layer}: expected a floating-point input, got dtype {dtype} "
            "(convert with .astype('float32'))"
        )
    if not empty_ok and getattr(x, "size", 1) == 0:
        raise ValueError(
            f"{layer}: got an empty input of shape {tuple(x.shape)}; every axis "
            "must have at least one element"
        )


def _empty(*shape: int) -> Parameter:
    return Parameter(np.zeros(shape, dtype=float32))


class Identity(Module):
    """Returns its input (a placeholder, e.g. for drop path at rate 0)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Linear(Module):
    """``y = x @ weight.T + bias`` on the last axis; weight (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        self.weight = _empty(self.out_features, self.in_features)
        self.register_parameter("bias", _empty(self.out_features) if bias else None)
        init.default_uniform_(self.weight, self.bias)

    def forward(self, x: Any) -> Tensor:
        _check_input(x, "Linear")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(Module):
    """2-D convolution of NCHW input; weight (out_channels, in_channels/groups, kh, kw)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels", "Conv2d")
        self.out_channels = _positive_int(out_channels, "out_channels", "Conv2d")
        self.groups = _positive_int(groups, "groups", "Conv2d")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels={in_channels} and out_channels={out_channels} must both be "
                f"divisible by groups={groups}"
            )
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride, self.padding, self.dilation = (
            pair(stride, "stride", "Conv2d"),
            pair(padding, "padding", "Conv2d"),
            pair(dilation, "dilation", "Conv2d"),
        )
        self.weight = _empty(out_channels, in_channels // groups, *self.kernel_size)
        self.register_parameter("bias", _empty(out_channels) if bias else None)
        init.default_uniform_(self.weight, self.bias)

    def forward(self, x: Any) -> Tensor:
        _check_input(x, "Conv2d", empty_ok=False)
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes, then scale and shift."""

    def __init__(
        self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True
    ) -> None:
        super().__init__()
        shape = (
            (normalized_shape,)
            if isinstance(normalized_shape, numbers.Integral)
            else normalized_shape
        )
        self.normalized_shape = tuple(
            _positive_int(s, "normalized_shape", "LayerNorm") for s in shape
        )
        self.eps = float(eps)
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=float32))
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        _check_input(x, "LayerNorm")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class BatchNorm2d(Module):
    """Batch normalisation of NCHW input per channel, with running statistics.

    Training mode normalises with the batch statistics and updates ``running_mean`` and
    ``running_var`` (momentum 0.1: new = 0.9 old + 0.1 batch, unbiased variance) and counts
    ``num_batches_tracked``; evaluation mode uses the running statistics.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ) -> None:
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features", "BatchNorm2d")
        self.eps, self.momentum = float(eps), float(momentum)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=float32))
            self.bias = Parameter(np.zeros(num_features, dtype=float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", np.zeros(num_features, dtype=float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=float32))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x: Any) -> Tensor:
        shape = tuple(x.shape)
        if len(shape) != 4 or shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm2d: expected input of shape (N, {self.num_features}, H, W), got "
                f"shape {shape}"
            )
        _check_input(x, "BatchNorm2d", empty_ok=False)
        if self.training:
            self.num_batches_tracked.data += 1
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class GELU(Module):
    """GELU activation; ``approximate="none"`` (exact, erf) or ``"tanh"``."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class _Random(Module):
    """A layer that draws masks in training: from ``self.generator`` if set, else from the
    library's default generator (:mod:`mini_iformer.random`)."""

    def __init__(self, p: float, name: str) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{name}: p must be a probability in [0, 1], got {p!r}")
        self.p: float = float(p)
        self.generator: np.random.Generator | None = None

    def _rng(self) -> np.random.Generator:
        return self.generator if self.generator is not None else random.default_generator()

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout(_Random):
    """Zero each element with probability ``p`` in training, scaling survivors by 1/(1-p)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p, "Dropout")

    def forward(self, x: Any) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return F.dropout(x, self.p, True, generator=self._rng())


class DropPath(_Random):
    """Stochastic depth: drop a residual branch for whole samples with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__(p, "DropPath")

    def forward(self, x: Any) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return F.drop_path(x, self.p, True, generator=self._rng())


class MaxPool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Any) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, count_include_pad: bool = True
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, count_include_pad=self.count_include_pad
        )

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return text + ("" if self.count_include_pad else ", count_include_pad=False")


class Upsample(Module):
    """Resize NCHW input (``F.interpolate``) to ``size`` or by ``scale_factor``."""

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ) -> None:
        super().__init__()
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: Any) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
