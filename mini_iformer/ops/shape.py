"""Operations that move values around without changing them.

reshape, permute/transpose, broadcast_to/expand, squeeze/unsqueeze, flatten, concatenate,
stack, split/chunk, indexing (getitem) and constant padding. Their backward passes move the
gradient back the way the values came: reshape back, permute by the inverse permutation,
sum over broadcast axes, slice the pieces of a concatenation apart, scatter-add into the
positions an index read from.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor, as_tensor_list, register_op
from .args import normalize_axes, normalize_axis

__all__ = [
    "reshape",
    "permute",
    "transpose",
    "broadcast_to",
    "expand",
    "squeeze",
    "unsqueeze",
    "flatten",
    "concatenate",
    "stack",
    "split",
    "chunk",
    "getitem",
    "pad",
]


def _shape_args(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        return tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"a shape must be integers, got {shape!r}") from None


# -- reshape and friends -----------------------------------------------------------------------
class Reshape(Function):
    """y = x with a new shape (same elements, row-major order);  dx = g reshaped back."""

    name = "reshape"

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


@register_op("reshape")
def reshape(x: Any, *shape: Any) -> Tensor:
    """Same elements in a new shape; one entry may be -1 (inferred). ``reshape(x, 2, 3)`` or
    ``reshape(x, (2, 3))``."""
    return Reshape.apply(as_tensor(x), shape=_shape_args(shape))


@register_op("flatten")
def flatten(x: Any, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes ``start_axis..end_axis`` (inclusive) into one, like ``torch.flatten``."""
    x = as_tensor(x)
    if x.ndim == 0:  # the axes 0 and -1 name the scalar's one place, as in PyTorch
        for a in (start_axis, end_axis):
            normalize_axis(a, 1, "flatten", x.shape)
        return reshape(x, 1)
    s = normalize_axis(start_axis, x.ndim, "flatten", x.shape)
    e = normalize_axis(end_axis, x.ndim, "flatten", x.shape)
    if s > e:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    shape = x.shape
    return reshape(x, shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :])


@register_op("squeeze")
def squeeze(x: Any, axis: Any = None) -> Tensor:
    """Remove size-1 axes (all of them, or those in ``axis``; other sizes are left alone, as in
    PyTorch)."""
    x = as_tensor(x)
    if axis is None:
        drop = {i for i, n in enumerate(x.shape) if n == 1}
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze", x.shape)  # (a repeated axis is refused)
        drop = {a for a in axes if x.shape[a] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


@register_op("unsqueeze")
def unsqueeze(x: Any, axis: int) -> Tensor:
    """Insert a size-1 axis at position ``axis`` (``-1`` appends), like ``torch.unsqueeze``."""
    x = as_tensor(x)
    a = normalize_axis(axis, x.ndim + 1, "unsqueeze", x.shape)
    return reshape(x, x.shape[:a] + (1,) + x.shape[a:])


# -- permutations ------------------------------------------------------------------------------
class Permute(Function):
    """y = x with axes reordered;  dx = g with the inverse order."""

    name = "permute"

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        return g.transpose(tuple(np.argsort(self.axes).tolist()))


@register_op("permute")
def permute(x: Any, *axes: Any) -> Tensor:
    """Reorder the axes: output axis i is input axis ``axes[i]`` (``torch.permute``)."""
    x = as_tensor(x)
    axes = _shape_args(axes)
    if len(axes) != x.ndim:
        raise ValueError(
            f"permute: {len(axes)} axes given for a tensor of {x.ndim} dimensions (shape {x.shape})"
        )
    norm = tuple(normalize_axis(a, x.ndim, "permute", x.shape) for a in axes)
    if sorted(norm) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the axes of shape {x.shape}")
    return Permute.apply(x, axes=norm)


@register_op("transpose")
def transpose(x: Any, axis0: int, axis1: int) -> Tensor:
    """Swap two axes (``torch.transpose``); ``x.T`` reverses all axes."""
    x = as_tensor(x)
    a = normalize_axis(axis0, x.ndim, "transpose", x.shape)
    b = normalize_axis(axis1, x.ndim, "transpose", x.shape)
    axes = list(range(x.ndim))
    if axes:  # a 0-d tensor (axes 0 or -1) is its own transpose, as in PyTorch
        axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, axes=tuple(axes))


