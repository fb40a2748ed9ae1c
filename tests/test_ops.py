"""Every registered operation against PyTorch, HIPS autograd and finite differences.

The cases themselves are in ``op_specs.py``; the checks in ``oracle.check_case``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import mini_iformer as mi
from op_specs import SPECS
from oracle import check_case


def test_every_registered_op_has_a_specification():
    missing = sorted(set(mi.OPS) - set(SPECS))
    assert not missing, f"operations registered without a specification: {missing}"
    stale = sorted(set(SPECS) - set(mi.OPS))
    assert not stale, f"specifications for operations that are not registered: {stale}"


@pytest.mark.parametrize("name", sorted(SPECS))
@given(data=st.data())
def test_op_matches_oracles(backend_name, name, data):
    check_case(SPECS[name](data))


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
    with pytest.raises(ValueError, match="negative size"):
        mi.pad(mi.zeros(2, 3), (-2, -2))


def test_unsupported_operand_is_a_type_error():
    with pytest.raises(TypeError, match="list"):
        mi.ones(3) + [1, 2, 3]
    with pytest.raises(TypeError):
        mi.ones(3) + "a"
