"""The geometry of a 2-D sliding window, shared by ``conv2d``, the pools and their kernels.

A window of kh x kw taps slides over a zero- (or -inf-) padded (N, C, H, W) input with stride
(sh, sw) and dilation (dh, dw). Output pixel (i, j) reads, at kernel offset (a, b), the padded
input pixel

    (i*sh + a*dh,  j*sw + b*dw)

so the output has, along each axis,

    Ho = (H + top + bottom - dh*(kh - 1) - 1) // sh + 1      (and likewise Wo)

and for one offset, the pixels read by *all* outputs at once are one strided slice of the
padded input, ``xpad[:, :, window.taps(a, b)]``. Every reference form here is a loop over those
kh*kw slices: forward reads them, backward adds into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backend

__all__ = ["Window", "output_size", "block_sums", "lowest"]

Pair = tuple[int, int]


def lowest(dtype: Any) -> Any:
    """The padding that never wins a maximum: -inf, or the smallest integer of ``dtype``."""
    dtype = np.dtype(dtype)
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def output_size(
    size: int,
    kernel: int,
    stride: int,
    before: int,
    after: int,
    dilation: int,
    ceil_mode: bool = False,
) -> int:
    """Outputs along one axis of ``size`` inputs padded by ``before`` and ``after``:
    floor((size + before + after - dilation*(kernel-1) - 1) / stride) + 1. With ``ceil_mode``
    (pooling) the division rounds up, but the last window must start inside the input or its
    leading padding."""
    span = size + before + after - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    return out


def block_sums(a: Any, fh: int, fw: int) -> Any:
    """For (N, C, H, W) ``a`` with H, W multiples of (fh, fw): the sum over each fh x fw block,
    (N, C, H/fh, W/fw), as fh*fw strided slices added up (over 10x faster than ``sum`` over
    two small axes of a reshape)."""
    n, c, h, w = a.shape
    blocks = a.reshape(n, c, h // fh, fh, w // fw, fw)
    out = blocks[:, :, :, 0, :, 0].copy()
    for i in range(fh):
        for j in range(fw):
            if i or j:
                out += blocks[:, :, :, i, :, j]
    return out


@dataclass(frozen=True)
class Window:
    """A sliding window over an input of ``shape`` (N, C, H, W).

    ``pads`` is (top, bottom, left, right). :meth:`for_output` builds a window whose output
    size is given (pooling with ``ceil_mode``), by padding the bottom/right further.
    """

    shape: tuple[int, ...]  # (N, C, H, W)
    kernel: Pair
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    @classmethod
    def for_output(cls, shape, kernel, stride, dilation, padding: Pair, out: Pair) -> Window:
        """Symmetric ``padding``, plus whatever more the bottom/right need for ``out``
        windows to fit (the padding ``ceil_mode`` implies)."""
        extra = [
            max(p, (o - 1) * s + (k - 1) * d + 1 - n - p)
            for n, k, s, d, p, o in zip(shape[2:], kernel, stride, dilation, padding, out)
        ]
        return cls(
            tuple(shape),
            tuple(kernel),
            tuple(stride),
            tuple(dilation),
            (padding[0], extra[0], padding[1], extra[1]),
        )

    @property
    def out(self) -> Pair:
        """(Ho, Wo)."""
        top, bottom, left, right = self.pads
        return (
            output_size(
                self.shape[2], self.kernel[0], self.stride[0], top, bottom, self.dilation[0]
            ),
            output_size(
                self.shape[3], self.kernel[1], self.stride[1], left, right, self.dilation[1]
            ),
        )

    @property
    def padded(self) -> Pair:
        """(Hp, Wp), the padded input's size."""
        top, bottom, left, right = self.pads
        return self.shape[2] + top + bottom, self.shape[3] + left + right

    @property
    def offsets(self) -> list[Pair]:
        """Every kernel offset (a, b), row-major over the window."""
        return [(a, b) for a in range(self.kernel[0]) for b in range(self.kernel[1])]

    def taps(self, a: int, b: int) -> tuple[slice, slice]:
        """The (rows, cols) of the padded input that offset (a, b) reads for all outputs."""
        (ho, wo), (sh, sw), (dh, dw) = self.out, self.stride, self.dilation
        return (
            slice(a * dh, a * dh + sh * (ho - 1) + 1, sh),
            slice(b * dw, b * dw + sw * (wo - 1) + 1, sw),
        )

    def views(self, xpad: Any) -> list[Any]:
        """For every offset, the view of a padded (N, C, Hp, Wp) array it reads: one
        (N, C, Ho, Wo) view per offset, row-major over the window."""
        return [xpad[(slice(None), slice(None)) + self.taps(a, b)] for a, b in self.offsets]

    def pad(self, x: Any, value: float = 0.0) -> Any:
        """``x`` (N, C, H, W) surrounded by ``value``: (N, C, Hp, Wp)."""
        xp = backend.array_module(x)
        top, _, left, _ = self.pads
        h, w = self.shape[2:]
        out = xp.full(x.shape[:2] + self.padded, value, dtype=x.dtype)
        out[:, :, top : top + h, left : left + w] = x
        return out

    def unpad(self, xpad: Any) -> Any:
        """The input-shaped part of a padded array."""
        top, _, left, _ = self.pads
        h, w = self.shape[2:]
        return xpad[:, :, top : top + h, left : left + w]

    @property
    def kernel_args(self) -> tuple[int, ...]:
        """The geometry as the CUDA kernels take it: H, W, Ho, Wo, kh, kw, sh, sw, top, left,
        dh, dw (the bottom and right padding are implied by Ho and Wo)."""
        top, _, left, _ = self.pads
        return (*self.shape[2:], *self.out, *self.kernel, *self.stride, top, left, *self.dilation)
