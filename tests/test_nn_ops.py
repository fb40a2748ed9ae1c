"""The neural-network operations beyond their oracle specifications (``specs_nn.py``):

* error parity: where PyTorch refuses an argument, we refuse it too, with a ValueError or
  TypeError that names the argument and the shapes;
* the random operations (dropout, drop_path, attention dropout): reproducible from a seed,
  unbiased, survivors exactly x / (1 - p), and a backward pass through the same mask;
* batch_norm's running statistics, updated in place as PyTorch does, and evaluation mode;
* numerics: cross-entropy on huge logits, the float32 GELU against an accurate reference.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import mini_iformer as mi
import mini_iformer.functional as F


def _parity(ours, theirs, words):
    """Both raise or neither; our error is a ValueError/TypeError whose message has ``words``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs()
        torch_raised = False
    except (RuntimeError, ValueError, TypeError, IndexError):
        torch_raised = True
    if not torch_raised:
        ours()
        return
    with pytest.raises((ValueError, TypeError)) as info:
        ours()
    message = str(info.value)
    for w in words:
        assert str(w) in message, f"{message!r} does not mention {w!r}"


def _ones(shape):
    return np.ones(shape), torch.ones(shape, dtype=torch.float64)


# =============================================================================================
# Error parity
# =============================================================================================
@given(x_shape=array_shapes(min_dims=1, max_dims=3, max_side=4),
       w_shape=array_shapes(min_dims=2, max_dims=2, max_side=4),
       b_shape=st.one_of(st.none(), array_shapes(min_dims=1, max_dims=1, max_side=4)))
def test_linear_errors_match_torch(x_shape, w_shape, b_shape):
    (x, tx), (w, tw) = _ones(x_shape), _ones(w_shape)
    b, tb = _ones(b_shape) if b_shape is not None else (None, None)
    words = ["input", x_shape, w_shape] if x_shape[-1] != w_shape[-1] else ["bias", b_shape]
    _parity(lambda: F.linear(mi.tensor(x), mi.tensor(w), None if b is None else mi.tensor(b)),
            lambda: TF.linear(tx, tw, tb), words)


@given(x_shape=array_shapes(min_dims=1, max_dims=3, max_side=3),
       norm=array_shapes(min_dims=1, max_dims=2, max_side=3),
       w_shape=st.one_of(st.none(), array_shapes(min_dims=1, max_dims=2, max_side=3)))
def test_layer_norm_errors_match_torch(x_shape, norm, w_shape):
    (x, tx) = _ones(x_shape)
    w, tw = _ones(w_shape) if w_shape is not None else (None, None)
    trailing_ok = x_shape[len(x_shape) - len(norm):] == norm and len(norm) <= len(x_shape)
    words = ["normalized_shape", norm, x_shape] if not trailing_ok else ["weight", w_shape, norm]
    _parity(lambda: F.layer_norm(mi.tensor(x), norm, None if w is None else mi.tensor(w)),
            lambda: TF.layer_norm(tx, norm, tw), words)
    _parity(lambda: F.layer_norm(mi.tensor(x), norm, None, None if w is None else mi.tensor(w)),
            lambda: TF.layer_norm(tx, norm, None, tw),
            words if not trailing_ok else ["bias", w_shape, norm])


def test_layer_norm_refuses_an_empty_normalized_shape():
    with pytest.raises(RuntimeError):
        TF.layer_norm(torch.ones(2, 3), ())
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(mi.ones(2, 3), ())


@pytest.mark.parametrize("which", ["running_mean", "running_var", "weight", "bias"])
@given(c=st.integers(1, 4), wrong=st.integers(1, 4))
def test_batch_norm_channel_errors_match_torch(which, c, wrong):
    x, tx = _ones((2, c, 3))
    args = {"running_mean": np.zeros(c), "running_var": np.ones(c), "weight": None, "bias": None}
    args[which] = np.ones(wrong)
    ours = {k: None if v is None else mi.tensor(v) for k, v in args.items()}
    theirs = {k: None if v is None else torch.tensor(v) for k, v in args.items()}
    _parity(lambda: F.batch_norm(mi.tensor(x), **ours), lambda: TF.batch_norm(tx, **theirs),
            [which, (wrong,), (2, c, 3)])


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1, 1), (1, 2, 1)])
def test_batch_norm_needs_more_than_one_value_per_channel_when_training(shape):
    x, tx = _ones(shape)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        TF.batch_norm(tx, None, None, training=True)
    message = "Expected more than 1 value per channel when training.*" + re.escape(str(shape))
    with pytest.raises(ValueError, match=message):
        F.batch_norm(mi.tensor(x), None, None, training=True)
    # evaluation mode is fine with one value per channel
    c = shape[1]
    F.batch_norm(mi.tensor(x), mi.zeros(c, dtype=np.float64), mi.ones(c, dtype=np.float64))


