"""conv2d beyond its oracle specification (``specs_conv.py``): each kind against PyTorch,
the kinds, what forward keeps for backward, and the same refusals as PyTorch, with errors that
name the argument. (Every implementation against the reference: ``test_implementations.py``.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from oracle import check_case
from specs_conv import KINDS, _torch_conv2d, conv2d_case

import mini_iformer as mi
from mini_iformer.ops import use
from mini_iformer.ops.conv import conv2d, conv2d_kind


def _args(call):
    return {k: call[k] for k in ("stride", "padding", "dilation", "groups")}


# -- which implementation runs ---------------------------------------------------------------
@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pads, groups, path",
    [
        # iFormer-S: conv_fuse / proj1 (depthwise 3x3, pad 1), conv1 / proj2 / proj (1x1),
        # the stem and the patch embeddings (3x3, stride 2, pad 1)
        ((8, 64, 56, 56), (64, 1, 3, 3), (1, 1), (1, 1, 1, 1), 64, "depthwise"),
        ((8, 192, 56, 56), (192, 1, 3, 3), (1, 1), (1, 1, 1, 1), 192, "depthwise"),
        ((8, 96, 56, 56), (192, 96, 1, 1), (1, 1), (0, 0, 0, 0), 1, "pointwise"),
        ((8, 3, 224, 224), (48, 3, 3, 3), (2, 2), (1, 1, 1, 1), 1, "general"),
        ((8, 48, 112, 112), (96, 48, 3, 3), (2, 2), (1, 1, 1, 1), 1, "general"),
        ((8, 96, 56, 56), (192, 96, 3, 3), (2, 2), (1, 1, 1, 1), 1, "general"),
        # the edges of each case
        ((1, 4, 5, 5), (4, 4, 1, 1), (1, 2), (0, 0, 0, 0), 1, "general"),  # strided 1x1
        ((1, 4, 5, 5), (4, 4, 1, 1), (1, 1), (1, 1, 0, 0), 1, "general"),  # padded 1x1
        ((1, 4, 5, 5), (4, 2, 1, 1), (1, 1), (0, 0, 0, 0), 2, "general"),  # grouped 1x1
        ((1, 4, 5, 5), (4, 1, 3, 3), (2, 2), (1, 1, 1, 1), 4, "general"),  # strided depthwise
        ((1, 4, 5, 5), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), 4, "general"),  # channel multiplier
        ((1, 4, 5, 5), (4, 1, 2, 5), (1, 1), (0, 1, 2, 2), 4, "depthwise"),  # any kernel, padding
        ((1, 4, 5, 5), (4, 1, 1, 1), (1, 1), (0, 0, 0, 0), 4, "depthwise"),
    ],
)
def test_the_kind_follows_shape_stride_padding_and_groups(
    x_shape, w_shape, stride, pads, groups, path
):
    assert conv2d_kind(x_shape, w_shape, stride, pads, groups) == path


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_each_path_matches_the_oracles(backend_name, kind, data):
    """Forward and every gradient against PyTorch, HIPS autograd and a finite difference, with
    each implementation drawn as often as the others."""
    check_case(conv2d_case(data, kind))


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs",
    [
        ((2, 16, 14, 14), (16, 1, 3, 3), dict(padding=1, groups=16)),
        ((2, 12, 14, 14), (24, 12, 1, 1), {}),
        ((2, 3, 28, 28), (8, 3, 3, 3), dict(stride=2, padding=1)),
        ((2, 8, 14, 14), (16, 8, 3, 3), dict(stride=2, padding=1)),
    ],
    ids=["depthwise", "pointwise", "stem", "patch-embed"],
)
def test_iformer_layers_in_float32(backend_name, x_shape, w_shape, kwargs):
    """The layer types of iFormer, at a reduced size, in the training dtype."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) * 0.2).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    ours = [mi.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv2d(*ours, **kwargs)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(mi.tensor(g))
    theirs = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w, b)]
    ty = torch.nn.functional.conv2d(*theirs, **kwargs)
    ty.backward(torch.tensor(g.astype(np.float64)))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for t, tt in zip(ours, theirs):
        assert t.grad.dtype == np.float32
        scale = float(np.abs(tt.grad.numpy()).max())
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)


# -- arguments PyTorch accepts ---------------------------------------------------------------
def test_an_unbatched_input_gives_an_unbatched_output():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 6, 5)), rng.standard_normal((4, 3, 2, 2))
    ours_x = mi.tensor(x, requires_grad=True)
    y = conv2d(ours_x, mi.tensor(w), stride=(2, 1))
    assert y.shape == (4, 3, 4)
    y.sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, torch.tensor(w), stride=(2, 1))
    ty.sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours_x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 2), (4, 3)])
