"""Every registered operation against PyTorch, HIPS autograd and finite differences.

The cases themselves are in ``op_specs.py``; the checks in ``oracle.check_case``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes
from op_specs import SPECS
from oracle import at_edge_shapes, at_special_values, check_case

import mini_iformer as mi


def test_every_registered_op_has_a_specification():
    missing = sorted(set(mi.OPS) - set(SPECS))
    assert not missing, f"operations registered without a specification: {missing}"
    stale = sorted(set(SPECS) - set(mi.OPS))
    assert not stale, f"specifications for operations that are not registered: {stale}"


@pytest.mark.parametrize("name", sorted(SPECS))
@given(data=st.data())
def test_op_matches_oracles(backend_name, name, data):
    check_case(SPECS[name](data))


# Ops whose special values go into some inputs only. The weight and bias of a normalisation:
# when one is infinite, whether an output or a gradient is inf or NaN depends on the order of
# the arithmetic (PyTorch's fused kernels compute x * (w / sigma) + (b - mu * w / sigma)).
SPECIAL_INPUTS = {"layer_norm": [0], "batch_norm": [0]}


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=max(4, settings.default.max_examples * 2 // 5))  # ci: 40, thorough: 400
@given(data=st.data())
def test_op_matches_pytorch_at_special_values(backend_name, name, data):
    """Every op, on its own spec's cases, with NaN, +-inf, zeros and ties among its inputs."""
    case = SPECS[name](data)
    assume(any(a.size for a in case.inputs))
    with np.errstate(all="ignore"):  # NumPy's notices of inf - inf and the like, as PyTorch's
        check_case(at_special_values(data, case, only=SPECIAL_INPUTS.get(name)))


# Where an op refuses on purpose an edge case that PyTorch accepts: the pattern of its message
# (each said in the op's docstring and tested in test_nn_ops.py or test_autograd.py).
STRICTER_AT_EDGES = {
    # PyTorch skips its shape checks of running_mean, running_var, weight and bias when the
    # input has no elements; we check them always
    "batch_norm": r"must have shape \(\d+,\), one value per channel",
    # an input without classes, every item ignored: PyTorch returns 0 or NaN
    "cross_entropy": r"has no classes",
    # PyTorch skips shape checks of the operands and the mask when one of them is empty
    "scaled_dot_product_attention":
        r"same feature size|same number of tokens|does not broadcast|cannot be broadcast",
}


def _empty_and_broadcast(case):
    """Attention with an empty operand whose leading axes broadcast against the others' (a
    documented difference: the output has the broadcast shape, PyTorch's the query's)."""
    operands = case.inputs[:3]
    return (any(a.size == 0 for a in operands)
            and len({(a.shape[:-2] if a.ndim > 2 else ()) for a in operands}) > 1)