# -- broadcasting ------------------------------------------------------------------------------
class BroadcastTo(Function):
    """y = x repeated along broadcast axes (a view);  dx = g summed over them (by the engine)."""

    name = "broadcast_to"

    def forward(self, x, shape):
        return backend.array_module(x).broadcast_to(x, shape)

    def backward(self, g):
        return g


def _check_broadcastable(src: tuple[int, ...], dst: tuple[int, ...], op: str) -> None:
    ok = len(dst) >= len(src) and all(
        s == d or s == 1 for s, d in zip(reversed(src), reversed(dst))
    )
    if not ok:
        raise ValueError(f"{op}: cannot broadcast a tensor of shape {src} to shape {dst}")


@register_op("broadcast_to")
def broadcast_to(x: Any, *shape: Any) -> Tensor:
    """Repeat size-1 (and missing leading) axes to reach ``shape`` without copying."""
    x = as_tensor(x)
    shape = _shape_args(shape)
    _check_broadcastable(x.shape, shape, "broadcast_to")
    return BroadcastTo.apply(x, shape=shape)


@register_op("expand")
def expand(x: Any, *sizes: Any) -> Tensor:
    """``torch.Tensor.expand``: like broadcast_to, where -1 keeps that axis's size."""
    x = as_tensor(x)
    sizes = _shape_args(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes given for a tensor of shape {x.shape}")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    if builtins.any(s < 0 for s in shape):
        raise ValueError(f"expand: -1 is only allowed for existing axes, got sizes {sizes}")
    _check_broadcastable(x.shape, shape, "expand")
    return BroadcastTo.apply(x, shape=shape)


# -- joining and splitting ---------------------------------------------------------------------
class Concatenate(Function):
    """y = the inputs joined along ``axis``;  each input's gradient is its slice of g."""

    name = "concatenate"

    def forward(self, *xs, axis):
        self.axis = axis
        self.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1].tolist()
        return backend.array_module(*xs).concatenate(xs, axis=axis)

    def backward(self, g):
        return tuple(backend.array_module(g).split(g, self.bounds, axis=self.axis))


class Stack(Function):
    """y = the inputs stacked along a new ``axis``;  input i's gradient is g taken at i."""

    name = "stack"

    def forward(self, *xs, axis):
        self.axis = axis
        return backend.array_module(*xs).stack(xs, axis=axis)

    def backward(self, g):
        xp = backend.array_module(g)
        return tuple(xp.take(g, i, axis=self.axis) for i in range(g.shape[self.axis]))


def _join_axis(xs: list[Tensor], axis: Any, ndim: int, op: str) -> int:
    try:
        return normalize_axis(axis, ndim, op, xs[0].shape)
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in xs)
        raise ValueError(
            f"{op}: axis {axis} is out of range for tensors of shapes {shapes}"
        ) from None


def _check_join(xs: list[Tensor], op: str, axis: int, same_axis_too: bool) -> None:
    first = xs[0].shape
    for t in xs[1:]:
        if t.ndim != len(first) or builtins.any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first)) if same_axis_too or i != axis
        ):
            shapes = ", ".join(str(t.shape) for t in xs)
            raise ValueError(f"{op}: tensors of shapes {shapes} cannot be joined along axis {axis}")


@register_op("concatenate")
def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (``torch.cat``)."""
    xs = [as_tensor(t) for t in as_tensor_list(tensors, "concatenate")]
    if xs[0].ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    a = _join_axis(xs, axis, xs[0].ndim, "concatenate")
    _check_join(xs, "concatenate", a, same_axis_too=False)
    return Concatenate.apply(*xs, axis=a)


@register_op("stack")
def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis."""
    xs = [as_tensor(t) for t in as_tensor_list(tensors, "stack")]
    a = _join_axis(xs, axis, xs[0].ndim + 1, "stack")
    _check_join(xs, "stack", a, same_axis_too=True)
    return Stack.apply(*xs, axis=a)


def _slices_along(x: Tensor, axis: int, sizes: list[int]) -> list[Tensor]:
    out, start = [], 0
    for n in sizes:
        index = (slice(None),) * axis + (slice(start, start + n),)
        out.append(getitem(x, index))
        start += n
    return out


