"""The backward pass: the order of the graph, the routing of gradients, leaf accumulation.

:meth:`Tensor.backward <mini_iformer.autograd.Tensor.backward>` checks its arguments and calls
:func:`run_backward`. The graph is walked iteratively (a depth-first search with an explicit
stack), so graphs of any depth work; each function's saved arrays are released as soon as its
backward has run, unless ``retain_graph``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import backend

__all__ = ["run_backward", "topological_order", "reduce_to"]

_FREED_MESSAGE = (
    "Trying to backward through the graph a second time: the values saved by {name} were "
    "freed by the previous backward(). Pass retain_graph=True to the first backward() if you "
    "need to go through the graph again, or recompute the forward pass."
)


def topological_order(root: Any) -> list[Any]:
    """Functions reachable from ``root``, each after all functions that feed into it."""
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        if fn._freed:
            raise RuntimeError(_FREED_MESSAGE.format(name=type(fn).name))
        visited.add(id(fn))
        stack.append((fn, True))
        for t in fn.inputs:
            if t is not None and t._ctx is not None and id(t._ctx) not in visited:
                stack.append((t._ctx, False))
    return order


def reduce_to(g: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """Sum a (possibly broadcast) gradient back to ``shape`` and cast it to ``dtype``."""
    if not backend.is_array(g):
        g = np.asarray(g)  # a NumPy scalar (CuPy returns 0-d arrays)
    if g.shape != shape:
        extra = g.ndim - len(shape)
        if extra < 0:
            raise RuntimeError(f"internal: gradient of shape {g.shape} for an input {shape}")
        with np.errstate(invalid="ignore"):  # inf + -inf at a singular point is NaN, silently
            if extra:
                g = g.sum(axis=tuple(range(extra)))
            axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
            if axes:
                g = g.sum(axis=axes, keepdims=True)
        if g.shape != shape:
            raise RuntimeError(f"internal: gradient of shape {g.shape} for an input {shape}")
    if g.dtype != dtype:
        g = g.astype(dtype)
    return g


def _memory_owner(a: Any) -> Any:
    """The array that owns the memory ``a`` looks at (``a`` itself unless it is a view)."""
    while getattr(a, "base", None) is not None and backend.is_array(a.base):
        a = a.base
    return a


def _accumulate_leaf(t: Any, g: Any, shared: set[int]) -> None:
    """Add ``g`` into ``t.grad``; keep ``g`` itself only when nothing else can hold it.

    ``shared`` holds the ids of arrays handed out elsewhere in this backward pass (the
    caller's seed, gradients passed on to other functions, gradients already kept by other
    leaves). A backward may return such an array unchanged (``add`` returns its incoming
    gradient to both inputs) or a view of one, so those are copied: no two ``.grad`` arrays,
    and no ``.grad`` and a caller's array, ever share memory. Fresh arrays, and views of fresh
    arrays (a backward that reshapes its result), are kept as they are.
    """
    if t.grad is None:
        owner = _memory_owner(g)
        if id(g) in shared or id(owner) in shared:
            g = backend.array_module(g).array(g, copy=True)
            owner = g
        shared.add(id(g))
        shared.add(id(owner))
        t.grad = type(t)._make(g)
    else:
        t.grad = type(t)._make(t.grad.data + g)


def run_backward(
    root: Any,
    seed: Any,
    retain_graph: bool,
    profiler: Callable[[Any, str, float], None] | None = None,
) -> None:
    """Backpropagate ``seed``, the gradient of ``root`` (a Tensor), through ``root``'s graph:
    every function once, after all the functions that consumed its output, with the sum of
    the gradients reaching its output; then route what it returns to its inputs (summed back
    to each input's shape), into ``.grad`` for leaves. ``profiler``, when given, is called as
    ``profiler(fn, "backward", seconds)`` for every function."""
    shared = {id(seed), id(_memory_owner(seed))}
    if root._ctx is None:  # a leaf: its gradient is the seed itself
        _accumulate_leaf(root, seed, shared)
        return
    order = topological_order(root._ctx)
    grads: dict[int, Any] = {id(root._ctx): seed}
    for fn in reversed(order):
        g = grads.pop(id(fn), None)
        if g is not None:
            if fn.retained is not None:
                out = fn.retained()
                if out is not None:
                    _accumulate_leaf(out, g, shared)
            if profiler is None:
                in_grads = fn.backward(g)
            else:
                start = time.perf_counter()
                in_grads = fn.backward(g)
                profiler(fn, "backward", time.perf_counter() - start)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for t, gi, need in zip(fn.inputs, in_grads, fn.needs_input_grad):
                if not need or gi is None:
                    continue
                gi = reduce_to(gi, t.data.shape, t.data.dtype)
                if t._ctx is None:
                    _accumulate_leaf(t, gi, shared)
                else:
                    key = id(t._ctx)
                    prev = grads.get(key)
                    grads[key] = gi if prev is None else prev + gi
                    shared.update((id(grads[key]), id(_memory_owner(grads[key]))))
        if not retain_graph:
            fn.release()