# Edge cases where PyTorch's answer is a documented difference, tested on its own
EDGE_DIFFERENCES = {"scaled_dot_product_attention": _empty_and_broadcast}


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=max(4, settings.default.max_examples * 2 // 5))  # ci: 40, thorough: 400
@given(data=st.data())
def test_op_matches_pytorch_on_edge_shapes(backend_name, name, data):
    """Every op, on its own spec's cases with one input empty along an axis, or 0-d."""
    case = SPECS[name](data)
    assume(case.inputs)
    edge = at_edge_shapes(data, case)
    assume(not EDGE_DIFFERENCES.get(name, lambda case: False)(edge))
    check_case(edge, stricter=STRICTER_AT_EDGES.get(name))


# ---------------------------------------------------------------------------------------------
# Error parity: where PyTorch refuses, we refuse too, with a ValueError/TypeError naming shapes
# ---------------------------------------------------------------------------------------------
def _parity(ours, theirs, shapes):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. var() with no degrees of freedom
            theirs()
        torch_raised = False
    except (RuntimeError, ValueError, TypeError, IndexError):
        torch_raised = True
    if torch_raised:
        with pytest.raises((ValueError, TypeError)) as info:
            ours()
        message = str(info.value)
        for s in shapes:
            assert str(tuple(s)) in message, f"{message!r} does not name the shape {tuple(s)}"
    else:
        ours()


small = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
@given(a_shape=small, b_shape=small)
def test_broadcast_errors_match_torch(op, a_shape, b_shape):
    a, b = np.ones(a_shape), np.full(b_shape, 2.0)
    ta, tb = torch.tensor(a), torch.tensor(b)
    theirs = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
              "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow}[op]
    _parity(lambda: mi.OPS[op](mi.tensor(a), mi.tensor(b)), lambda: theirs(ta, tb), [a_shape, b_shape])


@given(a_shape=array_shapes(min_dims=1, max_dims=3, max_side=3),
       b_shape=array_shapes(min_dims=1, max_dims=3, max_side=3))
def test_matmul_errors_match_torch(a_shape, b_shape):
    a, b = np.ones(a_shape), np.ones(b_shape)
    _parity(lambda: mi.tensor(a) @ mi.tensor(b), lambda: torch.tensor(a) @ torch.tensor(b),
            [a_shape, b_shape])


def test_matmul_of_a_scalar_is_refused_like_torch():
    with pytest.raises(RuntimeError):
        torch.matmul(torch.tensor(2.0), torch.ones(2))
    with pytest.raises(ValueError, match=r"at least 1 dimension"):
        mi.matmul(mi.tensor(2.0), mi.ones(2))


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "var", "softmax", "log_softmax"])
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=3), axis=st.integers(-5, 5))
def test_axis_errors_match_torch(op, shape, axis):
    x = np.arange(float(np.prod(shape))).reshape(shape) + 1
    theirs = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin,
              "var": torch.var, "softmax": torch.softmax, "log_softmax": torch.log_softmax}[op]
    _parity(lambda: mi.OPS[op](mi.tensor(x), axis=axis), lambda: theirs(torch.tensor(x), axis), [shape])


@given(shape=array_shapes(min_dims=0, max_dims=3, max_side=4),
       new=st.lists(st.integers(-1, 5), max_size=3))
def test_reshape_errors_match_torch(shape, new):
    x = np.zeros(shape)
    _parity(lambda: mi.reshape(mi.tensor(x), tuple(new)), lambda: torch.tensor(x).reshape(tuple(new)), [shape])


@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=3), axes=st.lists(st.integers(-4, 4), max_size=4))
def test_permute_errors_match_torch(shape, axes):
    x = np.zeros(shape)
    _parity(lambda: mi.permute(mi.tensor(x), *axes), lambda: torch.tensor(x).permute(*axes), [shape])


@given(a=array_shapes(min_dims=1, max_dims=3, max_side=3), b=array_shapes(min_dims=1, max_dims=3, max_side=3),
       axis=st.integers(-3, 2))
def test_concatenate_and_stack_errors_match_torch(a, b, axis):
    x, y = np.zeros(a), np.ones(b)
    _parity(lambda: mi.concatenate([mi.tensor(x), mi.tensor(y)], axis),
            lambda: torch.cat([torch.tensor(x), torch.tensor(y)], axis), [a, b])
    _parity(lambda: mi.stack([mi.tensor(x), mi.tensor(y)], axis),
            lambda: torch.stack([torch.tensor(x), torch.tensor(y)], axis), [a, b])


@given(shape=array_shapes(min_dims=0, max_dims=3, max_side=3),
       target=array_shapes(min_dims=0, max_dims=4, max_side=3))
def test_broadcast_to_errors_match_torch(shape, target):
    x = np.zeros(shape)
    _parity(lambda: mi.broadcast_to(mi.tensor(x), target),
            lambda: torch.broadcast_to(torch.tensor(x), target), [shape, target])


def test_getitem_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"\(3, 2\)"):
        mi.zeros(3, 2)[5]


def test_pad_rejects_bad_widths():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        mi.pad(mi.zeros(2, 3), (1, 1, 1))
    with pytest.raises(ValueError, match=r"crop more than the 3 elements of axis 1"):
        mi.pad(mi.zeros(2, 3), (-2, -2))


def test_unsupported_operand_is_a_type_error():
    with pytest.raises(TypeError, match="list"):
        mi.ones(3) + [1, 2, 3]
    with pytest.raises(TypeError):
        mi.ones(3) + "a"


