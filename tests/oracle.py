"""The oracle harness: one function that checks an operation against PyTorch, HIPS autograd
and a finite difference.

A *case* is one concrete use of an operation: its float64 input arrays (some may be
non-contiguous views) and the same computation written three ways:

* ``ours(*tensors)`` with mini_iformer,
* ``torch_fn(*torch_tensors)`` with PyTorch (the reference),
* optionally ``hips(*arrays)`` with HIPS ``autograd.numpy`` (a second, independent oracle).

:func:`check_case` then verifies, on the backend currently selected:

1. the forward values equal PyTorch's (float64);
2. the gradients of ``L = sum_k sum(out_k * w_k)``, with random non-uniform weights ``w_k``
   (so a backward that ignores its incoming gradient fails), equal PyTorch's, and HIPS
   autograd's where given;
3. a central finite difference of ``L`` along a random direction equals the directional
   derivative predicted by our gradients;
4. the same computation in float32 stays float32 (values and gradients) and agrees with the
   float64 result to float32 precision.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import mini_iformer as mi


@dataclass
class Case:
    inputs: list[np.ndarray]
    ours: Callable[..., Any]
    torch_fn: Callable[..., Any]
    hips: Callable[..., Any] | None = None
    grad: Sequence[int] | None = None  # indices of inputs to differentiate (default: all)
    rtol: float = 1e-9  # forward and gradient tolerance against the oracles in float64
    fd: bool = True
    float32: bool = True
    notes: dict[str, Any] = field(default_factory=dict)


def spec_registry() -> tuple[dict[str, Callable[..., Case]], Callable[[str], Callable]]:
    """A SPECS dict for one spec module, and the ``@spec(name)`` decorator that fills it."""
    specs: dict[str, Callable[..., Case]] = {}

    def spec(name: str) -> Callable:
        def decorate(fn: Callable[..., Case]) -> Callable[..., Case]:
            specs[name] = fn
            return fn

        return decorate

    return specs, spec


# ---------------------------------------------------------------------------------------------
# Drawing inputs
# ---------------------------------------------------------------------------------------------
def draw_array(
    data: st.DataObject, shape: Sequence[int], kind: str = "normal", label: str = "x"
) -> np.ndarray:
    """A float64 array of ``shape``; sometimes a non-contiguous view of a bigger array.

    kinds: ``normal`` N(0, 1); ``positive`` in [0.2, 2.2]; ``nonzero`` |x| >= 0.1;
    ``grid`` odd multiples of 0.05 in [-2, 2] (never equal to a multiple of 0.1, so a tie or a
    kink at a multiple of 0.1 is at least 0.05 away); ``distinct`` all values different, at
    least 0.1 apart (tie-free for max/min reductions).
    """
    shape = tuple(shape)
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label}_seed")
    layout = data.draw(st.sampled_from(["contiguous", "transposed", "strided"]), label=f"{label}_layout")
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if kind == "normal":
        flat = rng.standard_normal(n)
    elif kind == "positive":
        flat = rng.uniform(0.2, 2.2, n)
    elif kind == "nonzero":
        v = rng.standard_normal(n)
        flat = np.sign(v + (v == 0)) * (0.1 + np.abs(v))
    elif kind == "grid":
        flat = 0.05 * (2 * rng.integers(-20, 20, n) + 1)
    elif kind == "distinct":
        flat = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.02, 0.02, n)
    else:
        raise ValueError(kind)
    x = flat.reshape(shape)
    if layout == "transposed" and x.ndim >= 2:
        return np.ascontiguousarray(x.T).T  # same values, Fortran order: not C-contiguous
    if layout == "strided" and x.ndim >= 1:
        wide = np.zeros(shape[:-1] + (2 * shape[-1],))
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


def small_shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 4):
    """Shapes of ``min_dims`` to ``max_dims`` axes (0: a 0-d tensor), sides ``min_side`` to
    ``max_side``; with the default ``min_side`` of 1, about one in eight has an empty axis,
    where an op must do what PyTorch does with zero elements (or refuse as it does)."""
    from hypothesis.extra.numpy import array_shapes

    shapes = array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                          max_side=max_side)
    if min_side == 1 and max_dims > 0:
        empty = array_shapes(min_dims=max(min_dims, 1), max_dims=max_dims, min_side=0,
                             max_side=max_side).filter(lambda s: 0 in s)
        return st.one_of(*([shapes] * 7), empty)
    return shapes


SPECIAL_VALUES = ("nan", "inf", "-inf", "zero", "tie")


_SPECIAL = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "zero": 0.0, "tie": "tie"}


def sprinkled(x: np.ndarray, rng: np.random.Generator, values: Sequence[Any]) -> np.ndarray:
    """A contiguous copy of ``x`` with about 30% of its entries (at least one) replaced by
    ``values``, drawn at random; the value "tie" copies another entry of ``x``."""
    out = np.array(x)
    flat, source = out.reshape(-1), x.reshape(-1)
    where = np.flatnonzero(rng.random(flat.size) < 0.3)
    if where.size == 0:
        where = rng.integers(0, flat.size, 1)
    for k in where:
        value = values[int(rng.integers(len(values)))]
        flat[k] = source[int(rng.integers(flat.size))] if isinstance(value, str) else value
    return out


def at_special_values(data: st.DataObject, case: Case, kinds: Sequence[str] = SPECIAL_VALUES,
                      only: Sequence[int] | None = None) -> Case:
    """``case`` with some entries of its inputs replaced by special values: NaN, +inf, -inf,
    exact zeros, and ties (a copy of another entry of the same input, so that a max, a clip or
    a pool meets two equal candidates). Any op, drawn by its own spec, is then checked against
    PyTorch's forward values and gradients where the math has no ordinary answer. There is no
    finite difference or HIPS oracle there (derivatives at a kink or a tie are conventions:
    PyTorch's convention is the specification). ``only``: the inputs that get them (all when
    None)."""
    inputs = []
    for i, a in enumerate(case.inputs):
        skipped = a.size == 0 or (only is not None and i not in only)
        if skipped or not data.draw(st.booleans(), label=f"input {i} has special values"):
            inputs.append(a)
            continue
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label=f"input {i} where"))
        chosen = data.draw(st.lists(st.sampled_from(list(kinds)), min_size=1, max_size=3,
                                    unique=True), label=f"input {i} values")
        inputs.append(sprinkled(a, rng, [_SPECIAL[kind] for kind in chosen]))
    return Case(inputs, case.ours, case.torch_fn, None, case.grad, case.rtol, fd=False,
                float32=case.float32, notes=dict(case.notes, special=True))


def at_edge_shapes(data: st.DataObject, case: Case) -> Case:
    """``case`` with one input cut to an edge shape: empty along one of its axes (``x[:, :0]``),
    or a 0-d tensor (its first element). Whatever the op, PyTorch then either computes a
    result, which ours must equal in shape, dtype, values and gradients, or refuses, and ours
    must refuse too (with a ValueError, TypeError or IndexError that says why)."""
    i = data.draw(st.integers(0, len(case.inputs) - 1), label="edge input")
    a = case.inputs[i]
    if a.ndim and data.draw(st.booleans(), label="empty (or 0-d)"):
        axis = data.draw(st.integers(0, a.ndim - 1), label="empty axis")
        edge = a[(slice(None),) * axis + (slice(0, 0),)]
    else:
        edge = np.array(a.reshape(-1)[0] if a.size else 0.5)
    inputs = list(case.inputs)
    inputs[i] = edge
    return Case(inputs, case.ours, case.torch_fn, None, case.grad, case.rtol, fd=case.fd,
                float32=case.float32, notes=dict(case.notes, edge=(i, edge.shape)))


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------
def _as_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _ours_loss(case: Case, arrays: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> float:
    with mi.no_grad():
        outs = _as_list(case.ours(*[mi.tensor(a) for a in arrays]))
        return float(sum(float((o.numpy() * w).sum()) for o, w in zip(outs, weights)))


def _close(ours: np.ndarray, ref: np.ndarray, rtol: float, what: str) -> None:
    ref = np.asarray(ref)
    finite = np.abs(ref[np.isfinite(ref)])  # inf and NaN must match exactly (equal_nan)
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale, err_msg=what)


def check_case(case: Case, stricter: str | None = None) -> None:
    """Check ``case`` (see the module docstring). ``stricter``: a pattern of the error messages
    with which we refuse, on purpose, calls that PyTorch accepts (said in the op's docstring;
    such a refusal passes, and nothing else is compared)."""
    grad_idx = list(range(len(case.inputs))) if case.grad is None else list(case.grad)
    seed = abs(hash(tuple(a.shape for a in case.inputs))) % 2**32
    rng = np.random.default_rng(seed)

    # -- error parity: where PyTorch refuses the call, we refuse it too -----------------------
    t_in = [torch.tensor(a, requires_grad=i in grad_idx) for i, a in enumerate(case.inputs)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in _as_list(case.torch_fn(*t_in)):
                if torch.is_tensor(t) and min(t.shape, default=0) < 0:
                    # (PyTorch's expand(0, -1) of a 0-d tensor): not an answer, we refuse
                    raise RuntimeError(f"PyTorch returned a tensor of shape {tuple(t.shape)}")
    except (RuntimeError, ValueError, TypeError, IndexError) as refusal:
        with pytest.raises((ValueError, TypeError, IndexError)):
            case.ours(*[mi.tensor(a) for a in case.inputs])
        case.notes["refused"] = str(refusal)
        return

    # -- ours, float64 ------------------------------------------------------------------------
    ours_in = [mi.tensor(a, requires_grad=i in grad_idx) for i, a in enumerate(case.inputs)]
    try:
        outs = _as_list(case.ours(*ours_in))
    except (ValueError, TypeError) as refusal:
        if stricter is None or not re.search(stricter, str(refusal)):
            raise
        case.notes["stricter"] = str(refusal)
        return
    for o in outs:
        assert isinstance(o, mi.Tensor), f"expected a Tensor, got {type(o).__name__}"
        assert o.backend == mi.get_backend(), "the result left the current backend"
    weights = [rng.standard_normal(o.shape) for o in outs]

    # -- PyTorch --------------------------------------------------------------------------------
    t_in = [torch.tensor(a, requires_grad=i in grad_idx) for i, a in enumerate(case.inputs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's own notices (e.g. var without freedom)
        t_outs = _as_list(case.torch_fn(*t_in))
    assert len(t_outs) == len(outs), f"{len(outs)} outputs, PyTorch gives {len(t_outs)}"
    for k, (o, t) in enumerate(zip(outs, t_outs)):
        assert o.shape == tuple(t.shape), f"output {k}: shape {o.shape}, PyTorch {tuple(t.shape)}"
        assert o.dtype == np.dtype(str(t.dtype).replace("torch.", "")), (o.dtype, t.dtype)
        _close(o.numpy(), t.detach().numpy(), case.rtol, f"forward, output {k}")

    differentiable = [o for o in outs if o.requires_grad]
    if not grad_idx or not differentiable:
        return

    # -- gradients of L = sum_k sum(out_k * w_k) -----------------------------------------------
    if len(outs) == 1:
        outs[0].backward(mi.tensor(weights[0]))  # exercises backward(grad=...) directly
    else:
        loss = None
        for o, w in zip(outs, weights):
            term = (o * mi.tensor(w)).sum()
            loss = term if loss is None else loss + term
        loss.backward()
    t_loss = sum((t * torch.tensor(w)).sum() for t, w in zip(t_outs, weights))
    try:
        t_grads = torch.autograd.grad(t_loss, [t_in[i] for i in grad_idx], allow_unused=True)
    except RuntimeError as failure:  # PyTorch's own backward fails (clamp of a 0-d tensor by a
        t_grads = None  # (1,) bound): the finite difference below is then the oracle
        case.notes["pytorch backward failed"] = str(failure)
    ours_grads = []
    for k, i in enumerate(grad_idx):
        g = ours_in[i].grad
        assert g is not None, f"input {i}: no gradient"
        assert g.shape == ours_in[i].shape and g.dtype == ours_in[i].dtype
        if t_grads is not None:
            tg = t_grads[k]
            ref = np.zeros(case.inputs[i].shape) if tg is None else tg.numpy()
            _close(g.numpy(), ref, case.rtol * 10, f"gradient of input {i} vs PyTorch")
        ours_grads.append(g.numpy())

    # -- HIPS autograd, the second oracle -------------------------------------------------------
    if case.hips is not None and all(a.size for a in case.inputs):  # (NumPy warns on empties)
        import autograd
        import autograd.numpy as anp

        def hips_loss(*diff):
            args = list(case.inputs)
            for i, d in zip(grad_idx, diff):
                args[i] = d
            return sum(anp.sum(o * w) for o, w in zip(_as_list(case.hips(*args)), weights))

        hips_grads = autograd.grad(lambda d: hips_loss(*d))([case.inputs[i] for i in grad_idx])
        for i, hg, g in zip(grad_idx, hips_grads, ours_grads):
            _close(g, np.asarray(hg, dtype=float), case.rtol * 10, f"gradient of input {i} vs HIPS autograd")

    # -- finite difference along a random direction (where the outputs are finite numbers) ----
    if case.fd and all(np.isfinite(o.numpy()).all() for o in outs):
        eps = 1e-6
        direction = {i: rng.standard_normal(case.inputs[i].shape) for i in grad_idx}
        plus = [a + eps * direction[i] if i in direction else a for i, a in enumerate(case.inputs)]
        minus = [a - eps * direction[i] if i in direction else a for i, a in enumerate(case.inputs)]
        numeric = (_ours_loss(case, plus, weights) - _ours_loss(case, minus, weights)) / (2 * eps)
        analytic = float(sum((g * direction[i]).sum() for i, g in zip(grad_idx, ours_grads)))
        assert abs(numeric - analytic) <= 1e-5 * max(1.0, abs(analytic), abs(numeric)), (
            f"finite difference {numeric} vs analytic directional derivative {analytic}"
        )

    # -- float32 stays float32 ------------------------------------------------------------------
    if case.float32:
        in32 = [mi.tensor(a.astype(np.float32), requires_grad=i in grad_idx) for i, a in enumerate(case.inputs)]
        outs32 = _as_list(case.ours(*in32))
        # At special values, rounding can turn an inf into a NaN, and PyTorch's own float32 and
        # float64 kernels differ there (gelu(inf) is NaN in float32): our float32 result must
        # then equal our float64 result or PyTorch's float32 result.
        torch32 = _torch_float32(case, grad_idx, weights) if case.notes.get("special") else None
        for k, (o32, o64) in enumerate(zip(outs32, outs)):
            if o64.dtype == np.float64:
                assert o32.dtype == np.float32, f"float32 inputs gave a {o32.dtype} output"
            _close_to_either(o32.numpy().astype(np.float64), o64.numpy(),
                             torch32 and torch32[0][k], 2e-4, "float32 forward")
        loss32 = None
        for o, w in zip(outs32, weights):
            if o.requires_grad:
                term = (o * mi.tensor(w.astype(np.float32))).sum()
                loss32 = term if loss32 is None else loss32 + term
        if loss32 is not None:
            loss32.backward()
            for j, (i, g64) in enumerate(zip(grad_idx, ours_grads)):
                g32 = in32[i].grad
                assert g32 is not None and g32.dtype == np.float32, "float32 gradient dtype"
                _close_to_either(g32.numpy().astype(np.float64), g64, torch32 and torch32[1][j],
                                 2e-3, f"float32 gradient of input {i}")


def _close_to_either(ours: np.ndarray, ref: np.ndarray, other: np.ndarray | None, rtol: float,
                     what: str) -> None:
    """``ours`` close to ``ref``, or, where ``other`` is given, to ``other``."""
    try:
        _close(ours, ref, rtol, what)
    except AssertionError:
        if other is None:
            raise
        _close(ours, other, rtol, what + " (nor PyTorch's float32 result)")


def _torch_float32(case: Case, grad_idx: list[int], weights: list[np.ndarray]):
    """PyTorch's float32 forward values and gradients of the case (as float64 arrays)."""
    t_in = [torch.tensor(a.astype(np.float32), requires_grad=i in grad_idx)
            for i, a in enumerate(case.inputs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_outs = _as_list(case.torch_fn(*t_in))
    loss = sum((t * torch.tensor(w.astype(np.float32))).sum()
               for t, w in zip(t_outs, weights) if t.requires_grad)
    grads = torch.autograd.grad(loss, [t_in[i] for i in grad_idx], allow_unused=True)
    return ([t.detach().numpy().astype(np.float64) for t in t_outs],
            [np.zeros(case.inputs[i].shape) if g is None else g.numpy().astype(np.float64)
             for i, g in zip(grad_idx, grads)])