@pytest.mark.parametrize("dilation", [1, 2])
def test_padding_same_and_valid_follow_torch(kernel, dilation):
    """"same" pads d*(k-1) in all; when that is odd, the extra row/column goes at the end."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 8, 7)), rng.standard_normal((3, 2, *kernel))
    for padding in ("same", "valid"):
        y = conv2d(mi.tensor(x), mi.tensor(w), padding=padding, dilation=dilation).numpy()
        ty = _torch_conv2d(torch.tensor(x), torch.tensor(w), padding=padding, dilation=dilation)
        np.testing.assert_allclose(y, ty.numpy(), rtol=1e-12, atol=1e-12)
        if padding == "same":
            assert y.shape[2:] == x.shape[2:]


def test_mixed_float_dtypes_promote_like_the_other_ops():
    """PyTorch refuses a float32 input with a float64 weight; here, as in every other op,
    float32 with float64 gives float64 (NumPy's promotion)."""
    x = mi.tensor(np.ones((1, 1, 3, 3), dtype=np.float32))
    w = mi.tensor(np.ones((1, 1, 2, 2)))
    assert conv2d(x, w).dtype == np.float64
    assert conv2d(x, mi.tensor(np.ones((1, 1, 2, 2), dtype=np.float32))).dtype == np.float32


# -- what forward keeps, and which gradients backward computes ---------------------------------
def _kept_arrays(ctx):
    return [v for v in vars(ctx).values() if isinstance(v, np.ndarray)]


def _same_memory(a, b):
    return np.shares_memory(a, b) or a is b


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs",
    [
        ((2, 3, 5, 5), (4, 3, 1, 1), {}),
        ((2, 3, 5, 5), (3, 1, 3, 3), dict(padding=1, groups=3)),
        ((2, 3, 5, 5), (4, 3, 3, 3), dict(stride=2)),
    ],
    ids=["pointwise", "depthwise", "general"],
)
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, False),
                                   (False, False, True)])