# ---------------------------------------------------------------------------------------------
# The edges of each op's domain, where PyTorch defines a value, a gradient or a dtype
# (the specs in op_specs.py draw these classes too; these are the cases as users met them)
# ---------------------------------------------------------------------------------------------
def _both(ours, theirs, arrays, grad=True):
    """Forward, dtype and every gradient (of a non-uniform weighting) against PyTorch."""
    ms = [mi.tensor(a, requires_grad=grad) for a in arrays]
    ts = [torch.tensor(a, requires_grad=grad) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns about var() without degrees of freedom
        t_out = theirs(*ts)
    out = ours(*ms)
    assert out.shape == tuple(t_out.shape)
    assert out.dtype == np.dtype(str(t_out.dtype).replace("torch.", ""))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, equal_nan=True)
    if grad:
        w = np.arange(1.0, out.size + 1).reshape(out.shape)
        out.backward(w)
        t_out.backward(torch.tensor(w))
        for m, t in zip(ms, ts):
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-12,
                                       equal_nan=True)


X555 = np.random.default_rng(0).standard_normal((5, 5, 5))


@pytest.mark.parametrize("correction, keepdims", [(1.3, False), (0.5, True), (None, False),
                                                  (5, False), (6.5, True), (0, True)])
def test_var_takes_any_real_correction_like_torch(correction, keepdims):
    """Also with no degrees of freedom left (correction >= n): inf forward, and PyTorch's
    backward, which divides by n - correction itself."""
    _both(lambda t: mi.var(t, 1, correction=correction, keepdims=keepdims),
          lambda t: torch.var(t, 1, correction=correction, keepdim=keepdims), [X555])


def test_var_refuses_a_correction_that_is_not_a_number():
    with pytest.raises(TypeError, match="correction"):
        mi.var(mi.tensor(X555), 1, correction="1")


@pytest.mark.parametrize("bounds", ["lo", "hi", "both", "crossed"])
def test_clip_sends_gradients_to_tensor_bounds_like_torch(bounds):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 10, 5))
    lo, hi = rng.standard_normal((5, 1, 5)) - 0.5, rng.standard_normal((5, 1, 5)) + 0.5
    if bounds == "crossed":
        lo, hi = hi, lo
    if bounds == "lo":
        _both(lambda t, a: mi.clip(t, a), lambda t, a: torch.clamp(t, a), [x, lo])
    elif bounds == "hi":
        _both(lambda t, b: mi.clip(t, None, b), lambda t, b: torch.clamp(t, None, b), [x, hi])
    else:
        _both(mi.clip, torch.clamp, [x, lo, hi])


def test_clip_with_min_above_max_gives_max_like_torch():
    _both(lambda t: mi.clip(t, 0.5, -0.5), lambda t: torch.clamp(t, 0.5, -0.5), [X555])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_an_empty_axis_is_empty_like_torch(name):
    empty = np.zeros((5, 0, 0))
    _both(lambda t: getattr(mi, name)(t, axis=-1), lambda t: getattr(torch, name)(t, -1),
          [empty])


def test_transpose_of_a_scalar_is_the_scalar():
    _both(lambda t: mi.transpose(t, 0, 0), lambda t: torch.transpose(t, 0, 0), [np.array(2.5)])
    _both(lambda t: mi.transpose(t, -1, 0), lambda t: torch.transpose(t, -1, 0), [np.array(2.5)])


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("p, q", [(-4.8, -7.5), (2, 3), (2, 3.5), (7, 2)])
def test_two_python_numbers_give_pytorchs_dtype(op, p, q):
    ours = mi.OPS[op](p, q)
    theirs = getattr(torch, op)(torch.tensor(p), torch.tensor(q))
    assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_and_minimum_send_the_gradient_to_both_inputs_at_nan(op):
    a = np.array([1.0, np.nan, 2.0, 3.0, np.nan, 0.5])
    b = np.array([np.nan, 1.0, 2.0, 1.0, np.nan, 0.7])
    _both(mi.OPS[op], getattr(torch, op), [a, b])


def test_abs_has_gradient_zero_at_zero_and_nan():
    _both(mi.abs, torch.abs, [np.array([np.nan, 0.0, -0.0, -1.5, 2.0])])