def test_batch_norm_needs_running_statistics_in_evaluation_mode():
    _parity(lambda: F.batch_norm(mi.ones(2, 3), None, None, training=False),
            lambda: TF.batch_norm(torch.ones(2, 3), None, None, training=False), ["running_mean"])
    _parity(lambda: F.batch_norm(mi.ones(3), None, None, training=True),
            lambda: TF.batch_norm(torch.ones(3), None, None, training=True), ["(3,)"])


def _attention_reference(q, k, v):
    """PyTorch's reference formula (its fused kernels do not check every shape)."""
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


@given(q_shape=array_shapes(min_dims=2, max_dims=4, max_side=3),
       k_shape=array_shapes(min_dims=2, max_dims=4, max_side=3),
       v_shape=array_shapes(min_dims=2, max_dims=4, max_side=3))
def test_attention_errors_match_torch(q_shape, k_shape, v_shape):
    (q, tq), (k, tk), (v, tv) = _ones(q_shape), _ones(k_shape), _ones(v_shape)
    _parity(lambda: F.scaled_dot_product_attention(mi.tensor(q), mi.tensor(k), mi.tensor(v)),
            lambda: _attention_reference(tq, tk, tv), [])


@pytest.mark.parametrize("shapes, words", [
    (((2, 5, 4), (2, 6, 3), (2, 6, 4)), ["query", "key", "(2, 5, 4)", "(2, 6, 3)", "feature"]),
    (((2, 5, 4), (2, 6, 4), (2, 5, 4)), ["key", "value", "(2, 6, 4)", "(2, 5, 4)", "tokens"]),
    (((2, 5, 4), (3, 6, 4), (3, 6, 4)), ["(2, 5, 4)", "(3, 6, 4)", "broadcast"]),
    (((4,), (4,), (4,)), ["at least 2 dimensions"]),
])
def test_attention_errors_name_the_arguments(shapes, words):
    (q, tq), (k, tk), (v, tv) = (_ones(s) for s in shapes)
    with pytest.raises((RuntimeError, IndexError)):
        _attention_reference(tq, tk, tv)
    with pytest.raises(ValueError) as info:
        F.scaled_dot_product_attention(mi.tensor(q), mi.tensor(k), mi.tensor(v))
    for w in words:
        assert w in str(info.value)


def test_attention_refuses_a_mask_of_the_wrong_shape_and_a_mask_with_is_causal():
    q = mi.ones(2, 3, 4)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 2\)"):
        F.scaled_dot_product_attention(q, q, q, mi.ones(3, 2))
    t = torch.ones(2, 3, 4)
    with pytest.raises(RuntimeError):
        TF.scaled_dot_product_attention(t, t, t, torch.ones(3, 3), is_causal=True)
    with pytest.raises(ValueError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, mi.ones(3, 3), is_causal=True)


@pytest.mark.parametrize("p", [-0.1, 1.5, 2.0, -1.0])
def test_dropout_probability_outside_0_1_is_an_error(p):
    x = np.ones((2, 3))
    for training in (True, False):
        _parity(lambda: F.dropout(mi.tensor(x), p, training),  # noqa: B023 - called at once
                lambda: TF.dropout(torch.tensor(x), p, training), ["probability", str(p)])  # noqa: B023
    with pytest.raises(ValueError, match="probability"):
        F.drop_path(mi.tensor(x), p, True)
    a, ta = mi.tensor(x), torch.tensor(x)
    if p > 1:  # PyTorch checks attention dropout only from above
        _parity(lambda: F.scaled_dot_product_attention(a, a, a, dropout_p=p),
                lambda: TF.scaled_dot_product_attention(ta, ta, ta, dropout_p=p),
                ["dropout_p", str(p)])
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(a, a, a, dropout_p=p)


