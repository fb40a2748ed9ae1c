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

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

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
    from hypothesis.extra.numpy import array_shapes  # noqa: PLC0415

    shapes = array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                          max_side=max_side)
    if min_side == 1 and max_dims > 0:
        empty = array_shapes(min_dims=max(min_dims, 1), max_dims=max_dims, min_side=0,
                             max_side=max_side).filter(lambda s: 0 in s)
        return st.one_of(*([shapes] * 7), empty)
    return shapes


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


def check_case(case: Case) -> None:
    grad_idx = list(range(len(case.inputs))) if case.grad is None else list(case.grad)
    seed = abs(hash(tuple(a.shape for a in case.inputs))) % 2**32
    rng = np.random.default_rng(seed)

    # -- error parity: where PyTorch refuses the call, we refuse it too -----------------------
    t_in = [torch.tensor(a, requires_grad=i in grad_idx) for i, a in enumerate(case.inputs)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.torch_fn(*t_in)
    except (RuntimeError, ValueError, TypeError, IndexError) as refusal:
        with pytest.raises((ValueError, TypeError, IndexError)):
            case.ours(*[mi.tensor(a) for a in case.inputs])
        case.notes["refused"] = str(refusal)
        return

    # -- ours, float64 ------------------------------------------------------------------------
    ours_in = [mi.tensor(a, requires_grad=i in grad_idx) for i, a in enumerate(case.inputs)]
    outs = _as_list(case.ours(*ours_in))
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
        outs[0].backward(weights[0])  # exercises backward(grad=...) directly
    else:
        loss = None
        for o, w in zip(outs, weights):
            term = (o * mi.tensor(w)).sum()
            loss = term if loss is None else loss + term
        loss.backward()
    t_loss = sum((t * torch.tensor(w)).sum() for t, w in zip(t_outs, weights))
    t_grads = torch.autograd.grad(t_loss, [t_in[i] for i in grad_idx], allow_unused=True)
    ours_grads = []
    for i, tg in zip(grad_idx, t_grads):
        g = ours_in[i].grad
        assert g is not None, f"input {i}: no gradient"
        assert g.shape == ours_in[i].shape and g.dtype == ours_in[i].dtype
        ref = np.zeros(case.inputs[i].shape) if tg is None else tg.numpy()
        _close(g.numpy(), ref, case.rtol * 10, f"gradient of input {i} vs PyTorch")
        ours_grads.append(g.numpy())

    # -- HIPS autograd, the second oracle -------------------------------------------------------
    if case.hips is not None and all(a.size for a in case.inputs):  # (NumPy warns on empties)
        import autograd  # noqa: PLC0415
        import autograd.numpy as anp  # noqa: PLC0415

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
        for o32, o64 in zip(outs32, outs):
            if o64.dtype == np.float64:
                assert o32.dtype == np.float32, f"float32 inputs gave a {o32.dtype} output"
            _close(o32.numpy().astype(np.float64), o64.numpy(), 2e-4, "float32 forward")
        loss32 = None
        for o, w in zip(outs32, weights):
            if o.requires_grad:
                term = (o * mi.tensor(w.astype(np.float32))).sum()
                loss32 = term if loss32 is None else loss32 + term
        if loss32 is not None:
            loss32.backward()
            for i, g64 in zip(grad_idx, ours_grads):
                g32 = in32[i].grad
                assert g32 is not None and g32.dtype == np.float32, "float32 gradient dtype"
                _close(g32.numpy().astype(np.float64), g64, 2e-3, f"float32 gradient of input {i}")
