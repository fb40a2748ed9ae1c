"""The specification of every core operation, as hypothesis-drawn cases for ``oracle.check_case``.

``SPECS[name](data)`` draws one :class:`~oracle.Case` for the operation registered under
``name`` in ``mini_iformer.OPS``: shapes, values and arguments come from hypothesis, and the
case states the same computation in mini_iformer, PyTorch and (where it can be expressed)
HIPS autograd. ``test_ops.py`` runs them all, and fails if an operation is registered without
a specification here.
"""

from __future__ import annotations

import math
from typing import Any

import autograd.numpy as anp
import autograd.scipy.special as asp
import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from oracle import Case, draw_array, small_shapes, spec_registry, sprinkled

import mini_iformer as mi

SPECS, spec = spec_registry()


def with_specials(data, x: np.ndarray, values, label: str) -> tuple[np.ndarray, bool]:
    """``x``, sometimes with a few entries replaced by the op's special values (NaN, inf, 0:
    where PyTorch defines a value or a gradient by convention). Returns (array, replaced)."""
    if x.size == 0 or not data.draw(st.booleans(), label=f"{label} has special values"):
        return x, False
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label=f"{label} where"))
    return sprinkled(x, rng, list(values)), True


# -- elementwise binary ------------------------------------------------------------------------
_numbers = st.one_of(st.integers(-5, 5), st.floats(-3, 3, allow_nan=False), st.booleans())


def _binary(ours, theirs, hips, a_kind="normal", b_kind="normal", scalar_b=None, specials=None,
            op=None):
    """Tensor with tensor (broadcasting), tensor with a Python number on either side, or two
    Python numbers (the result's dtype is PyTorch's for their tensors: float32 for a float).
    ``specials``: values drawn into the tensors where the op has special points (NaN...),
    compared with PyTorch's forward and gradients (no finite difference there). ``op``: the
    registered operation, called on two Python numbers."""

    def draw(data: st.DataObject) -> Case:
        if op is not None and data.draw(st.integers(0, 9), label="numbers only") == 0:
            p, q = data.draw(_numbers, label="p"), data.draw(_numbers, label="q")
            if op is mi.div:
                assume(q != 0)
            if op is mi.sub:  # PyTorch refuses to subtract bool tensors (so does NumPy)
                assume(not isinstance(p, bool) and not isinstance(q, bool))
            return Case([], lambda: op(p, q), lambda: theirs(torch.tensor(p), torch.tensor(q)))
        shapes = data.draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4))
        a = draw_array(data, shapes.input_shapes[0], a_kind, "a")
        use_scalar = scalar_b is not None and data.draw(st.booleans(), label="scalar operand")
        if specials is not None and not use_scalar:
            b = draw_array(data, shapes.input_shapes[1], b_kind, "b")
            a, special_a = with_specials(data, a, specials, "a")
            b, special_b = with_specials(data, b, specials, "b")
            if special_a or special_b:
                return Case([a, b], ours, theirs, None, fd=False)
            return Case([a, b], ours, theirs, hips)
        if use_scalar:
            s = data.draw(scalar_b, label="scalar")
            reflected = data.draw(st.booleans(), label="scalar on the left")
            if reflected:
                return Case([a], lambda x: ours(s, x), lambda x: theirs(s, x), lambda x: hips(s, x))
            return Case([a], lambda x: ours(x, s), lambda x: theirs(x, s), lambda x: hips(x, s))
        b = draw_array(data, shapes.input_shapes[1], b_kind, "b")
        return Case([a, b], ours, theirs, hips)

    return draw


_floats = st.floats(-3, 3, allow_nan=False).filter(lambda v: abs(v) > 0.1)

SPECS["mul"] = _binary(lambda a, b: a * b, lambda a, b: a * b, lambda a, b: a * b,
                       scalar_b=_floats, op=mi.mul)