def test_dropout_generator_must_be_a_numpy_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        F.dropout(mi.ones(3), 0.5, generator=42)


@given(n=st.integers(1, 4), c=st.integers(1, 4),
       t_shape=array_shapes(min_dims=0, max_dims=2, max_side=4),
       soft=st.booleans())
def test_cross_entropy_target_shape_errors_match_torch(n, c, t_shape, soft):
    z = np.zeros((n, c))
    if soft:
        t = np.full(t_shape, 1.0 / c)
        words = ["target", t_shape]
    else:
        t = np.zeros(t_shape, dtype=np.int64)
        words = ["target", t_shape]
    _parity(lambda: F.cross_entropy(mi.tensor(z), mi.tensor(t)),
            lambda: TF.cross_entropy(torch.tensor(z), torch.tensor(t)), words)


@given(n=st.integers(1, 4), c=st.integers(1, 5), bad=st.integers(-5, 9))
def test_cross_entropy_out_of_range_class_matches_torch(n, c, bad):
    t = np.zeros(n, dtype=np.int64)
    t[-1] = bad
    z = np.zeros((n, c))
    _parity(lambda: F.cross_entropy(mi.tensor(z), mi.tensor(t)),
            lambda: TF.cross_entropy(torch.tensor(z), torch.tensor(t)),
            ["target", str(bad), f"[0, {c})"])


def test_cross_entropy_argument_errors():
    z, t = mi.zeros(2, 3), np.array([0, 1])
    _parity(lambda: F.cross_entropy(z, t, label_smoothing=1.5),
            lambda: TF.cross_entropy(torch.zeros(2, 3), torch.tensor(t), label_smoothing=1.5),
            ["label_smoothing", "1.5"])
    _parity(lambda: F.cross_entropy(z, t, reduction="avg"),
            lambda: TF.cross_entropy(torch.zeros(2, 3), torch.tensor(t), reduction="avg"),
            ["reduction", "avg"])
    _parity(lambda: F.cross_entropy(z, t, mi.ones(2)),
            lambda: TF.cross_entropy(torch.zeros(2, 3), torch.tensor(t), torch.ones(2)),
            ["weight", "(3,)", "(2,)"])
    probs = np.full((2, 3), 1 / 3)
    _parity(lambda: F.cross_entropy(z, probs, ignore_index=1),
            lambda: TF.cross_entropy(torch.zeros(2, 3, dtype=torch.float64),
                                     torch.tensor(probs), ignore_index=1),
            ["ignore_index", "probabilities"])
    with pytest.raises(TypeError, match="ignore_index"):
        F.cross_entropy(z, t, ignore_index=1.5)
    # ignored items may hold any index, in range or not
    ignored = F.cross_entropy(z, np.array([-100, 1]))
    assert np.isclose(ignored.item(), math.log(3))


def test_gelu_argument_errors_match_torch():
    _parity(lambda: F.gelu(mi.ones(2), "erf"), lambda: TF.gelu(torch.ones(2), approximate="erf"),
            ["approximate", "'erf'"])
    _parity(lambda: F.gelu(mi.tensor(np.arange(3))), lambda: TF.gelu(torch.arange(3)),
            ["floating-point", "int64"])


