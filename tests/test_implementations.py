"""Every implementation of every operation, by construction: the registry is the list.

* Each operation's reference meets the operation's whole specification (PyTorch in float64,
  HIPS autograd, a finite difference, float32), inside ``use("reference")``.
* Every other implementation, forced with ``use(op=name)``, equals the reference on the same
  hypothesis-drawn cases: the forward and every gradient, in float64 to 1e-9 and in float32
  to float32 rounding, wherever it supports the call; blocked forms also with blocks of a
  few elements on two threads, so that every block boundary is crossed. CUDA forms run
  through the CPU emulator.
* The mechanism: ``use`` and ``MINI_IFORMER_IMPL``, errors that name what was wrong, and the
  automatic choice on iFormer's own shapes.
* A few training steps of iformer_cifar give the same weights in both modes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from op_specs import SPECS
from oracle import _as_list, check_case

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer import runtime
from mini_iformer.ops import cuda_emulator, implementations, registry, use

#: Operations with more than one implementation, and each of their implementations.
MULTI = sorted(op for op in mi.OPS if len(implementations(op)) > 1)
FORMS = [(op, name) for op in MULTI for name in implementations(op) if name != "reference"]


def test_the_operations_the_library_speeds_up_all_have_a_reference_and_fast_forms():
    assert set(MULTI) >= {
        "conv2d", "max_pool2d", "avg_pool2d", "interpolate", "layer_norm", "batch_norm",
        "gelu", "softmax", "scaled_dot_product_attention",
    }
    for op in mi.OPS:  # every operation answers, with its reference first
        impls = implementations(op)
        assert list(impls)[0] == "reference", op
        assert callable(impls["reference"].forward), op


@pytest.mark.parametrize("op", MULTI)
@given(data=st.data())
def test_the_reference_meets_the_whole_specification(op, data):
    with use("reference"):
        check_case(SPECS[op](data))


def _run(case, arrays, dtype):
    """Outputs and input gradients (of a fixed non-uniform weighting) of ``case``."""
    inputs = [mi.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    outs = _as_list(case.ours(*inputs))
    rng = np.random.default_rng(7)
    loss = None
    for o in outs:
        if o.requires_grad:
            term = (o * mi.tensor(rng.standard_normal(o.shape).astype(dtype))).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    return [o.numpy() for o in outs] + [None if t.grad is None else t.grad.numpy()
                                       for t in inputs]


def _same(fast, ref, rtol, what):
    for k, (a, b) in enumerate(zip(fast, ref)):
        if a is None or b is None:
            assert a is None and b is None, f"{what}: array {k} missing on one side"
            continue
        assert a.dtype == b.dtype, f"{what}: array {k} is {a.dtype}, the reference's {b.dtype}"
        finite = np.abs(b[np.isfinite(b)])
        scale = max(1.0, float(finite.max()) if finite.size else 1.0)
        tol = rtol if a.dtype == np.float64 else max(rtol, 2e-5)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, equal_nan=True,
                                   err_msg=f"{what}, array {k}")


@pytest.mark.parametrize("op, name", FORMS, ids=[f"{op}:{name}" for op, name in FORMS])
@settings(suppress_health_check=[*settings().suppress_health_check,
                                 HealthCheck.filter_too_much])  # a form covers part of the specs
@given(data=st.data())
def test_every_fast_form_equals_the_reference(op, name, data):
    """Forced where it supports the call (else the draw is rejected), in float64 and float32;
    with the default blocks or with tiny ones on two threads."""
    if name.startswith("cuda") and not cuda_emulator.available():
        pytest.skip("no C++ compiler to emulate the CUDA kernels")
    case = SPECS[op](data)
    elements = data.draw(st.sampled_from([None, 1, 7, 64]), label="elements per block")
    checked = 0
    for dtype, rtol in ((np.float64, 1e-9), (np.float32, 2e-5)):
        with use("reference"):
            ref = _run(case, case.inputs, dtype)
        with ExitStack() as stack:
            stack.enter_context(use(**{op: name}))
            if name.startswith("cuda"):
                stack.enter_context(cuda_emulator.emulated())
            if elements:
                stack.enter_context(runtime.blocks(elements=elements, threads=2))
            try:
                fast = _run(case, case.inputs, dtype)
            except registry.NotSupported:
                continue
        if ref[0] is not None and ref[0].dtype == np.float32:
            rtol = max(rtol, 2e-5)  # the case computes in float32 (e.g. softmax's dtype=)
        _same(fast, ref, rtol, f"{op}:{name} in {np.dtype(dtype)}")
        checked += 1
    if not checked:
        reject()


# -- the mechanism -------------------------------------------------------------------------------
def _conv_implementation(x_shape, w_shape, **kwargs):
    x = mi.tensor(np.ones(x_shape, np.float32), requires_grad=True)
    y = F.conv2d(x, mi.tensor(np.ones(w_shape, np.float32)), **kwargs)
    return y._ctx.implementation.name


@pytest.mark.parametrize("x_shape, w_shape, kwargs, expected", [
    # iFormer-S (224x224, batch 8) and iformer_cifar (32x32, batch 128)
    ((8, 64, 56, 56), (64, 1, 3, 3), dict(padding=1, groups=64), "depthwise-rows"),
    ((8, 96, 56, 56), (192, 96, 1, 1), {}, "pointwise"),
    ((8, 3, 224, 224), (48, 3, 3, 3), dict(stride=2, padding=1), "im2col"),
    ((128, 80, 16, 16), (80, 1, 3, 3), dict(padding=1, groups=80), "depthwise-channel-major"),
    ((128, 3, 4, 4), (3, 1, 3, 3), dict(padding=1, groups=3), "depthwise-pixel-major"),
    ((4, 6, 8, 8), (4, 6, 3, 3), dict(stride=2, padding=1), "im2col-folded"),
    ((4, 6, 8, 8), (4, 3, 3, 3), dict(stride=2, padding=1, groups=2), "im2col"),
])
def test_the_automatic_choice_on_iformers_shapes(x_shape, w_shape, kwargs, expected):
    with use("fast"):
        assert _conv_implementation(x_shape, w_shape, **kwargs) == expected


def test_use_reference_forces_every_operation_and_nests():
    x = mi.randn(2, 4, 8, 8, requires_grad=True)
    before = registry.mode()
    with use("fast"):
        assert F.max_pool2d(x, 3, 1, 1)._ctx.implementation.name == "offsets"
    with use("reference"):
        assert F.max_pool2d(x, 3, 1, 1)._ctx.implementation.name == "reference"
        assert F.gelu(x)._ctx.implementation.name == "reference"
        with use("fast"):
            assert F.gelu(x)._ctx.implementation.name != "reference"
        with use(gelu="blocked"):
            assert F.gelu(x)._ctx.implementation.name == "blocked"
            assert F.layer_norm(x, (8,))._ctx.implementation.name == "reference"
    assert registry.mode() == before


def test_a_forced_form_that_does_not_apply_says_so():
    x = mi.randn(1, 2, 5, 5)
    with use(conv2d="pointwise"), pytest.raises(registry.NotSupported, match="pointwise"):
        F.conv2d(x, mi.randn(2, 2, 3, 3))


@pytest.mark.parametrize("args, kwargs, message", [
    (("slow",), {}, "mode must be 'reference' or 'fast'"),
    ((), {"conv2d": "winograd"}, "conv2d has no implementation 'winograd'"),
    ((), {"convolution": "im2col"}, "no operation named 'convolution'"),
])
def test_use_refuses_unknown_names(args, kwargs, message):
    with pytest.raises(ValueError, match=message), use(*args, **kwargs):
        pass


@pytest.mark.parametrize("value, mode", [("reference", "reference"), ("fast", "fast"),
                                         ("", "fast"), ("Reference", "reference")])
def test_the_environment_variable_sets_the_mode_for_the_process(value, mode):
    env = dict(os.environ, MINI_IFORMER_IMPL=value)
    code = ("import mini_iformer as mi, mini_iformer.functional as F; "
            "x = mi.randn(3, requires_grad=True); "
            "print(mi.ops.registry.mode(), F.gelu(x)._ctx.implementation.name)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == mode
    assert (out[1] == "reference") == (mode == "reference")


def test_an_unknown_environment_value_is_refused_by_name():
    env = dict(os.environ, MINI_IFORMER_IMPL="fastest")
    result = subprocess.run([sys.executable, "-c", "import mini_iformer"], env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "MINI_IFORMER_IMPL='fastest'" in result.stderr


def test_every_implementation_has_a_docstring_saying_what_it_does():
    for op in MULTI:
        for name, impl in implementations(op).items():
            assert impl.summary.endswith("."), f"{op}:{name}: {impl.summary!r} is not a sentence"
            assert impl.backward is not None and impl.backward.__doc__, f"{op}:{name}"


# -- whole training steps in both modes ---------------------------------------------------------
def _train(mode: str, steps: int = 3) -> dict[str, np.ndarray]:
    from mini_iformer.optim import AdamW

    with use(mode):
        mi.random.manual_seed(0)
        model = mi.create_model("iformer_cifar", drop_path_rate=0.0).astype(np.float64)
        optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        rng = np.random.default_rng(1)
        for _ in range(steps):
            x = mi.tensor(rng.standard_normal((4, 3, 32, 32)))
            y = mi.tensor(rng.integers(0, 10, 4))
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}


def test_training_steps_give_the_same_weights_in_reference_and_fast_mode():
    fast, ref = _train("fast"), _train("reference")
    assert fast.keys() == ref.keys()
    changed = 0
    for key in fast:
        np.testing.assert_allclose(fast[key], ref[key], rtol=1e-7, atol=1e-9, err_msg=key)
        changed += not np.array_equal(fast[key], _initial()[key])
    assert changed > len(fast) // 2, "the steps changed too few weights to compare anything"


_INITIAL: dict[str, np.ndarray] = {}


def _initial() -> dict[str, np.ndarray]:
    if not _INITIAL:
        mi.random.manual_seed(0)
        model = mi.create_model("iformer_cifar", drop_path_rate=0.0).astype(np.float64)
        _INITIAL.update({k: v.numpy() for k, v in model.state_dict().items()})
    return _INITIAL