def _with_keyword(name, base, keyword, values, fd_off=()):
    """``base``'s cases, and half the time the same op on two tensors with ``keyword`` drawn
    from ``values`` (PyTorch's own argument; no finite difference for values in ``fd_off``,
    where the op is piecewise constant)."""

    def draw(data):
        if data.draw(st.booleans(), label=f"with {keyword}"):
            shapes = data.draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
            a = draw_array(data, shapes.input_shapes[0], "nonzero", "a")
            b = draw_array(data, shapes.input_shapes[1], "nonzero", "b")
            value = data.draw(st.sampled_from(values), label=keyword)
            ours = getattr(mi, name)
            theirs = getattr(torch, name)
            return Case([a, b], lambda x, y: ours(x, y, **{keyword: value}),
                        lambda x, y: theirs(x, y, **{keyword: value}), fd=value not in fd_off)
        return base(data)

    return draw


SPECS["add"] = _with_keyword("add", _binary(lambda a, b: a + b, lambda a, b: a + b,
                                            lambda a, b: a + b, scalar_b=_floats, op=mi.add),
                             "alpha", [2, -0.5, 1])
SPECS["sub"] = _with_keyword("sub", _binary(lambda a, b: a - b, lambda a, b: a - b,
                                            lambda a, b: a - b, scalar_b=_floats, op=mi.sub),
                             "alpha", [2, -0.5, 1])
SPECS["div"] = _with_keyword("div", _binary(lambda a, b: a / b, lambda a, b: a / b,
                                            lambda a, b: a / b, "nonzero", "nonzero", _floats,
                                            op=mi.div),
                             "rounding_mode", [None, "trunc", "floor"], fd_off=("trunc", "floor"))
SPECS["maximum"] = _binary(
    mi.maximum, torch.maximum, anp.maximum, "grid", "grid", specials=[np.nan, 0.05]
)
SPECS["minimum"] = _binary(
    mi.minimum, torch.minimum, anp.minimum, "grid", "grid", specials=[np.nan, 0.05]
)


@spec("pow")
def _pow(data):
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    mode = data.draw(st.sampled_from(["tensor**scalar", "tensor**tensor", "scalar**tensor"]))
    if mode == "tensor**scalar":
        p = data.draw(st.sampled_from([2, 3, -1, 0.5, -1.5, 2.5]), label="exponent")
        x = draw_array(data, shapes.input_shapes[0], "positive")
        return Case([x], lambda t: t**p, lambda t: t**p, lambda t: t**p)
    if mode == "scalar**tensor":
        base = data.draw(st.sampled_from([0.5, 2.0, math.e]), label="base")
        x = draw_array(data, shapes.input_shapes[0])
        return Case([x], lambda t: base**t, lambda t: base**t, lambda t: base**t)
    a = draw_array(data, shapes.input_shapes[0], "positive", "a")
    b = draw_array(data, shapes.input_shapes[1], "normal", "b")
    # base 0 and exponent 0, where PyTorch defines the gradients (0 ** negative is inf)
    a, zero_base = with_specials(data, a, [0.0], "a")
    b, zero_exp = with_specials(data, b, [0.0, 1.0, 2.0], "b")
    if zero_base or zero_exp:
        return Case([a, b], lambda x, y: x**y, lambda x, y: x**y, None, fd=False, float32=False)
    return Case([a, b], lambda x, y: x**y, lambda x, y: x**y, lambda x, y: x**y)