@pytest.mark.parametrize("form", ["automatic", "reference"])
def test_forward_keeps_only_what_backward_needs(x_shape, w_shape, kwargs, needs, form):
    """The weight is kept exactly when dx is needed, and a form of the input (itself, padded,
    laid out for a loop, or as columns: as large as the input at least) exactly when dw is."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1])]
    ours = [mi.tensor(a, requires_grad=n) for a, n in zip(arrays, needs)]
    with use("fast" if form == "automatic" else "reference"):
        y = conv2d(*ours, **kwargs)
    kept = _kept_arrays(y._ctx)
    assert any(_same_memory(a, ours[1].data) for a in kept) == needs[0], "the weight"
    inputs = [a for a in kept if a.size >= arrays[0].size]
    assert bool(inputs) == needs[1], f"a form of the input: {[a.shape for a in kept]}"
    g = rng.standard_normal(y.shape)
    y.backward(mi.tensor(g))
    theirs = [torch.tensor(a, requires_grad=n) for a, n in zip(arrays, needs)]
    torch.nn.functional.conv2d(*theirs, **kwargs).backward(torch.tensor(g))
    for t, tt, n in zip(ours, theirs, needs):
        if n:
            np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-12)
        else:
            assert t.grad is None


def test_under_no_grad_nothing_is_kept():
    x = mi.tensor(np.ones((1, 2, 4, 4)), requires_grad=True)
    w = mi.tensor(np.ones((2, 1, 3, 3)), requires_grad=True)
    with mi.no_grad():
        y = conv2d(x, w, padding=1, groups=2)
    assert not y.requires_grad and y._ctx is None


# -- refusals --------------------------------------------------------------------------------
def _torch_raises(fn) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    except (RuntimeError, ValueError, TypeError):
        return True
    return False


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, kwargs, named",
    [
        ((5, 5), (2, 1, 3, 3), None, {}, ["input", "(5, 5)"]),
        ((1, 1, 1, 5, 5), (2, 1, 3, 3), None, {}, ["input", "(1, 1, 1, 5, 5)"]),
        ((1, 3, 5, 5), (2, 3, 3), None, {}, ["weight", "(2, 3, 3)"]),
        ((1, 3, 5, 5), (2, 3, 3, 3, 1), None, {}, ["weight", "(2, 3, 3, 3, 1)"]),
        ((1, 4, 5, 5), (2, 3, 3, 3), None, {}, ["input channels", "(2, 3, 3, 3)", "(1, 4, 5, 5)"]),
        ((1, 6, 5, 5), (4, 2, 3, 3), None, dict(groups=3), ["groups", "(4, 2, 3, 3)"]),
        ((1, 6, 5, 5), (6, 2, 3, 3), None, dict(groups=2), ["groups", "(1, 6, 5, 5)"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(groups=0), ["groups"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(groups=-1), ["groups"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(padding=-1), ["padding"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(padding=(1, -2)), ["padding"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(padding=(1, 1, 1, 1)), ["padding"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(padding="full"), ["padding"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(padding="same", stride=2), ["padding", "stride"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(stride=0), ["stride"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(stride=(1, -1)), ["stride"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(stride=(1, 1, 1)), ["stride"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(stride=1.5), ["stride"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(dilation=0), ["dilation"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(groups=1.0), ["groups"]),
        ((1, 3, 2, 5), (2, 3, 3, 3), None, {}, ["kernel", "(1, 3, 2, 5)", "(2, 3, 3, 3)"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), None, dict(dilation=3), ["kernel", "7 x 7"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), (3,), {}, ["bias", "(3,)"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), (1, 2), {}, ["bias", "(1, 2)"]),
        ((1, 3, 5, 5), (2, 3, 3, 3), (), {}, ["bias", "()"]),
    ],
)
def test_invalid_arguments_are_refused_like_torch(x_shape, w_shape, b_shape, kwargs, named):
    x, w = np.ones(x_shape), np.ones(w_shape)
    b = None if b_shape is None else np.ones(b_shape)
    assert _torch_raises(lambda: torch.nn.functional.conv2d(
        torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b), **kwargs))
    with pytest.raises((ValueError, TypeError)) as info:
        conv2d(mi.tensor(x), mi.tensor(w), None if b is None else mi.tensor(b), **kwargs)
    message = str(info.value)
    assert message.startswith("conv2d: ")
    for word in named:
        assert word in message, f"{message!r} does not name {word!r}"


def test_integer_tensors_are_refused():
    with pytest.raises(TypeError, match="input must be floating point"):
        conv2d(mi.tensor(np.ones((1, 1, 3, 3), dtype=np.int64)), mi.ones(1, 1, 2, 2))


sides = st.integers(1, 5)


@given(
    x_shape=st.lists(sides, min_size=2, max_size=5).map(tuple),
    w_shape=st.lists(st.integers(1, 4), min_size=3, max_size=5).map(tuple),
    bias=st.sampled_from(["none", "right", "wrong"]),
    groups=st.integers(-1, 3),
    stride=st.one_of(st.integers(-1, 2), st.tuples(st.integers(0, 2), st.integers(1, 2))),
    padding=st.one_of(st.integers(-1, 2), st.tuples(st.integers(0, 2), st.integers(-1, 1)),
                      st.sampled_from(["same", "valid"])),
    dilation=st.one_of(st.integers(0, 2), st.tuples(st.integers(1, 2), st.integers(0, 2))),
)
def test_refusals_match_torch_on_random_arguments(
    x_shape, w_shape, bias, groups, stride, padding, dilation
):
    """Both refuse, or both compute the same values."""
    x, w = np.ones(x_shape), np.ones(w_shape)
    c_out = w_shape[0]
    b = {"none": None, "right": np.ones(c_out), "wrong": np.ones(c_out + 1)}[bias]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = torch.nn.functional.conv2d(
                torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b), **kwargs
            ).numpy()
    except (RuntimeError, ValueError, TypeError):
        expected = None
    if expected is None:
        with pytest.raises((ValueError, TypeError), match="^conv2d: "):
            conv2d(mi.tensor(x), mi.tensor(w), None if b is None else mi.tensor(b), **kwargs)
    else:
        ours = conv2d(mi.tensor(x), mi.tensor(w), None if b is None else mi.tensor(b), **kwargs)
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("side", [3, 9])  # 9 or 81 output pixels: both sides of SMALL_MAP
@pytest.mark.parametrize("impl, groups, stride, w_shape", [
    ("pointwise", 1, 1, (6, 4, 1, 1)),
    ("im2col", 1, 1, (6, 4, 1, 1)),
    ("im2col", 1, 2, (6, 4, 3, 3)),
    ("im2col", 2, 1, (6, 2, 3, 3)),  # grouped
])
def test_weight_gradient_per_sample_and_folded_agree_with_torch(side, impl, groups, stride,
                                                                w_shape):
    """The matrix-product forms sum per-sample products for the weight gradient on large maps
    and fold the samples into one product on small ones: both are PyTorch's gradient."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4, side * stride, side * stride)), rng.standard_normal(w_shape)
    xt, wt = mi.tensor(x, requires_grad=True), mi.tensor(w, requires_grad=True)
    with use(conv2d=impl):
        y = conv2d(xt, wt, stride=stride, padding=w_shape[-1] // 2, groups=groups)
    g_out = rng.standard_normal(y.shape)
    y.backward(mi.tensor(g_out))
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=w_shape[-1] // 2, groups=groups)
    ty.backward(torch.tensor(g_out))
    np.testing.assert_allclose(wt.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