# =============================================================================================
# Random operations
# =============================================================================================
def _gen(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("op", ["dropout", "drop_path"])
def test_random_ops_are_reproducible_from_the_seed(backend_name, op):
    fn = getattr(F, op)
    x = mi.tensor(np.random.default_rng(0).standard_normal((6, 5, 4)))
    a = fn(x, 0.4, True, generator=_gen(7)).numpy()
    b = fn(x, 0.4, True, generator=_gen(7)).numpy()
    c = fn(x, 0.4, True, generator=_gen(8)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert fn(x, 0.4, True, generator=_gen(7)).backend == backend_name


@pytest.mark.parametrize("op", ["dropout", "drop_path"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_survivors_are_x_over_1_minus_p_and_backward_uses_the_same_mask(backend_name, op, p):
    fn = getattr(F, op)
    rng = np.random.default_rng(1)
    data = rng.uniform(0.5, 1.5, (64, 3, 5)) * rng.choice([-1, 1], (64, 3, 5))  # never 0
    x = mi.tensor(data, requires_grad=True)
    y = fn(x, p, True, generator=_gen(3))
    out = y.numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], data[kept] / (1 - p), rtol=1e-15)
    if op == "drop_path":  # whole samples: every element of a sample shares its fate
        per_sample = kept.reshape(64, -1)
        assert np.all(per_sample.all(axis=1) | ~per_sample.any(axis=1))
    upstream = rng.standard_normal(data.shape)
    y.backward(mi.tensor(upstream))
    np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p) * upstream, rtol=1e-15)


@pytest.mark.parametrize("op", ["dropout", "drop_path"])
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_random_ops_preserve_the_expectation(op, p):
    fn = getattr(F, op)
    x = mi.tensor(np.linspace(-2.0, 2.0, 12).reshape(3, 4))
    gen = _gen(123)
    samples = np.stack([fn(x, p, True, generator=gen).numpy() for _ in range(4000)])
    # each output is x * B / (1 - p) with B ~ Bernoulli(1 - p): standard deviation
    # |x| sqrt(p / (1 - p)) per sample
    std_err = np.abs(x.numpy()) * math.sqrt(p / (1 - p)) / math.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - x.numpy()) <= 4 * std_err + 1e-12)
    draws = len(samples) * (x.shape[0] if op == "drop_path" else x.size)  # independent keeps
    assert abs((samples != 0).mean() - (1 - p)) < 4 * math.sqrt(p * (1 - p) / draws)


@pytest.mark.parametrize("op", ["dropout", "drop_path"])
def test_random_ops_are_the_identity_in_evaluation_and_at_p_0(op):
    fn = getattr(F, op)
    x = mi.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for p, training in [(0.5, False), (0.0, True), (0.0, False)]:
        np.testing.assert_array_equal(fn(x, p, training).numpy(), x.numpy())
    assert np.all(F.dropout(x, 1.0, True).numpy() == 0)
    assert np.all(F.drop_path(x, 1.0, True).numpy() == 0)


def test_drop_path_defaults_to_the_identity():
    x = mi.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(F.drop_path(x).numpy(), x.numpy())  # p=0, training=False


def _attention_inputs(seed, shape=(2, 3, 5, 4)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(3)]


def test_attention_dropout_is_the_formula_with_the_same_mask(backend_name):
    p, seed = 0.3, 11
    q, k, v = _attention_inputs(0)
    ours_in = [mi.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ours_in, dropout_p=p, generator=_gen(seed))
    keep = _gen(seed).random((2, 3, 5, 5), dtype=np.float32) >= p
    t_in = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    attn = torch.softmax(t_in[0] @ t_in[1].transpose(-1, -2) / 2.0, dim=-1)
    t_out = (attn * torch.tensor(keep) / (1 - p)) @ t_in[2]
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(mi.tensor(upstream))
    t_out.backward(torch.tensor(upstream))
    for ours, theirs in zip(ours_in, t_in):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
    again = F.scaled_dot_product_attention(*ours_in, dropout_p=p, generator=_gen(seed))
    np.testing.assert_array_equal(again.numpy(), out.numpy())


def test_attention_dropout_preserves_the_expectation():
    q, k, v = (mi.tensor(a) for a in _attention_inputs(2, (1, 1, 3, 2)))
    exact = F.scaled_dot_product_attention(q, k, v).numpy()
    gen = _gen(5)
    samples = np.stack([
        F.scaled_dot_product_attention(q, k, v, dropout_p=0.25, generator=gen).numpy()
        for _ in range(4000)
    ])
    std_err = samples.std(axis=0) / math.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - exact) <= 4 * std_err + 1e-12)