@spec("where")
def _where(data):
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4))
    seed = data.draw(st.integers(0, 2**32 - 1))
    cond = np.random.default_rng(seed).random(shapes.input_shapes[0]) < 0.5
    numbers = data.draw(st.sampled_from(["none", "x", "other", "both"]), label="Python numbers")
    if numbers != "none":  # a number for x, for other, or for both (the result's dtype)
        p, q = data.draw(_numbers, label="x number"), data.draw(_numbers, label="other number")
        if numbers == "both":
            return Case([], lambda: mi.where(mi.tensor(cond), p, q),
                        lambda: torch.where(torch.tensor(cond), p, q))
        y = draw_array(data, shapes.input_shapes[2], label="y")
        if numbers == "x":
            return Case([y], lambda b: mi.where(mi.tensor(cond), p, b),
                        lambda b: torch.where(torch.tensor(cond), p, b))
        return Case([y], lambda a: mi.where(mi.tensor(cond), a, q),
                    lambda a: torch.where(torch.tensor(cond), a, q))
    x = draw_array(data, shapes.input_shapes[1], label="x")
    y = draw_array(data, shapes.input_shapes[2], label="y")
    return Case(
        [x, y],
        lambda a, b: mi.where(mi.tensor(cond), a, b),
        lambda a, b: torch.where(torch.tensor(cond), a, b),
        # HIPS autograd's where cannot sum its gradient over broadcast axes: use it only when
        # no input is broadcast.
        (lambda a, b: anp.where(cond, a, b)) if len(set(shapes.input_shapes)) == 1 else None,
    )


# -- elementwise unary -------------------------------------------------------------------------
def _unary(ours, theirs, hips, kind="normal", scale=None):
    def draw(data):
        x = draw_array(data, data.draw(small_shapes()), kind)
        if scale is not None:
            x = x * data.draw(st.sampled_from(scale), label="scale")
        return Case([x], ours, theirs, hips)

    return draw


SPECS["neg"] = _unary(lambda x: -x, lambda x: -x, lambda x: -x)
SPECS["exp"] = _unary(mi.exp, torch.exp, anp.exp)
SPECS["log"] = _unary(mi.log, torch.log, anp.log, "positive")
SPECS["sqrt"] = _unary(mi.sqrt, torch.sqrt, anp.sqrt, "positive")
SPECS["tanh"] = _unary(mi.tanh, torch.tanh, anp.tanh, scale=[1, 3])
SPECS["sigmoid"] = _unary(mi.sigmoid, torch.sigmoid, lambda x: 1 / (1 + anp.exp(-x)), scale=[1, 5, 30])
SPECS["erf"] = _unary(mi.erf, torch.erf, asp.erf, scale=[1, 2])
@spec("abs")
def _abs(data):
    """Away from 0, and sometimes at 0 and NaN, where PyTorch's gradient is 0."""
    x = draw_array(data, data.draw(small_shapes()), "nonzero")
    x, special = with_specials(data, x, [0.0, np.nan], "x")
    return Case([x], mi.abs, torch.abs, None if special else anp.abs, fd=not special)


