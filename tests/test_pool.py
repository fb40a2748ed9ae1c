"""Pooling and resizing: every path against the oracles, the fast paths against the plain
reference forms, the choice of path, and errors that match PyTorch's.

``test_ops.py`` runs the mixed specifications of ``specs_pool.py``; here each path (iFormer's
fast ones, the general ones, every interpolation mode) also runs on its own, so that none of
them depends on the luck of the draw.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import mini_iformer as mi
from mini_iformer.ops import pool
from mini_iformer.ops.pool import (
    avg_pool2d, avg_pool2d_reference, interpolate, interpolate_reference, max_pool2d,
    max_pool2d_reference,
)
from oracle import check_case, draw_array
from specs_pool import (
    AVG_POOL_PATHS, INTERPOLATE_PATHS, MAX_POOL_PATHS, _pool_geometry, avg_pool2d_case,
    interpolate_case, max_pool2d_case,
)


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
# Which implementation runs
# ---------------------------------------------------------------------------------------------
def _node(y):
    return y._ctx


def test_iformer_uses_take_the_fast_paths():
    x = mi.randn(2, 4, 8, 8, requires_grad=True)
    node = _node(max_pool2d(x, 3, 1, 1))
    assert isinstance(node, pool.MaxPool2d) and node.win.flat
    assert isinstance(_node(avg_pool2d(x, 2)), pool.AvgPool2dBlocks)
    assert isinstance(_node(interpolate(x, scale_factor=2)), pool.RepeatUpsample)
    assert isinstance(_node(interpolate(x, size=(16, 24))), pool.RepeatUpsample)  # x2, x3
    assert isinstance(_node(interpolate(x, size=(9, 7), mode="bilinear")), pool.Resize2d)


def test_other_settings_take_the_general_paths():
    x = mi.randn(2, 4, 9, 8, requires_grad=True)
    node = _node(max_pool2d(x, 3, 2, 1))
    assert isinstance(node, pool.MaxPool2d) and not node.win.flat
    assert isinstance(_node(avg_pool2d(x, 2)), pool.AvgPool2d)  # 9 rows: not divisible
    assert isinstance(_node(avg_pool2d(x, 2, 1)), pool.AvgPool2d)
    assert isinstance(_node(avg_pool2d(x[:, :, :8], 2, padding=1)), pool.AvgPool2d)
    assert isinstance(_node(interpolate(x, scale_factor=1.5)), pool.Resize2d)
    assert isinstance(_node(interpolate(x, scale_factor=0.5)), pool.Resize2d)
    exact_x2 = interpolate(x, scale_factor=2, mode="nearest-exact")
    assert isinstance(_node(exact_x2), pool.RepeatUpsample)
    assert isinstance(_node(interpolate(x, scale_factor=2, mode="bilinear")), pool.Resize2d)


# ---------------------------------------------------------------------------------------------
# Fast and general paths against the plain reference forms
# ---------------------------------------------------------------------------------------------
def _adjoint_gap(op, reference, x_shape, rng):
    """|<g, R v> - <A^T g, v>|: zero when our backward is the adjoint of the (linear) reference
    map R; A^T g is our gradient of sum(g * op(x)) at any x."""
    x = mi.tensor(rng.standard_normal(x_shape), requires_grad=True)
    y = op(x)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    v = rng.standard_normal(x_shape)
    return abs(float((g * reference(v)).sum()) - float((x.grad.numpy() * v).sum()))


@given(data=st.data())
def test_max_pool2d_matches_the_window_loop(backend_name, data):
    kernel, stride, padding, dilation, shape = _pool_geometry(data, True, None)
    shape = shape if len(shape) == 4 else (1,) + shape
    ceil_mode = data.draw(st.booleans(), label="ceil_mode")
    args = (kernel, stride, padding, dilation, ceil_mode)
    x_np = draw_array(data, shape, "distinct")
    ref, index = max_pool2d_reference(x_np, *args)
    x = mi.tensor(x_np, requires_grad=True)
    y = max_pool2d(x, *args)
    np.testing.assert_array_equal(y.numpy(), ref)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    expected = np.zeros(shape[:2] + (shape[2] * shape[3],))
    n, c = np.indices(index.shape[:2])
    for a in range(index.shape[2]):
        for b in range(index.shape[3]):
            hit = index[:, :, a, b] >= 0  # -1: a window wholly in the padding
            np.add.at(expected, (n[hit], c[hit], index[:, :, a, b][hit]), g[:, :, a, b][hit])
    np.testing.assert_allclose(x.grad.numpy(), expected.reshape(shape), rtol=1e-12, atol=1e-12)


@given(data=st.data())
def test_avg_pool2d_matches_the_window_loop(backend_name, data):
    kernel, stride, padding, _, shape = _pool_geometry(data, False, None)
    shape = shape if len(shape) == 4 else (1,) + shape
    if data.draw(st.booleans(), label="tiles"):
        stride, padding, shape = None, 0, shape[:2] + (kernel[0] * 2, kernel[1] * 3)
    args = (
        kernel, stride, padding, data.draw(st.booleans(), label="ceil_mode"),
        data.draw(st.booleans(), label="count_include_pad"),
        data.draw(st.sampled_from([None, 2, -3]), label="divisor_override"),
    )
    x_np = draw_array(data, shape)
    y = avg_pool2d(mi.tensor(x_np), *args)
    np.testing.assert_allclose(y.numpy(), avg_pool2d_reference(x_np, *args), rtol=1e-12, atol=1e-12)
    gap = _adjoint_gap(
        lambda t: avg_pool2d(t, *args), lambda v: avg_pool2d_reference(v, *args), shape,
        np.random.default_rng(1),
    )
    assert gap < 1e-9


@pytest.mark.parametrize("mode", pool.MODES)
@given(data=st.data())
def test_interpolate_matches_the_pixel_loop(backend_name, mode, data):
    shape = (2, 2, data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))
    size = (data.draw(st.integers(1, 13)), data.draw(st.integers(1, 13)))
    interpolating = mode in ("bilinear", "bicubic")
    align = data.draw(st.booleans()) if interpolating else False
    kwargs = dict(size=size, mode=mode, align_corners=align if interpolating else None)
    x_np = draw_array(data, shape)
    y = interpolate(mi.tensor(x_np), **kwargs)
    ref = interpolate_reference(x_np, size, mode=mode, align_corners=align)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    gap = _adjoint_gap(
        lambda t: interpolate(t, **kwargs),
        lambda v: interpolate_reference(v, size, mode=mode, align_corners=align),
        shape, np.random.default_rng(2),
    )
    assert gap < 1e-9


@given(fh=st.integers(1, 4), fw=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5))
def test_repeat_upsampling_equals_the_matrix_form(fh, fw, h, w):
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((2, 3, h, w))
    eye_h = np.repeat(np.eye(h), fh, axis=0)  # (h*fh, h): row o reads input o // fh
    eye_w = np.repeat(np.eye(w), fw, axis=0)
    g = rng.standard_normal((2, 3, h * fh, w * fw))
    results = []
    for apply in (
        lambda t: pool.RepeatUpsample.apply(t, factors=(fh, fw)),
        lambda t: pool.Resize2d.apply(t, a_h=eye_h, a_w=eye_w),
    ):
        x = mi.tensor(x_np, requires_grad=True)
        y = apply(x)
        y.backward(g)
        results.append((y.numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


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
    y.backward(g)
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
    y.backward(np.zeros(y.shape))
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
    y.backward(g)
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
        call(pool, mi.tensor(X))
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


_modes = st.sampled_from(list(pool.MODES) + ["linear", "trilinear", "lanczos", "Bilinear"])


@given(shape=st.lists(st.integers(0, 4), min_size=4, max_size=4).map(tuple),
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