@register_op("split")
def split(x: Any, split_size_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """``torch.split``: pieces of ``split_size`` along ``axis`` (the last may be smaller), or
    pieces of the listed sizes (which must add up to the axis length)."""
    x = as_tensor(x)
    a = normalize_axis(axis, x.ndim, "split", x.shape)
    n = x.shape[a]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [operator.index(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n or builtins.any(s < 0 for s in sizes):
            raise ValueError(
                f"split: sections {sizes} do not add up to the size {n} of axis {a} "
                f"(shape {x.shape})"
            )
    else:
        size = operator.index(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        sizes = sizes or [0]
    return _slices_along(x, a, sizes)


@register_op("chunk")
def chunk(x: Any, chunks: int, axis: int = 0) -> list[Tensor]:
    """``torch.chunk``: up to ``chunks`` pieces of size ceil(n / chunks) along ``axis``."""
    x = as_tensor(x)
    chunks = operator.index(chunks)
    if chunks <= 0:
        raise ValueError(f"chunk: the number of chunks must be positive, got {chunks}")
    a = normalize_axis(axis, x.ndim, "chunk", x.shape)
    size = -(-x.shape[a] // chunks) if x.shape[a] else 0
    return split(x, size, a) if size else _slices_along(x, a, [0] * chunks)


# -- indexing ----------------------------------------------------------------------------------
def _index_part(i: Any) -> Any:
    if isinstance(i, Tensor):
        return i.data
    if isinstance(i, list) or (isinstance(i, np.ndarray) and backend.get_backend() != "numpy"):
        return backend.asarray(i)
    return i


class GetItem(Function):
    """y = x[index];  dx = zeros with g added at the indexed positions.

    Basic indices (ints, slices, None, ...) never select an element twice, so the gradient is
    written with a plain assignment. Integer-array indices may repeat an element, so their
    gradient is scatter-added (``np.add.at`` / ``cupyx.scatter_add``): every read adds.
    """

    name = "getitem"

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        parts = index if isinstance(index, tuple) else (index,)
        self.advanced = builtins.any(backend.is_array(p) for p in parts)
        return x[index]

    def backward(self, g):
        gx = backend.array_module(g).zeros(self.shape, dtype=g.dtype)
        if self.advanced:
            backend.scatter_add(gx, self.index, g)
        else:
            gx[self.index] = g
        return gx


@register_op("getitem")
def getitem(x: Any, index: Any) -> Tensor:
    """``x[index]`` with NumPy semantics: basic slicing and integer/boolean array indexing."""
    index = tuple(_index_part(i) for i in index) if isinstance(index, tuple) else _index_part(index)
    return GetItem.apply(as_tensor(x), index=index)


# -- padding -----------------------------------------------------------------------------------
class Pad(Function):
    """y = x surrounded by ``value``;  dx = the part of g where x was placed.

    ``widths`` holds (before, after) per axis; a negative width crops instead, as in PyTorch.
    """

    name = "pad"

    def forward(self, x, widths, value):
        xp = backend.array_module(x)
        out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths))
        src, dst = [], []
        for n, (lo, hi) in zip(x.shape, widths):
            start = builtins.max(0, -lo)
            stop = n - builtins.max(0, -hi)
            length = builtins.max(0, stop - start)
            src.append(slice(start, start + length))
            dst.append(slice(builtins.max(0, lo), builtins.max(0, lo) + length))
        self.src, self.dst, self.shape = tuple(src), tuple(dst), x.shape
        y = xp.full(out_shape, value, dtype=x.dtype)
        y[self.dst] = x[self.src]
        return y

    def backward(self, g):
        gx = backend.array_module(g).zeros(self.shape, dtype=g.dtype)
        gx[self.src] = g[self.dst]
        return gx


@register_op("pad")
class PadByIndex(Function):
    """Padding that copies input values: y = x taken, along each padded axis, at the source
    index of every output position (``reflect``, ``replicate``, ``circular``);
    dx = g added back to the sources, axis by axis in reverse order (each input value may
    feed several outputs)."""

    name = "pad"

    def forward(self, x, sources):
        xp = backend.array_module(x)
        self.sources, self.sizes = sources, []
        for axis, index in sources:
            self.sizes.append(x.shape[axis])
            x = xp.take(x, xp.asarray(index), axis=axis)
        return x

    def backward(self, g):
        xp = backend.array_module(g)
        for (axis, index), size in reversed(list(zip(self.sources, self.sizes))):
            moved = xp.moveaxis(g, axis, 0)
            out = xp.zeros((size,) + moved.shape[1:], dtype=g.dtype)
            backend.scatter_add(out, xp.asarray(index), moved)
            g = xp.moveaxis(out, 0, axis)
        return g


#: PyTorch's padding modes that copy values, by the name NumPy's ``pad`` gives the same rule.
PAD_MODES: dict[str, Literal["reflect", "edge", "wrap"]] = {
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def pad(x: Any, pad: Sequence[int], value: float = 0.0, mode: str = "constant") -> Tensor:
    """Padding with PyTorch's argument: ``pad`` lists (before, after) pairs starting from the
    *last* axis, e.g. ``(1, 1, 2, 2)`` pads the last axis by 1 and the one before by 2.

    ``mode``: "constant" (``value``), or, for the last 1-3 axes of a batched or unbatched
    input as in PyTorch, "reflect" (mirrored without repeating the edge: widths smaller than
    the axis), "replicate" (the edge value repeated) or "circular" (wrapped around: widths at
    most the axis). Negative widths crop with "constant" only: the other modes take widths
    from 0 (PyTorch's cropping there is inconsistent between input ranks, and for "circular"
    returns uninitialised memory in some cases).
    """
    x = as_tensor(x)
    widths_flat = [operator.index(p) for p in pad]
    if len(widths_flat) % 2 or len(widths_flat) // 2 > x.ndim:
        raise ValueError(
            f"pad: expected an even number of widths, at most 2 per axis, got {len(widths_flat)} "
            f"for a tensor of shape {x.shape}"
        )
    widths = [(0, 0)] * x.ndim
    for i in range(len(widths_flat) // 2):
        widths[x.ndim - 1 - i] = (widths_flat[2 * i], widths_flat[2 * i + 1])
    if mode == "constant":
        for axis, (lo, hi) in enumerate(widths):
            if x.shape[axis] + min(lo, 0) + min(hi, 0) < 0:
                raise ValueError(
                    f"pad: negative widths {(lo, hi)} crop more than the {x.shape[axis]} "
                    f"elements of axis {axis} (pad {tuple(widths_flat)}, input shape {x.shape})"
                )
        return Pad.apply(x, widths=tuple(widths), value=value)
    if mode not in PAD_MODES:
        raise ValueError(
            f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}"
        )
    k = len(widths_flat) // 2
    if k not in (1, 2, 3) or x.ndim not in (k + 1, k + 2):
        raise ValueError(
            f"pad: mode {mode!r} pads the last 1, 2 or 3 axes of a batched or unbatched input: "
            f"{len(widths_flat)} widths need {k + 1} or {k + 2} dimensions, got shape {x.shape}"
        )
    if mode != "circular" and 0 in (x.shape[1:] if x.ndim == k + 2 else x.shape):
        raise ValueError(
            f"pad: mode {mode!r} needs every axis but the batch axis non-empty, got shape {x.shape}"
        )
    sources = []
    for axis in range(x.ndim - k, x.ndim):
        index = _pad_sources(x.shape[axis], widths[axis], mode)
        if index is None:
            raise ValueError(
                f"pad: mode {mode!r} cannot pad an axis of size {x.shape[axis]} by "
                f"{widths[axis]} (pad {tuple(widths_flat)}, input shape {x.shape}): widths "
                "from 0, smaller than the axis for reflect, at most the axis for circular"
            )
        if len(index) != x.shape[axis]:
            sources.append((axis, index))
    if not sources:  # nothing to add: a copy
        return Pad.apply(x, widths=((0, 0),) * x.ndim, value=value)
    return PadByIndex.apply(x, sources=tuple(sources))


def _pad_sources(n: int, widths: tuple[int, int], mode: str) -> np.ndarray | None:
    """The source index of every output position along one axis of size ``n`` (None when
    PyTorch refuses the widths): NumPy's ``pad`` rule for the mode applied to the positions
    0..n-1."""
    lo, hi = widths
    limit = {"reflect": n - 1, "circular": n}.get(mode, max(lo, hi))
    if min(lo, hi) < 0 or max(lo, hi) > limit:
        return None
    return np.pad(np.arange(n), (lo, hi), mode=PAD_MODES[mode])