@spec("clip")
def _clip(data):
    """Bounds that are None, numbers or tensors (broadcast against x, requiring grad), in any
    order (min > max gives max everywhere, as in PyTorch). x lies on odd multiples of 0.05,
    bounds on multiples of 0.1 (min) and 0.1 + 0.03 (max): no ties, so finite differences
    hold."""
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4))
    x = draw_array(data, shapes.result_shape, "grid")
    kinds = [data.draw(st.sampled_from(["none", "number", "tensor"]), label=f"{b} kind")
             for b in ("min", "max")]
    if kinds == ["none", "none"]:
        kinds[1] = "number"
    bounds, tensors = [], []
    for i, (kind, offset) in enumerate(zip(kinds, (0.0, 0.03))):
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label=f"bound {i}"))
        if kind == "none":
            bounds.append(None)
        elif kind == "number":
            bounds.append(float(rng.integers(-10, 10)) / 10 + offset)
        else:
            bounds.append(len(tensors))
            tensors.append(rng.integers(-10, 10, shapes.input_shapes[i + 1]) / 10 + offset)

    def pick(args, i):
        b = bounds[i]
        return args[1 + b] if isinstance(b, int) and not isinstance(b, bool) else b

    def ours(t, *b):
        return mi.clip(t, pick((t, *b), 0), pick((t, *b), 1))

    def theirs(t, *b):
        lo, hi = pick((t, *b), 0), pick((t, *b), 1)
        if tensors:  # torch.clamp takes numbers or tensors for both bounds, not one of each
            lo, hi = (v if v is None or torch.is_tensor(v) else torch.tensor(v, dtype=t.dtype)
                      for v in (lo, hi))
        return torch.clamp(t, lo, hi)

    hips = None
    if not tensors:
        lo, hi = bounds
        if lo is None or hi is None or lo <= hi:
            hips = lambda t: anp.clip(  # noqa: E731
                t, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    return Case([x, *tensors], ours, theirs, hips)


@spec("astype")
def _astype(data):
    x = draw_array(data, data.draw(small_shapes()))
    target = data.draw(st.sampled_from(["float32", "float64"]))
    return Case(
        [x],
        lambda t: mi.astype(t, target),
        lambda t: t.to(getattr(torch, target)),
        rtol=1e-6 if target == "float32" else 1e-9,
        fd=target == "float64",  # a finite difference through a float32 cast measures rounding
        float32=False,  # this op changes the dtype on purpose; test_autograd checks its grads
    )


# -- matmul ------------------------------------------------------------------------------------
@spec("matmul")
def _matmul(data):
    batch = data.draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    m, k, n = (data.draw(st.integers(1, 5), label=s) for s in "mkn")
    a_vec, b_vec = data.draw(st.booleans(), label="a is 1-D"), data.draw(st.booleans(), label="b is 1-D")
    a_shape = (k,) if a_vec else batch.input_shapes[0] + (m, k)
    b_shape = (k,) if b_vec else batch.input_shapes[1] + (k, n)
    a = draw_array(data, a_shape, label="a")
    b = draw_array(data, b_shape, label="b")
    return Case([a, b], lambda x, y: x @ y, torch.matmul, anp.matmul)


# -- reductions --------------------------------------------------------------------------------
def _axis_arg(data, ndim):
    choice = data.draw(st.sampled_from(["none", "int", "tuple"]), label="axis form")
    if choice == "none" or ndim == 0:
        return None
    if choice == "int":
        return data.draw(st.integers(-ndim, ndim - 1), label="axis")
    axes = data.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(axes)


def _torch_dims(axis):
    """PyTorch's dim: None for all axes (of whatever tensor the op is called with)."""
    return axis if axis is None or isinstance(axis, tuple) else (axis,)


def _hips_axis(axis):
    return axis


def _reduction(name, torch_fn, hips_fn, kind="normal", extra=None):
    def draw(data):
        shape = data.draw(small_shapes(min_dims=0 if name in ("sum", "mean") else 1))
        x = draw_array(data, shape, kind)
        axis = _axis_arg(data, x.ndim)
        keepdims = data.draw(st.booleans(), label="keepdims")
        kwargs = {} if extra is None else extra(data, x.shape, axis)
        return Case(
            [x],
            lambda t: getattr(mi, name)(t, axis=axis, keepdims=keepdims, **kwargs),
            lambda t: torch_fn(t, _torch_dims(axis), keepdims, **kwargs),
            lambda t: hips_fn(t, axis, keepdims, **kwargs),
        )

    return draw


SPECS["sum"] = _reduction("sum", lambda t, d, k: torch.sum(t, d, keepdim=k), lambda t, a, k: anp.sum(t, axis=a, keepdims=k))
SPECS["mean"] = _reduction("mean", lambda t, d, k: torch.mean(t, d, keepdim=k), lambda t, a, k: anp.mean(t, axis=a, keepdims=k))
SPECS["max"] = _reduction("max", lambda t, d, k: torch.amax(t, () if d is None else d, keepdim=k), lambda t, a, k: anp.max(t, axis=a, keepdims=k), "distinct")
SPECS["min"] = _reduction("min", lambda t, d, k: torch.amin(t, () if d is None else d, keepdim=k), lambda t, a, k: anp.min(t, axis=a, keepdims=k), "distinct")


def _correction(data, shape, axis):
    """0, 1, None (PyTorch's default, 1) or a fraction, as PyTorch takes any real number;
    always leaving degrees of freedom (none left is specified in test_ops.py)."""
    axes = range(len(shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    count = math.prod(shape[a] for a in axes)
    choices = [c for c in (0, 1, None, 0.5, 1.3) if count - (1 if c is None else c) > 0]
    return {"correction": data.draw(st.sampled_from(choices or [0, 1]), label="correction")}


SPECS["var"] = _reduction(
    "var",
    lambda t, d, k, correction: torch.var(t, d, correction=correction, keepdim=k),
    lambda t, a, k, correction: anp.var(t, axis=a, ddof=1 if correction is None else correction,
                                        keepdims=k),
    extra=_correction,
)


def _softmax_like(name, torch_fn, hips_fn):
    def draw(data):
        empty = data.draw(st.integers(0, 9), label="with an empty axis") == 0
        shape = data.draw(small_shapes(min_dims=1, min_side=0 if empty else 1))
        x = draw_array(data, shape)
        x = x * data.draw(st.sampled_from([1.0, 10.0]), label="scale")
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
        if data.draw(st.booleans(), label="dtype float32"):  # computed in float32
            return Case([x], lambda t: getattr(mi, name)(t, axis=axis, dtype="float32"),
                        lambda t: torch_fn(t, dim=axis, dtype=torch.float32),
                        rtol=1e-5, fd=False)
        return Case(
            [x],
            lambda t: getattr(mi, name)(t, axis=axis),
            lambda t: torch_fn(t, dim=axis),
            None if x.size == 0 else lambda t: hips_fn(t, axis),
        )

    return draw


def _hips_log_softmax(x, axis):
    from autograd.scipy.special import logsumexp

    return x - logsumexp(x, axis=axis, keepdims=True)


SPECS["softmax"] = _softmax_like("softmax", torch.softmax, lambda x, a: anp.exp(_hips_log_softmax(x, a)))
SPECS["log_softmax"] = _softmax_like("log_softmax", torch.log_softmax, _hips_log_softmax)


# -- shape -------------------------------------------------------------------------------------
@spec("reshape")
def _reshape(data):
    shape = data.draw(small_shapes())
    x = draw_array(data, shape)
    dims = list(data.draw(st.permutations(list(shape)))) if shape else []
    merged: list[int] = []
    for d in dims:
        if merged and data.draw(st.booleans(), label="merge"):
            merged[-1] *= d
        else:
            merged.append(d)
    if merged and data.draw(st.booleans(), label="use -1"):
        merged[data.draw(st.integers(0, len(merged) - 1))] = -1
    new = tuple(merged)
    return Case([x], lambda t: t.reshape(new), lambda t: t.reshape(new), lambda t: anp.reshape(t, new))


@spec("flatten")
def _flatten(data):
    x = draw_array(data, data.draw(small_shapes(min_dims=1)))
    s = data.draw(st.integers(0, x.ndim - 1), label="start")
    e = data.draw(st.integers(s, x.ndim - 1), label="end")
    s_arg, e_arg = s - data.draw(st.sampled_from([0, x.ndim])), e - data.draw(st.sampled_from([0, x.ndim]))
    return Case([x], lambda t: mi.flatten(t, s_arg, e_arg), lambda t: torch.flatten(t, s_arg, e_arg))


@spec("squeeze")
def _squeeze(data):
    shape = list(data.draw(small_shapes(min_dims=0, max_dims=3)))
    for _ in range(data.draw(st.integers(0, 2), label="ones")):
        shape.insert(data.draw(st.integers(0, len(shape))), 1)
    x = draw_array(data, shape)
    if x.ndim and data.draw(st.booleans(), label="with axis"):
        axes = tuple(data.draw(st.lists(st.integers(-x.ndim, x.ndim - 1), min_size=1, max_size=2, unique_by=lambda a: a % x.ndim)))
        return Case([x], lambda t: mi.squeeze(t, axes), lambda t: torch.squeeze(t, axes))
    return Case([x], mi.squeeze, torch.squeeze, anp.squeeze)


@spec("unsqueeze")
def _unsqueeze(data):
    x = draw_array(data, data.draw(small_shapes(max_dims=3)))
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim), label="axis")
    return Case([x], lambda t: mi.unsqueeze(t, axis), lambda t: torch.unsqueeze(t, axis), lambda t: anp.expand_dims(t, axis))


@spec("permute")
def _permute(data):
    x = draw_array(data, data.draw(small_shapes(min_dims=1)))
    axes = tuple(data.draw(st.permutations(list(range(x.ndim)))))
    return Case([x], lambda t: t.permute(*axes), lambda t: t.permute(*axes), lambda t: anp.transpose(t, axes))


@spec("transpose")
def _transpose(data):
    x = draw_array(data, data.draw(small_shapes(min_dims=0)))
    n = max(x.ndim, 1)  # a 0-d tensor takes the axes 0 and -1, as in PyTorch
    a = data.draw(st.integers(-n, n - 1), label="axis0")
    b = data.draw(st.integers(-n, n - 1), label="axis1")
    return Case([x], lambda t: mi.transpose(t, a, b), lambda t: torch.transpose(t, a, b),
                (lambda t: anp.swapaxes(t, a, b)) if x.ndim else None)


def _broadcast_target(data, shape):
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2), label="leading"))
    grown = tuple(data.draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    return lead + grown


@spec("broadcast_to")
def _broadcast_to(data):
    shape = tuple(1 if data.draw(st.booleans()) else n for n in data.draw(small_shapes(max_dims=3)))
    x = draw_array(data, shape)
    target = _broadcast_target(data, shape)
    return Case(
        # (HIPS autograd cannot differentiate broadcast_to with new leading axes: no third oracle)
        [x], lambda t: mi.broadcast_to(t, target), lambda t: torch.broadcast_to(t, target),
    )


@spec("expand")
def _expand(data):
    shape = tuple(1 if data.draw(st.booleans()) else n for n in data.draw(small_shapes(max_dims=3)))
    x = draw_array(data, shape)
    target = _broadcast_target(data, shape)
    lead = len(target) - len(shape)
    sizes = tuple(
        -1 if i >= lead and data.draw(st.booleans(), label="-1") else s for i, s in enumerate(target)
    )
    return Case([x], lambda t: t.expand(sizes), lambda t: t.expand(sizes))


@spec("concatenate")
def _concatenate(data):
    shape = data.draw(small_shapes(min_dims=1, max_dims=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    count = data.draw(st.integers(1, 4), label="count")
    xs = []
    for i in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        xs.append(draw_array(data, s, label=f"x{i}"))
    return Case(
        xs, lambda *ts: mi.concatenate(ts, axis), lambda *ts: torch.cat(ts, axis),
        lambda *ts: anp.concatenate(ts, axis),
    )


@spec("stack")
def _stack(data):
    shape = data.draw(small_shapes(max_dims=3))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    count = data.draw(st.integers(1, 4), label="count")
    xs = [draw_array(data, shape, label=f"x{i}") for i in range(count)]
    return Case(
        xs, lambda *ts: mi.stack(ts, axis), lambda *ts: torch.stack(ts, axis),
        lambda *ts: anp.stack(ts, axis),
    )


@spec("split")
def _split(data):
    x = draw_array(data, data.draw(small_shapes(min_dims=1, max_side=6)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    n = x.shape[axis]
    if data.draw(st.booleans(), label="sections"):
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
        arg = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    else:
        arg = data.draw(st.integers(1, n + 1), label="split_size")
    return Case([x], lambda t: mi.split(t, arg, axis), lambda t: torch.split(t, arg, axis))


@spec("chunk")
def _chunk(data):
    x = draw_array(data, data.draw(small_shapes(min_dims=1, max_side=7)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    chunks = data.draw(st.integers(1, 5), label="chunks")
    return Case([x], lambda t: mi.chunk(t, chunks, axis), lambda t: torch.chunk(t, chunks, axis))


def _basic_index(data, shape):
    parts: list[Any] = []
    for n in shape:
        kind = data.draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int" and n > 0:
            parts.append(data.draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = data.draw(st.one_of(st.none(), st.integers(-n, n)))
            stop = data.draw(st.one_of(st.none(), st.integers(-n, n)))
            parts.append(slice(start, stop, data.draw(st.integers(1, 3))))
        else:
            parts.append(slice(None))
    if parts and data.draw(st.booleans(), label="ellipsis"):
        cut = data.draw(st.integers(0, len(parts)))
        parts = parts[:cut] + [Ellipsis]
    if data.draw(st.booleans(), label="newaxis"):
        parts.insert(data.draw(st.integers(0, len(parts))), None)
    return tuple(parts)


@spec("getitem")
def _getitem(data):
    shape = data.draw(small_shapes(min_dims=1, max_dims=3))
    x = draw_array(data, shape)
    kind = data.draw(st.sampled_from(["basic", "int array", "bool mask", "array + slice"]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "basic":
        index = _basic_index(data, shape)
        t_index = index
    elif kind == "int array":
        # repeats on purpose: their gradients must add up (none at all for an empty axis)
        count = data.draw(st.integers(1, 6)) if shape[0] else 0
        idx = rng.integers(-shape[0], max(shape[0], 1), size=count)
        index, t_index = idx, torch.tensor(idx)
    elif kind == "bool mask":
        mask = rng.random(shape) < 0.5
        index, t_index = mask, torch.tensor(mask)
    else:
        axis_len = shape[-1]
        idx = rng.integers(0, max(axis_len, 1), size=(2, 3) if axis_len else (2, 0))
        index = (Ellipsis, idx) if len(shape) == 1 else (slice(None), Ellipsis, idx)
        t_index = (Ellipsis, torch.tensor(idx)) if len(shape) == 1 else (slice(None), Ellipsis, torch.tensor(idx))
    ours_index = tuple(mi.tensor(p) if isinstance(p, np.ndarray) else p for p in index) if isinstance(index, tuple) else (
        mi.tensor(index) if isinstance(index, np.ndarray) else index
    )
    return Case([x], lambda t: t[ours_index], lambda t: t[t_index], lambda t: t[index])


@spec("pad")
def _pad(data):
    mode = data.draw(st.sampled_from(["constant", "constant", "reflect", "replicate",
                                      "circular"]), label="mode")
    if mode != "constant":  # the last k of k + 1 or k + 2 axes, widths within the axis
        k = data.draw(st.integers(1, 3), label="padded axes")
        shape = data.draw(small_shapes(min_dims=k + 1, max_dims=k + 2, min_side=2))
        x = draw_array(data, shape)
        widths = []
        for i in range(k):
            n = shape[-1 - i]
            top = n - 1 if mode == "reflect" else n if mode == "circular" else 4
            widths += [data.draw(st.integers(0, top), label=f"width {2 * i}"),
                       data.draw(st.integers(0, top), label=f"width {2 * i + 1}")]
        pad = tuple(widths)
        return Case([x], lambda t: mi.pad(t, pad, mode=mode),
                    lambda t: torch.nn.functional.pad(t, pad, mode=mode))
    x = draw_array(data, data.draw(small_shapes(min_dims=1, max_dims=4)))
    k = data.draw(st.integers(1, x.ndim), label="padded axes")
    widths = []
    for i in range(k):
        n = x.shape[x.ndim - 1 - i]
        lo = data.draw(st.integers(-min(1, n - 1), 3))
        hi = data.draw(st.integers(-min(1, n - 1 + min(lo, 0)), 3))
        widths += [lo, hi]
    value = data.draw(st.sampled_from([0.0, -1.5, 2.0]), label="value")
    pad = tuple(widths)
    return Case(
        [x], lambda t: mi.pad(t, pad, value), lambda t: torch.nn.functional.pad(t, pad, value=value)
    )


# -- specifications kept in their own files (one per op family): tests/specs_*.py ---------------
def _load_family_specs() -> None:
    import importlib
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("specs_*.py")):
        family = importlib.import_module(path.stem).SPECS
        clash = set(family) & set(SPECS)
        if clash:
            raise RuntimeError(f"{path.name} specifies {sorted(clash)} a second time")
        SPECS.update(family)


_load_family_specs()