def test_pow_gradients_at_base_zero_and_exponent_zero():
    base = np.array([0.0, 0.0, 0.0, 2.0, 0.0, 0.0])
    exponent = np.array([0.0, 2.0, -1.0, 0.0, 0.5, 1.0])
    _both(lambda a, b: a**b, lambda a, b: a**b, [base, exponent])
    for p in (0, 1, 2, -1, 0.5):
        _both(lambda a: a**p, lambda a: a**p, [base])  # noqa: B023 - called at once
    _both(lambda e: 0.0**e, lambda e: 0.0**e, [exponent])


@pytest.mark.parametrize("call, words", [
    (lambda: mi.div(mi.ones(2), mi.ones(2), rounding_mode="round"), "rounding_mode"),
    (lambda: mi.add(mi.tensor([1]), mi.tensor([2]), alpha=1.5), "alpha"),
    (lambda: mi.sub(mi.ones(2), mi.ones(2), alpha="2"), "alpha"),
    (lambda: mi.softmax(mi.ones(2), 0, dtype="int64"), "dtype"),
])
def test_the_pytorch_keywords_refuse_what_pytorch_refuses(call, words):
    with pytest.raises((ValueError, TypeError), match=words):
        call()


def test_integer_division_with_rounding_stays_integer_like_torch():
    a, b = np.array([7, -7, 7, -7, 6, 0]), np.array([2, 2, -2, -2, 3, 5])
    for mode in ("trunc", "floor"):
        ours = mi.div(mi.tensor(a), mi.tensor(b), rounding_mode=mode)
        theirs = torch.div(torch.tensor(a), torch.tensor(b), rounding_mode=mode)
        assert ours.dtype == np.int64
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@given(shape=array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=4),
       widths=st.lists(st.integers(-1, 4), min_size=2, max_size=6).filter(lambda w: len(w) % 2 == 0),
       mode=st.sampled_from(["reflect", "replicate", "circular"]))
def test_pad_modes_refuse_what_pytorch_refuses(shape, widths, mode):
    """Both refuse (naming the input's shape), or both pad to the same values. One deliberate
    difference: negative widths (cropping) are for mode "constant" only; PyTorch's cropping in
    these modes depends on the input's rank and, for "circular", can return uninitialised
    memory."""
    x = np.arange(float(np.prod(shape))).reshape(shape)
    pad = tuple(widths)
    if min(widths) < 0:
        with pytest.raises(ValueError, match=r"^pad: .*" + re.escape(str(tuple(shape)))):
            mi.pad(mi.tensor(x), pad, mode=mode)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = torch.nn.functional.pad(torch.tensor(x), pad, mode=mode).numpy()
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match=r"^pad: .*" + re.escape(str(tuple(shape)))):
            mi.pad(mi.tensor(x), pad, mode=mode)
    else:
        np.testing.assert_array_equal(mi.pad(mi.tensor(x), pad, mode=mode).numpy(), expected)


@pytest.mark.parametrize("op, torch_op", [("max", torch.amax), ("min", torch.amin),
                                          ("mean", torch.mean), ("sum", torch.sum)])
@pytest.mark.parametrize("shape, axis", [((0, 1), 1), ((0, 1), 0), ((2, 0, 3), (0, 2)),
                                         ((0,), None), ((3, 0), 1), ((3, 0), 0)])
def test_reductions_of_empty_tensors_answer_or_refuse_like_torch(op, torch_op, shape, axis):
    """Over a non-empty axis of an empty tensor: an empty result; over an empty axis: sum 0,
    mean NaN (no warning), max and min refused, as PyTorch does."""
    x = np.zeros(shape)
    dims = axis if axis is not None else tuple(range(len(shape)))
    try:
        expected = torch_op(torch.tensor(x), dims).numpy()
    except (RuntimeError, IndexError):
        with pytest.raises(ValueError, match=f"^{op}: .*empty axis"):
            mi.OPS[op](mi.tensor(x), axis=axis)
        return
    ours = mi.OPS[op](mi.tensor(x, requires_grad=True), axis=axis)
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours.numpy(), expected)