# =============================================================================================
# batch_norm: running statistics and evaluation mode
# =============================================================================================
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(n=st.integers(2, 4), c=st.integers(1, 4), spatial=st.lists(st.integers(1, 3), max_size=2),
       momentum=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_batch_norm_updates_the_running_statistics_like_torch(
    backend_name, dtype, n, c, spatial, momentum, seed
):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, *spatial)).astype(dtype)
    mean0, var0 = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    rm, rv = mi.tensor(mean0.copy()), mi.tensor(var0.copy())
    arrays = rm.data, rv.data
    trm, trv = torch.tensor(mean0.copy()), torch.tensor(var0.copy())
    y = F.batch_norm(mi.tensor(x), rm, rv, training=True, momentum=momentum)
    ty = TF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=momentum)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=tol, atol=tol)  # unbiased
    assert rm.data is arrays[0] and rv.data is arrays[1], "the buffers must be updated in place"
    assert rm.dtype == dtype and rv.dtype == dtype and y.dtype == dtype
    # evaluation mode now uses the updated statistics and leaves them alone
    x2 = rng.standard_normal((n, c, *spatial)).astype(dtype)
    y2 = F.batch_norm(mi.tensor(x2), rm, rv, training=False, momentum=momentum)
    ty2 = TF.batch_norm(torch.tensor(x2), trm, trv, training=False, momentum=momentum)
    np.testing.assert_allclose(y2.numpy(), ty2.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=tol, atol=tol)


def test_batch_norm_training_without_running_statistics():
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    y = F.batch_norm(mi.tensor(x), None, None, training=True)
    ty = TF.batch_norm(torch.tensor(x), None, None, training=True)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-12, atol=1e-12)


def test_batch_norm_eval_gradients_match_torch():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((3, 4, 5)), rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    ours = [mi.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    g = rng.standard_normal(x.shape)
    F.batch_norm(ours[0], mi.tensor(rm), mi.tensor(rv), ours[1], ours[2]).backward(mi.tensor(g))
    t_out = TF.batch_norm(theirs[0], torch.tensor(rm), torch.tensor(rv), theirs[1], theirs[2])
    t_out.backward(torch.tensor(g))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)


# =============================================================================================
# Numerics and fast paths
# =============================================================================================
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(backend_name, dtype):
    z = np.array([[1e4, -1e4, 0.0], [3e4, 3e4, -5e4], [-1e4, 0.0, 1e4]], dtype=dtype)
    t = np.array([1, 0, 2])
    soft = np.eye(3, dtype=dtype)[t]
    for target, t_target in [(t, torch.tensor(t)), (soft, torch.tensor(soft))]:
        zt = mi.tensor(z, requires_grad=True)
        loss = F.cross_entropy(zt, target, label_smoothing=0.1)
        loss.backward()
        tz = torch.tensor(z, requires_grad=True)
        t_loss = TF.cross_entropy(tz, t_target, label_smoothing=0.1)
        t_loss.backward()
        assert np.isfinite(loss.item()) and np.all(np.isfinite(zt.grad.numpy()))
        np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-6)
        np.testing.assert_allclose(zt.grad.numpy(), tz.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_cross_entropy_soft_one_hot_targets_equal_class_indices():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4))
    t = rng.integers(0, 4, 5)
    a, b = mi.tensor(z, requires_grad=True), mi.tensor(z, requires_grad=True)
    F.cross_entropy(a, t, label_smoothing=0.2).backward()
    F.cross_entropy(b, np.eye(4)[t], label_smoothing=0.2).backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_cross_entropy_accepts_index_tensors_and_lists():
    z = mi.tensor(np.array([[2.0, 0.0], [0.0, 2.0]]))
    for t in (mi.tensor(np.array([0, 1])), [0, 1], np.array([0, 1], dtype=np.int32)):
        np.testing.assert_allclose(F.cross_entropy(z, t).item(), math.log(1 + math.exp(-2)))


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_gelu_float32_is_accurate_over_the_whole_range(mode):
    from scipy.special import ndtr

    x32 = np.linspace(-14.0, 14.0, 400_001).astype(np.float32)
    x = mi.tensor(x32, requires_grad=True)
    with mi.ops.use(mode):
        y = F.gelu(x)
    y.backward(mi.tensor(np.ones_like(x32)))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    xs = x32.astype(np.float64)
    exact = xs * ndtr(xs)  # ndtr keeps its relative accuracy in the left tail
    slope = ndtr(xs) + xs * np.exp(-0.5 * xs * xs) / math.sqrt(2 * math.pi)
    err = np.abs(y.numpy() - exact)
    # relative to the value, wherever float32 can represent it: better than float32 PyTorch,
    # whose 1 + erf(x / sqrt 2) cancels to 0 below x = -5.5. (The reference's erfc(-x / sqrt 2)
    # rounds x / sqrt 2 to float32 first, and the tail multiplies that rounding by up to
    # x^2 ~ 200: a few 1e-5 where the fitted tail, working from |x| itself, stays below 1e-5.)
    big = np.abs(exact) > 1e-30
    assert np.max(err[big] / np.abs(exact[big])) < (1e-5 if mode == "fast" else 3e-5)
    assert np.max(err) < 1e-6
    assert np.max(np.abs(x.grad.numpy() - slope)) < 1e-6


