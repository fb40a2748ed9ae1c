"""Pooling and resizing: every path against the oracles, the fast paths against the plain
reference forms, the choice of path, and errors that match PyTorch's.

``test_ops.py`` runs the mixed specifications of ``specs_pool.py``; here each path (iFormer's
fast ones, the general ones, every interpolation mode) also runs on its own, so that none of
them depends on the luck of the draw.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from oracle import check_case
from specs_pool import (
    AVG_POOL_PATHS,
    INTERPOLATE_PATHS,
    MAX_POOL_PATHS,
    avg_pool2d_case,
    interpolate_case,
    max_pool2d_case,
)

import mini_iformer as mi
import mini_iformer.functional as functional
from mini_iformer.ops import cuda_emulator, implementations, use
from mini_iformer.ops.pool import avg_pool2d, max_pool2d
from mini_iformer.ops.resize import MODES, interpolate


# ---------------------------------------------------------------------------------------------
# Every path against PyTorch, finite differences and float32
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", MAX_POOL_PATHS)
@given(data=st.data())
def test_max_pool2d_path_matches_oracles(backend_name, path, data):
    check_case(max_pool2d_case(data, path))


@pytest.mark.parametrize("path", AVG_POOL_PATHS)
@given(data=st.data())
def test_avg_pool2d_path_matches_oracles(backend_name, path, data):
    check_case(avg_pool2d_case(data, path))


@pytest.mark.parametrize("path", INTERPOLATE_PATHS)
@given(data=st.data())
def test_interpolate_path_matches_oracles(backend_name, path, data):
    check_case(interpolate_case(data, path))


# ---------------------------------------------------------------------------------------------
# Which implementation runs (each is checked against the reference in test_implementations.py)
# ---------------------------------------------------------------------------------------------
def _impl(y):
    return y._ctx.implementation.name


@pytest.fixture
def automatic():
    with use("fast"):
        yield


def test_iformer_uses_take_the_fast_forms(automatic):
    x = mi.randn(2, 4, 8, 8, requires_grad=True)
    assert _impl(max_pool2d(x, 3, 1, 1)) == "offsets"
    assert _impl(avg_pool2d(x, 2)) == "tiles"
    assert _impl(interpolate(x, scale_factor=2)) == "repeat"
    assert _impl(interpolate(x, size=(16, 24))) == "repeat"  # x2, x3
    assert _impl(interpolate(x, size=(9, 7), mode="bilinear")) == "matrices"


def test_other_settings_take_the_general_forms(automatic):
    x = mi.randn(2, 4, 9, 8, requires_grad=True)
    assert _impl(avg_pool2d(x, 2)) == "offsets"  # 9 rows: not divisible
    assert _impl(avg_pool2d(x, 2, 1)) == "offsets"
    assert _impl(avg_pool2d(x[:, :, :8], 2, padding=1)) == "offsets"
    assert _impl(interpolate(x, scale_factor=1.5)) == "matrices"
    assert _impl(interpolate(x, scale_factor=0.5)) == "matrices"
    assert _impl(interpolate(x, scale_factor=2, mode="nearest-exact")) == "repeat"
    assert _impl(interpolate(x, scale_factor=2, mode="bilinear")) == "matrices"
    x.data[0, 0, 0, 0] = np.nan  # the tap sum, which a NaN does not spread through
    with np.errstate(invalid="ignore"):
        assert _impl(interpolate(x, scale_factor=1.5)) == "reference"
    assert _impl(interpolate(x[:0], scale_factor=1.5)) == "reference"  # no elements


@given(fh=st.integers(1, 4), fw=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5))
def test_repeat_upsampling_equals_the_matrix_form(fh, fw, h, w):
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((2, 3, h, w))
    g = rng.standard_normal((2, 3, h * fh, w * fw))
    results = []
    for form in ("repeat", "reference"):
        x = mi.tensor(x_np, requires_grad=True)
        with use(interpolate=form):
            y = interpolate(x, size=(h * fh, w * fw))
        y.backward(mi.tensor(g))
        results.append((y.numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


_MINUS_INF = np.full((1, 1, 3, 3), -np.inf)
_MINUS_INF[0, 0, 2, 2] = 1.0
_NAN = np.array([[[[1.0, np.nan, 5.0], [2.0, 7.0, np.nan], [0.0, 3.0, 4.0]]]])
_INT_MIN = np.array([[[[-(2**63), -(2**63)], [-(2**63), 5]]]], dtype=np.int64)


_EDGES = {"-inf 3/1/1": (_MINUS_INF, (3, 1, 1)), "-inf 2/2/1": (_MINUS_INF, (2, 2, 1)),
          "nan 2/1/0": (_NAN, (2, 1, 0)), "nan 3/1/1": (_NAN, (3, 1, 1)),
          "int min": (_INT_MIN, (2, 1, 1))}
_EDGE_CASES = [(form, edge) for form in implementations("max_pool2d") for edge in _EDGES
               if not (form.startswith("cuda") and edge == "int min")]  # no integer kernels


@pytest.mark.parametrize("form, edge", _EDGE_CASES)
def test_max_pool_padding_never_wins_and_a_nan_does(form, edge):
    """Windows whose maximum equals the padding value (-inf, the smallest integer) route their
    gradient to a real element, and a NaN is the maximum of its window, as in PyTorch: in
    every implementation (where there are several NaNs, the last one wins)."""
    x, args = _EDGES[edge]
    float_input = x.dtype.kind == "f"
    ours = mi.tensor(x, requires_grad=float_input)
    with ExitStack() as stack:
        stack.enter_context(use(max_pool2d=form))
        if form.startswith("cuda"):
            stack.enter_context(cuda_emulator.emulated())
        y = max_pool2d(ours, *args)
        if float_input:
            y.backward(mi.tensor(np.arange(1.0, y.size + 1).reshape(y.shape)))
    ty = TF.max_pool2d(torch.tensor(x, requires_grad=float_input), *args)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    if float_input:
        theirs = torch.tensor(x, requires_grad=True)
        ty = TF.max_pool2d(theirs, *args)
        ty.backward(torch.arange(1.0, ty.numel() + 1, dtype=torch.float64).reshape(ty.shape))
        np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy(), err_msg=form)


# ---------------------------------------------------------------------------------------------
# Details that the random draws rarely reach
# ---------------------------------------------------------------------------------------------
# (mode, n_in, size or scale_factor): PyTorch computes the nearest source index in float32, and
# for these the float32 rounding picks another pixel than exact arithmetic would. (Compared in
# float32, the dtype models run in: for two of these sizes PyTorch's float64 kernel rounds
# differently from its own float32 kernel.)
FLOAT32_INDEX_CASES = [
    ("nearest", 14, dict(size=46)), ("nearest", 6, dict(size=74)), ("nearest", 12, dict(size=74)),
    ("nearest", 10, dict(scale_factor=7.4)), ("nearest", 20, dict(scale_factor=2.6)),
    ("nearest", 14, dict(scale_factor=1.2857142857142858)),
    ("nearest-exact", 2, dict(size=41)), ("nearest-exact", 6, dict(size=37)),
    ("nearest-exact", 8, dict(size=61)), ("nearest-exact", 12, dict(size=37)),
]


@pytest.mark.parametrize("mode, n, kwargs", FLOAT32_INDEX_CASES)
def test_nearest_picks_the_pixels_pytorch_picks(mode, n, kwargs):
    x = np.arange(float(2 * n * n), dtype=np.float32).reshape(2, 1, n, n)
    ours = interpolate(mi.tensor(x), mode=mode, **kwargs).numpy()
    theirs = TF.interpolate(torch.tensor(x), mode=mode, **kwargs).numpy()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    "op, torch_op",
    [(lambda t: max_pool2d(t, (3, 2), 1, 1), lambda t: TF.max_pool2d(t, (3, 2), 1, 1)),
     (lambda t: max_pool2d(t, 2, ceil_mode=True), lambda t: TF.max_pool2d(t, 2, ceil_mode=True)),
     (lambda t: avg_pool2d(t, 3, 2, 1, True, False),
      lambda t: TF.avg_pool2d(t, 3, 2, 1, True, False)),
     (lambda t: avg_pool2d(t, 2), lambda t: TF.avg_pool2d(t, 2))],
)
def test_a_three_dimensional_input_is_one_image(op, torch_op):
    x_np = np.random.default_rng(4).permutation(3 * 6 * 5).reshape(3, 6, 5) * 0.1
    x = mi.tensor(x_np, requires_grad=True)
    y = op(x)
    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch_op(xt)
    assert y.shape == tuple(yt.shape) == op(mi.tensor(x_np[None])).shape[1:]
    g = np.random.default_rng(5).standard_normal(y.shape)
    y.backward(mi.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "op",
    [lambda t: max_pool2d(t, 3, 1, 1), lambda t: max_pool2d(t, 2, 3, 1), lambda t: avg_pool2d(t, 2),
     lambda t: avg_pool2d(t, 3, 2, 1), lambda t: interpolate(t, scale_factor=2),
     lambda t: interpolate(t, size=(3, 7), mode="bilinear")],
)
def test_empty_batch_no_grad_and_float32(op):
    x32 = np.random.default_rng(6).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with_grad = op(mi.tensor(x32, requires_grad=True))
    with mi.no_grad():
        without = op(mi.tensor(x32, requires_grad=True))
    assert with_grad.dtype == without.dtype == np.float32 and not without.requires_grad
    np.testing.assert_array_equal(with_grad.numpy(), without.numpy())
    empty = mi.tensor(np.zeros((0, 3, 6, 6)), requires_grad=True)
    y = op(empty)
    assert y.shape == (0,) + with_grad.shape[1:]
    y.backward(mi.tensor(np.zeros(y.shape)))
    assert empty.grad.shape == empty.shape


def test_max_pool2d_of_integers_pads_with_the_smallest_integer():
    x = np.array([[[[-5, -7, -2], [-9, -1, -8]]]], dtype=np.int64)
    y = max_pool2d(mi.tensor(x), 2, 1, 1)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), TF.max_pool2d(torch.tensor(x), 2, 1, 1).numpy())


def test_bicubic_gradient_is_the_gradient_of_its_forward_when_the_size_is_kept():
    # PyTorch's own backward copies the gradient here (its forward does not copy): our
    # gradient matches the forward, which is what a finite difference sees.
    rng = np.random.default_rng(7)
    x_np, d = rng.standard_normal((1, 1, 5, 3)), rng.standard_normal((1, 1, 5, 3))
    f = lambda a: interpolate(mi.tensor(a), scale_factor=1.1, mode="bicubic")  # noqa: E731
    theirs = TF.interpolate(torch.tensor(x_np), scale_factor=1.1, mode="bicubic")
    np.testing.assert_allclose(f(x_np).numpy(), theirs.numpy(), rtol=1e-12)
    x = mi.tensor(x_np, requires_grad=True)
    y = interpolate(x, scale_factor=1.1, mode="bicubic")
    g = rng.standard_normal(y.shape)
    y.backward(mi.tensor(g))
    eps = 1e-6
    numeric = float(((f(x_np + eps * d).numpy() - f(x_np - eps * d).numpy()) * g).sum()) / (2 * eps)
    assert abs(numeric - float((x.grad.numpy() * d).sum())) < 1e-7


# ---------------------------------------------------------------------------------------------
# Errors: where PyTorch refuses, we refuse, with a ValueError or TypeError naming the argument
# ---------------------------------------------------------------------------------------------
def _torch_raises(fn) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    except (RuntimeError, ValueError, TypeError, IndexError):  # NotImplementedError included
        return True
    return False


X = np.zeros((2, 3, 5, 5))
ERRORS = [
    # (what, the call on module F and input x, words our message must contain)
    ("pool of a 2-D input", lambda F, x: F.max_pool2d(x[0, 0], 2), "(5, 5)"),
    ("pool of a 5-D input", lambda F, x: F.avg_pool2d(x[None], 2), "(1, 2, 3, 5, 5)"),
    ("empty channels", lambda F, x: F.max_pool2d(x[:, :0], 2), "(2, 0, 5, 5)"),
    ("kernel_size 0", lambda F, x: F.max_pool2d(x, 0), "kernel_size"),
    ("negative kernel_size", lambda F, x: F.avg_pool2d(x, (2, -1)), "kernel_size"),
    ("kernel_size of 3 values", lambda F, x: F.max_pool2d(x, (2, 2, 2)), "kernel_size"),
    ("float kernel_size", lambda F, x: F.max_pool2d(x, 2.0), "kernel_size"),
    ("stride 0", lambda F, x: F.max_pool2d(x, 2, 0), "stride"),
    ("stride of 3 values", lambda F, x: F.avg_pool2d(x, 2, (1, 1, 1)), "stride"),
    ("negative padding", lambda F, x: F.max_pool2d(x, 2, 1, -1), "padding"),
    ("padding over half the kernel",
     lambda F, x: F.avg_pool2d(x, 3, 1, 2), "padding", "kernel_size"),
    ("padding with a 1x1 kernel", lambda F, x: F.max_pool2d(x, 1, 1, 1), "padding"),
    ("dilation 0", lambda F, x: F.max_pool2d(x, 2, dilation=0), "dilation"),
    ("kernel larger than the input",
     lambda F, x: F.max_pool2d(x, 6), "output size", "(2, 3, 5, 5)"),
    ("kernel larger than the padded input",
     lambda F, x: F.avg_pool2d(x, (6, 3), 1, 0), "output size", "(2, 3, 5, 5)"),
    ("divisor_override 0", lambda F, x: F.avg_pool2d(x, 2, divisor_override=0), "divisor_override"),
    ("size and scale_factor",
     lambda F, x: F.interpolate(x, size=3, scale_factor=2), "size", "scale_factor"),
    ("neither size nor scale_factor", lambda F, x: F.interpolate(x), "size", "scale_factor"),
    ("unknown mode", lambda F, x: F.interpolate(x, size=3, mode="cubic"), "mode", "'cubic'"),
    ("linear mode on 4-D", lambda F, x: F.interpolate(x, size=3, mode="linear"), "mode"),
    ("align_corners with nearest",
     lambda F, x: F.interpolate(x, size=3, align_corners=False), "align_corners"),
    ("align_corners with area",
     lambda F, x: F.interpolate(x, size=3, mode="area", align_corners=True), "align_corners"),
    ("align_corners not a bool",
     lambda F, x: F.interpolate(x, size=3, mode="bilinear", align_corners=1), "align_corners"),
    ("size 0", lambda F, x: F.interpolate(x, size=0), "output size", "(2, 3, 5, 5)"),
    ("negative size", lambda F, x: F.interpolate(x, size=(3, -1)), "output size"),
    ("size of 3 values", lambda F, x: F.interpolate(x, size=(3, 3, 3)), "size"),
    ("float size", lambda F, x: F.interpolate(x, size=(3.0, 3)), "size"),
    ("scale_factor to nothing", lambda F, x: F.interpolate(x, scale_factor=0.1), "output size"),
    ("negative scale_factor", lambda F, x: F.interpolate(x, scale_factor=-2), "output size"),
    ("infinite scale_factor",
     lambda F, x: F.interpolate(x, scale_factor=float("inf")), "scale_factor"),
    ("scale_factor of 3 values",
     lambda F, x: F.interpolate(x, scale_factor=(2, 2, 2)), "scale_factor"),
    ("string scale_factor", lambda F, x: F.interpolate(x, scale_factor="2"), "scale_factor"),
    ("recompute_scale_factor with size",
     lambda F, x: F.interpolate(x, size=3, recompute_scale_factor=True), "recompute_scale_factor"),
    ("interpolate a 2-D input", lambda F, x: F.interpolate(x[0, 0], size=3), "(5, 5)"),
    ("bilinear on empty channels",
     lambda F, x: F.interpolate(x[:, :0], size=3, mode="bilinear"), "(2, 0, 5, 5)"),
]


@pytest.mark.parametrize("what, call, words", [(e[0], e[1], e[2:]) for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_invalid_arguments_are_refused_like_pytorch(what, call, words):
    assert _torch_raises(lambda: call(TF, torch.tensor(X))), f"PyTorch accepts {what}"
    with pytest.raises((ValueError, TypeError)) as info:
        call(functional, mi.tensor(X))
    message = str(info.value)
    assert message.split(":")[0] in ("max_pool2d", "avg_pool2d", "interpolate"), message
    for word in words:
        assert word in message, f"{message!r} does not mention {word!r}"


def _parity(ours, theirs, op):
    if _torch_raises(theirs):
        with pytest.raises((ValueError, TypeError), match=f"^{op}: "):
            ours()
    else:
        assert ours().shape == tuple(theirs().shape)


_shapes = st.lists(st.integers(0, 5), min_size=2, max_size=5).map(tuple)
_small_int = st.integers(-1, 4)


@given(shape=_shapes, kernel=st.one_of(_small_int, st.tuples(_small_int, _small_int)),
       stride=st.one_of(st.none(), _small_int), padding=st.integers(-1, 2),
       dilation=st.integers(0, 2), ceil_mode=st.booleans())
def test_max_pool2d_refuses_what_pytorch_refuses(shape, kernel, stride, padding, dilation,
                                                 ceil_mode):
    x = np.ones(shape)
    args = (kernel, stride, padding, dilation, ceil_mode)
    _parity(lambda: max_pool2d(mi.tensor(x), *args), lambda: TF.max_pool2d(torch.tensor(x), *args),
            "max_pool2d")


@given(shape=_shapes, kernel=st.one_of(_small_int, st.tuples(_small_int, _small_int)),
       stride=st.one_of(st.none(), _small_int), padding=st.integers(-1, 2), ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), divisor_override=st.sampled_from([None, 0, 2, -1]))
def test_avg_pool2d_refuses_what_pytorch_refuses(shape, kernel, stride, padding, ceil_mode,
                                                 count_include_pad, divisor_override):
    x = np.ones(shape)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    _parity(lambda: avg_pool2d(mi.tensor(x), *args), lambda: TF.avg_pool2d(torch.tensor(x), *args),
            "avg_pool2d")


_modes = st.sampled_from(list(MODES) + ["linear", "trilinear", "lanczos", "Bilinear"])


@given(shape=st.lists(st.integers(0, 4), min_size=3, max_size=4).map(tuple),
       size=st.one_of(st.none(), _small_int, st.tuples(_small_int, st.integers(0, 5))),
       scale=st.one_of(st.none(), st.sampled_from([0.1, 0.5, 1.5, 2, -1.0, (2, 0.5), (1, 1, 1)])),
       mode=_modes, align_corners=st.sampled_from([None, True, False]),
       recompute=st.sampled_from([None, False, True]))
def test_interpolate_refuses_what_pytorch_refuses(shape, size, scale, mode, align_corners,
                                                  recompute):
    x = np.ones(shape)
    kwargs = dict(size=size, scale_factor=scale, mode=mode, align_corners=align_corners,
                  recompute_scale_factor=recompute)
    ours = lambda: interpolate(mi.tensor(x), **kwargs)  # noqa: E731
    theirs = lambda: TF.interpolate(torch.tensor(x), **kwargs)  # noqa: E731
    if mode == "area" and not _torch_raises(theirs) and (
        0 in tuple(theirs().shape)[1:] or 0 in shape[1:]
    ):
        # adaptive_avg_pool2d returns an empty result for empty channels, an empty input plane
        # (when the batch is empty too) or a zero output size; we refuse all of them, like
        # every other mode.
        with pytest.raises(ValueError, match="^interpolate: "):
            ours()
        return
    _parity(ours, theirs, "interpolate")


@pytest.mark.parametrize("edge", list(_EDGES))
def test_max_pool_indices_are_pytorchs_at_the_edges(edge):
    """return_indices: the flat position of each maximum, the same element PyTorch picks,
    for -inf windows, NaNs, the smallest integer, and an unbatched input."""
    x, args = _EDGES[edge]
    y, idx = max_pool2d(mi.tensor(x), *args, return_indices=True)
    ty, tidx = TF.max_pool2d(torch.tensor(x), *args, return_indices=True)
    assert idx.dtype == np.int64 and idx.shape == tuple(tidx.shape)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    y3, idx3 = max_pool2d(mi.tensor(x[0]), *args, return_indices=True)
    np.testing.assert_array_equal(idx3.numpy(), tidx.numpy()[0])
    with pytest.raises(TypeError, match="return_indices"):
        max_pool2d(mi.tensor(x), *args, return_indices=1)