# ---------------------------------------------------------------------------------------------
# Cases the edge-shape and special-value specs above found, as users would meet them
# ---------------------------------------------------------------------------------------------
INF, NAN = np.inf, np.nan


def test_floor_division_by_infinity_and_of_infinity_like_torch():
    a = np.array([5.0, -5.0, INF, -INF, 0.0, 5.0])
    b = np.array([-INF, INF, 2.0, 2.0, -INF, 0.0])
    with np.errstate(all="ignore"):
        _both(lambda x, y: mi.div(x, y, rounding_mode="floor"),
              lambda x, y: torch.div(x, y, rounding_mode="floor"), [a, b])


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest", "area"])
def test_a_nan_pixel_spoils_only_the_outputs_that_read_it(mode):
    x = np.random.default_rng(2).standard_normal((1, 1, 5, 5))
    x[0, 0, 1, 3], x[0, 0, 4, 0] = NAN, INF
    with np.errstate(all="ignore"):
        _both(lambda t: mi.functional.interpolate(t, size=(7, 8), mode=mode),
              lambda t: torch.nn.functional.interpolate(t, size=(7, 8), mode=mode), [x])
        y = mi.functional.interpolate(mi.tensor(x), size=(7, 8), mode=mode).numpy()
    assert 0 < np.isnan(y).sum() < y.size  # (a dense matrix product spoils every output)


def test_bilinear_resize_to_the_same_size_is_a_copy_with_pytorchs_taps():
    x = np.array([[[[1.0, 2.0, 4.0], [INF, 3.0, 5.0]]]])  # inf * 0 is NaN at the inf only
    with np.errstate(all="ignore"):
        _both(lambda t: mi.functional.interpolate(t, size=(2, 3), mode="bilinear"),
              lambda t: torch.nn.functional.interpolate(t, size=(2, 3), mode="bilinear"), [x])
        _both(lambda t: mi.functional.interpolate(t, size=3, mode="linear"),
              lambda t: torch.nn.functional.interpolate(t, size=3, mode="linear"), [x[0]])


def test_attention_to_no_key_gives_zero_output_and_gradient_like_torch():
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((3, 2)), rng.standard_normal((2, 2)), rng.standard_normal((2, 1))
    mask = np.array([[-INF, -INF], [0.0, -INF], [0.0, 0.0]])
    for impl in mi.ops.implementations("scaled_dot_product_attention"):
        if impl.startswith("cuda"):
            continue
        with mi.ops.use(scaled_dot_product_attention=impl):
            _both(lambda a, b, c, m: mi.functional.scaled_dot_product_attention(a, b, c, m),
                  lambda a, b, c, m: torch.nn.functional.scaled_dot_product_attention(a, b, c, m),
                  [q, k, v, mask])


def test_batch_norm_of_an_empty_batch_is_empty_and_keeps_the_running_statistics():
    x = np.zeros((0, 3, 2))
    rm, rv = mi.zeros(3), mi.ones(3)
    y = mi.functional.batch_norm(mi.tensor(x), rm, rv, training=True)
    assert y.shape == (0, 3, 2)
    np.testing.assert_array_equal(rm.numpy(), 0.0)
    np.testing.assert_array_equal(rv.numpy(), 1.0)
    _both(lambda t, w, b: mi.functional.batch_norm(t, None, None, w, b, training=True),
          lambda t, w, b: torch.nn.functional.batch_norm(t, None, None, w, b, training=True),
          [x, np.ones(3), np.zeros(3)])
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        mi.functional.batch_norm(mi.tensor(x), mi.zeros(2), mi.ones(3), training=True)


@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("x", [np.array(0.5), np.array([0.5, 0.2])])
@pytest.mark.parametrize("correction", [0.5, 1, 1.3, 2.5])
def test_var_without_degrees_of_freedom_has_pytorchs_gradient(x, axis, correction):
    if axis is None and x.size > 1 and correction >= x.size:  # the documented difference:
        t = mi.tensor(x, requires_grad=True)  # inf with the sign of g (x - mean)
        with np.errstate(all="ignore"):
            mi.var(t, axis, correction=correction).backward()
        np.testing.assert_array_equal(t.grad.numpy(), np.sign(x - x.mean()) * INF)
        return
    with np.errstate(all="ignore"):
        _both(lambda t: mi.var(t, axis, correction=correction),
              lambda t: torch.var(t, axis, correction=correction), [x])