def test_gelu_of_signed_zero_and_odd_sizes():
    for dtype in (np.float32, np.float64):
        x = mi.tensor(np.array([-0.0, 0.0], dtype=dtype), requires_grad=True)
        y = F.gelu(x)
        y.backward(mi.tensor(np.ones(2, dtype=dtype)))
        np.testing.assert_array_equal(y.numpy(), [0.0, 0.0])
        np.testing.assert_array_equal(x.grad.numpy(), [0.5, 0.5])
    # sizes around the block length of the NumPy path
    for n in (1, (1 << 15) - 1, (1 << 15) + 3):
        x32 = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        np.testing.assert_allclose(F.gelu(mi.tensor(x32)).numpy(),
                                   TF.gelu(torch.tensor(x32)).numpy(), rtol=1e-5, atol=1e-6)


def test_iformer_shapes_in_float32_match_torch():
    """Channel-last LayerNorm with eps 1e-6 and the MLP of a block, at a small batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 7, 96)).astype(np.float32)
    w, b = rng.uniform(0.5, 1.5, 96).astype(np.float32), rng.standard_normal(96).astype(np.float32)
    w1, b1 = (rng.standard_normal((384, 96)) * 0.02).astype(np.float32), np.zeros(384, np.float32)
    w2, b2 = (rng.standard_normal((96, 384)) * 0.02).astype(np.float32), np.zeros(96, np.float32)
    ours = [mi.tensor(a, requires_grad=True) for a in (x, w, b, w1, b1, w2, b2)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b, w1, b1, w2, b2)]

    def block(t, f, lf, gelu):
        h = lf(t[0], (96,), t[1], t[2], 1e-6)
        return f(gelu(f(h, t[3], t[4])), t[5], t[6])

    y = block(ours, F.linear, F.layer_norm, F.gelu)
    ty = block(theirs, TF.linear, TF.layer_norm, TF.gelu)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(mi.tensor(g))
    ty.backward(torch.tensor(g))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    for o, t in zip(ours, theirs):
        scale = float(np.max(np.abs(t.grad.numpy())))
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-3, atol=1e-4 * scale)


def test_no_grad_forward_saves_nothing_and_agrees():
    rng = np.random.default_rng(0)
    x = mi.tensor(rng.standard_normal((4, 3, 5)))
    with mi.no_grad():
        y = F.layer_norm(x, (5,))
        z = F.gelu(x)
    assert not y.requires_grad and y._ctx is None and z._ctx is None
    np.testing.assert_allclose(y.numpy(), F.layer_norm(x, (5,)).numpy())


def test_attention_with_an_empty_batch_broadcasts_a_documented_difference():
    """Key and value with an empty batch, a query that broadcasts over it: the output is the
    broadcast, empty batch (PyTorch returns the query's shape, (1, 1, 1), here)."""
    q, kv = mi.zeros(1, 1, 1), mi.zeros(0, 1, 1)
    assert F.scaled_dot_product_attention(q, kv, kv).shape == (0, 1, 1)
    theirs = TF.scaled_dot_product_attention(torch.zeros(1, 1, 1), torch.zeros(0, 1, 1),
                                             torch.zeros(0, 1, 1))
    assert tuple(theirs.shape) == (1, 1, 1)  # the difference, as documented