@pytest.mark.parametrize("call, torch_call", [
    (lambda: mi.flatten(mi.tensor(2.0), 0, -2), lambda: torch.flatten(torch.tensor(2.0), 0, -2)),
    (lambda: mi.squeeze(mi.tensor(2.0), (0, -1)), lambda: torch.squeeze(torch.tensor(2.0), (0, -1))),
    (lambda: mi.pad(mi.zeros(0), (1, -1)), lambda: torch.nn.functional.pad(torch.zeros(0), (1, -1))),
    (lambda: mi.pad(mi.zeros((2, 0, 2, 2)), (0, 0, 0, 0), mode="reflect"),
     lambda: torch.nn.functional.pad(torch.zeros(2, 0, 2, 2), (0, 0, 0, 0), mode="reflect")),
    (lambda: mi.functional.conv2d(mi.zeros((1, 1, 0, 3)), mi.ones((1, 1, 1, 1))),
     lambda: torch.nn.functional.conv2d(torch.zeros(1, 1, 0, 3), torch.ones(1, 1, 1, 1))),
    (lambda: mi.functional.interpolate(mi.zeros((1, 0, 2, 2)), size=3),
     lambda: torch.nn.functional.interpolate(torch.zeros(1, 0, 2, 2), size=3)),
])
def test_edge_shapes_pytorch_refuses_are_refused(call, torch_call):
    with pytest.raises((RuntimeError, IndexError)):
        torch_call()
    with pytest.raises((ValueError, IndexError)):
        call()


@pytest.mark.parametrize("call, torch_call", [
    (lambda m: mi.functional.conv2d(m(np.zeros((0, 2, 3, 3))), m(np.ones((4, 2, 2, 2)))),
     lambda m: torch.nn.functional.conv2d(m(np.zeros((0, 2, 3, 3))), m(np.ones((4, 2, 2, 2))))),
    (lambda m: mi.functional.linear(m(np.ones((2, 3))), m(np.ones((0, 3)))),
     lambda m: torch.nn.functional.linear(m(np.ones((2, 3))), m(np.ones((0, 3))))),
    (lambda m: mi.functional.interpolate(m(np.zeros((1, 0, 2, 2))), size=3, mode="area"),
     lambda m: torch.nn.functional.interpolate(m(np.zeros((1, 0, 2, 2))), size=3, mode="area")),
])
def test_edge_shapes_pytorch_answers_are_answered(call, torch_call):
    ours, theirs = call(mi.tensor), torch_call(torch.tensor)
    assert ours.shape == tuple(theirs.shape)


def test_cross_entropy_refuses_an_input_without_classes():
    """A documented difference: PyTorch refuses it too unless every item is ignored."""
    with pytest.raises(ValueError, match="no classes"):
        mi.functional.cross_entropy(mi.zeros(0), mi.tensor(0), ignore_index=0)


def test_pow_minus_half_at_minus_infinity_like_torch():
    with np.errstate(all="ignore"):
        _both(lambda t: t**0.5, lambda t: t**0.5, [np.array([-INF, INF, 0.25])])


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_and_minimum_also_take_a_python_number(op):
    """A documented difference: torch.maximum refuses a number; ours takes it as clip does."""
    with pytest.raises(TypeError):
        getattr(torch, op)(torch.ones(2), 0.5)
    x = np.array([0.2, 0.7, np.nan])
    with np.errstate(invalid="ignore"):
        ours = mi.OPS[op](mi.tensor(x.astype(np.float32)), 0.5)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.numpy(), getattr(np, op)(x, 0.5).astype(np.float32))


def test_nearest_on_n_c_l_keeps_the_scale_factor_where_the_size_does_not_change():
    """PyTorch copies a 2-D input whose size a scale factor keeps, but not a 1-D one."""
    x = np.array([[[0.1, 0.2, 0.3]]])
    ours = mi.functional.interpolate(mi.tensor(x), scale_factor=1.1, mode="nearest")
    theirs = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=1.1, mode="nearest")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.numpy(), [[[0.1, 0.1, 0.2]]])
