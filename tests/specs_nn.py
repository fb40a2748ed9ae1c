"""The specification of the neural-network operations (``mini_iformer.ops.nn``), as
hypothesis-drawn cases for ``oracle.check_case``.

Each case states one use of an operation in mini_iformer and in PyTorch (and, where it is
short to write, in HIPS autograd): shapes, optional arguments and hyper-parameters are drawn.
Random operations are specified against the same formula written in PyTorch with the same
mask, rebuilt from the seed the case hands to ``generator``. Error parity, running statistics
and the statistics of the random masks are in ``test_nn_ops.py``.
"""

from __future__ import annotations

import math

import autograd.numpy as anp
import autograd.scipy.special as asp
import numpy as np
import torch
import torch.nn.functional as TF
from hypothesis import assume
from hypothesis import strategies as st
from oracle import Case, draw_array, small_shapes, spec_registry

import mini_iformer as mi
import mini_iformer.functional as F

SPECS, spec = spec_registry()


def _unpack(args, has_w, has_b):
    """(x, weight or None, bias or None) from a case's inputs, which omit absent parameters."""
    args = list(args)
    x = args.pop(0)
    w = args.pop(0) if has_w else None
    b = args.pop(0) if has_b else None
    return x, w, b


def _seed(data: st.DataObject, label: str = "seed") -> int:
    return data.draw(st.integers(0, 2**32 - 1), label=label)


def _keep(seed: int, shape: tuple[int, ...], p: float) -> np.ndarray:
    """The mask ``generator=np.random.default_rng(seed)`` gives: True where a value is kept."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32) >= p


# -- linear ------------------------------------------------------------------------------------
@spec("linear")
def _linear(data):
    lead = data.draw(small_shapes(max_dims=3), label="leading axes")
    n_in = data.draw(st.integers(1, 5), label="in_features")
    n_out = data.draw(st.integers(1, 5), label="out_features")
    # PyTorch takes a 1-D weight only without a bias
    kind = data.draw(st.sampled_from(["(out,)", "none", "(1,)", "1-D weight"]), label="bias")
    x = draw_array(data, lead + (n_in,), label="x")
    if kind == "1-D weight":
        w = draw_array(data, (n_in,), label="w")
        return Case([x, w], F.linear, TF.linear, lambda a, b: a @ b)
    w = draw_array(data, (n_out, n_in), label="w")
    if kind == "none":
        return Case([x, w], F.linear, TF.linear, lambda a, b: a @ b.T)
    b = draw_array(data, (n_out,) if kind == "(out,)" else (1,), label="b")
    return Case([x, w, b], F.linear, TF.linear, lambda a, c, d: a @ c.T + d)


# -- layer_norm --------------------------------------------------------------------------------
@spec("layer_norm")
def _layer_norm(data):
    shape = data.draw(small_shapes(min_dims=1, max_dims=4), label="shape")
    k = data.draw(st.integers(1, len(shape)), label="normalised axes")
    norm = tuple(shape[len(shape) - k:])
    eps = data.draw(st.sampled_from([1e-5, 1e-6, 1e-3, 0.1]), label="eps")
    has_w = data.draw(st.booleans(), label="weight")
    has_b = data.draw(st.booleans(), label="bias")
    # values at least 0.1 apart: no row has a near-zero variance that would make the finite
    # difference meaningless
    inputs = [draw_array(data, shape, "distinct", "x")]
    if has_w:
        inputs.append(draw_array(data, norm, label="w"))
    if has_b:
        inputs.append(draw_array(data, norm, label="b"))

    def unpack(args):
        return _unpack(args, has_w, has_b)

    def hips(*args):
        x, w, b = unpack(args)
        axes = tuple(range(x.ndim - k, x.ndim))
        mu = anp.mean(x, axis=axes, keepdims=True)
        var = anp.mean((x - mu) ** 2, axis=axes, keepdims=True)
        y = (x - mu) / anp.sqrt(var + eps)
        return y * (w if has_w else 1.0) + (b if has_b else 0.0)

    def ours(*args):
        x, w, b = unpack(args)
        return F.layer_norm(x, norm, w, b, eps)

    def theirs(*args):
        x, w, b = unpack(args)
        return TF.layer_norm(x, norm, w, b, eps)

    return Case(inputs, ours, theirs, hips)


# -- batch_norm --------------------------------------------------------------------------------
@spec("batch_norm")
def _batch_norm(data):
    n = data.draw(st.integers(1, 3), label="N")
    c = data.draw(st.integers(1, 3), label="C")
    spatial = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2), label="spatial"))
    training = data.draw(st.booleans(), label="training")
    if training and n * math.prod(spatial) == 1:
        n = 2  # PyTorch refuses a single value per channel when training
    shape = (n, c) + spatial
    momentum = data.draw(st.floats(0.0, 1.0), label="momentum")
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.1]), label="eps")
    has_w = data.draw(st.booleans(), label="weight")
    has_b = data.draw(st.booleans(), label="bias")
    with_stats = not training or data.draw(st.booleans(), label="running statistics")
    rng = np.random.default_rng(_seed(data, "running statistics seed"))
    mean0, var0 = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    inputs = [draw_array(data, shape, "distinct", "x")]
    if has_w:
        inputs.append(draw_array(data, (c,), label="w"))
    if has_b:
        inputs.append(draw_array(data, (c,), label="b"))

    def unpack(args):
        return _unpack(args, has_w, has_b)

    def ours(*args):
        x, w, b = unpack(args)
        # fresh running statistics on every call: the closure has no side effects
        rm = mi.tensor(mean0.astype(x.dtype)) if with_stats else None
        rv = mi.tensor(var0.astype(x.dtype)) if with_stats else None
        return F.batch_norm(x, rm, rv, w, b, training, momentum, eps)

    def theirs(*args):
        x, w, b = unpack(args)
        rm = torch.tensor(mean0, dtype=x.dtype) if with_stats else None
        rv = torch.tensor(var0, dtype=x.dtype) if with_stats else None
        # .contiguous(): PyTorch 2.13's evaluation-mode backward mixes up channels for an
        # input whose strides also read as channels-last (e.g. a transposed (1, 2, 1, 2))
        return TF.batch_norm(x.contiguous(), rm, rv, w, b, training, momentum, eps)

    return Case(inputs, ours, theirs)


# -- gelu --------------------------------------------------------------------------------------
@spec("gelu")
def _gelu(data):
    x = draw_array(data, data.draw(small_shapes(), label="shape"))
    x = x * data.draw(st.sampled_from([1.0, 3.0]), label="scale")
    approximate = data.draw(st.sampled_from(["none", "tanh"]), label="approximate")

    def hips(t):
        if approximate == "tanh":
            return 0.5 * t * (1 + anp.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t**3)))
        return 0.5 * t * (1 + asp.erf(t / math.sqrt(2)))

    return Case(
        [x], lambda t: F.gelu(t, approximate), lambda t: TF.gelu(t, approximate=approximate), hips
    )


# -- scaled_dot_product_attention --------------------------------------------------------------
@spec("scaled_dot_product_attention")
def _attention(data):
    batch = data.draw(small_shapes(max_dims=2, max_side=3), label="batch")
    # (an empty batch that key and value have but the query broadcasts over is a documented
    # difference, tested in test_nn_ops.py: PyTorch then returns the query's shape)
    L = data.draw(st.integers(1, 4), label="L (queries)")
    S = data.draw(st.integers(1, 4), label="S (keys)")
    E = data.draw(st.integers(1, 4), label="E")
    Ev = data.draw(st.integers(1, 4), label="Ev")

    def operand_batch(label):  # some axes broadcast (1), some leading axes left out
        b = tuple(1 if data.draw(st.booleans(), label=f"{label} broadcast") else n for n in batch)
        return b[data.draw(st.integers(0, len(b)), label=f"{label} dropped axes"):]

    q_batch, k_batch, v_batch = operand_batch("q"), operand_batch("k"), operand_batch("v")
    assume(0 not in batch or q_batch == batch)
    q = draw_array(data, q_batch + (L, E), label="q")
    k = draw_array(data, k_batch + (S, E), label="k")
    v = draw_array(data, v_batch + (S, Ev), label="v")
    scale = data.draw(st.one_of(st.none(), st.floats(0.1, 2.0)), label="scale")
    mask_kind = data.draw(st.sampled_from(["none", "bool", "float", "causal"]), label="mask")
    rng = np.random.default_rng(_seed(data, "mask seed"))
    if mask_kind == "bool":
        allowed = rng.random((L, S)) < 0.6
        if data.draw(st.booleans(), label="every query sees a key"):  # (else some get 0)
            allowed[np.arange(L), rng.integers(0, S, L)] = True
        def ours(a, b, c):
            return F.scaled_dot_product_attention(a, b, c, mi.tensor(allowed), scale=scale)

        def theirs(a, b, c):
            return TF.scaled_dot_product_attention(a, b, c, torch.tensor(allowed), scale=scale)

        return Case([q, k, v], ours, theirs)
    if mask_kind == "float":  # an additive mask, which also gets a gradient
        m_shape = data.draw(st.sampled_from([(L, S), (1, S), (L, 1)]), label="mask shape")
        m = draw_array(data, m_shape, label="m")
        return Case(
            [q, k, v, m],
            lambda a, b, c, d: F.scaled_dot_product_attention(a, b, c, d, scale=scale),
            lambda a, b, c, d: TF.scaled_dot_product_attention(a, b, c, d, scale=scale),
        )
    causal = mask_kind == "causal"

    def hips(a, b, c):
        s = a @ anp.swapaxes(b, -1, -2) * (1 / math.sqrt(E) if scale is None else scale)
        if causal:
            s = s + np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf)
        e = anp.exp(s - anp.max(s, axis=-1, keepdims=True))
        return (e / anp.sum(e, axis=-1, keepdims=True)) @ c

    same_batch = q.shape[:-2] == k.shape[:-2] == v.shape[:-2]  # HIPS' matmul: no broadcast
    return Case(
        [q, k, v],
        lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=causal, scale=scale),
        lambda a, b, c: TF.scaled_dot_product_attention(a, b, c, is_causal=causal, scale=scale),
        hips if same_batch else None,
    )


# -- dropout and drop_path ---------------------------------------------------------------------
def _random_op(ours, mask_shape):
    def draw(data):
        x = draw_array(data, data.draw(small_shapes(min_dims=1), label="shape"))
        p = data.draw(st.sampled_from([0.0, 0.2, 0.5, 0.9, 1.0]), label="p")
        training = data.draw(st.booleans(), label="training")
        seed = _seed(data)
        identity = not training or p == 0.0
        factor = 0.0 if p == 1.0 else 1.0 / (1.0 - p)

        def theirs(t):  # the mask of the shape the op is called with
            if identity:
                return t
            keep = _keep(seed, mask_shape(tuple(t.shape)), p)
            return t * torch.tensor(keep, dtype=t.dtype) * factor

        return Case(
            [x],
            # a fresh generator from the same seed on every call: the same mask every time
            lambda t: ours(t, p, training, generator=np.random.default_rng(seed)),
            theirs,
        )

    return draw


SPECS["dropout"] = _random_op(F.dropout, lambda shape: shape)
def _sample_mask_shape(shape):
    """drop_path's mask: one value per sample; a 0-d tensor has no sample axis (refused)."""
    if not shape:
        raise IndexError("drop_path needs a batch axis")
    return shape[:1] + (1,) * (len(shape) - 1)


SPECS["drop_path"] = _random_op(F.drop_path, _sample_mask_shape)


# -- cross_entropy -----------------------------------------------------------------------------
def _like(weight, t):
    """The class weights in the logits' dtype, as PyTorch requires."""
    return None if weight is None else weight.to(t.dtype)


@spec("cross_entropy")
def _cross_entropy(data):
    layout = data.draw(st.sampled_from(["(N, C)", "(N, C, d)", "(C,)"]), label="layout")
    n = data.draw(st.integers(1, 4), label="N")
    c = data.draw(st.integers(1, 5), label="C")
    shape = {"(N, C)": (n, c), "(N, C, d)": (n, c, data.draw(st.integers(1, 3), label="d")),
             "(C,)": (c,)}[layout]
    axis = 0 if layout == "(C,)" else 1
    item_shape = shape[:axis] + shape[axis + 1:]
    z = draw_array(data, shape, label="logits")
    z = z * data.draw(st.sampled_from([1.0, 10.0]), label="scale")
    eps = data.draw(st.floats(0.0, 0.5), label="label_smoothing")
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]), label="reduction")
    rng = np.random.default_rng(_seed(data, "target seed"))
    # per-class weights (not differentiable, as in PyTorch), sometimes
    weight = rng.uniform(0.2, 2.0, c) if data.draw(st.booleans(), label="weight") else None
    ours_w = None if weight is None else mi.tensor(weight)
    theirs_w = None if weight is None else torch.tensor(weight)
    if data.draw(st.booleans(), label="class indices"):
        target = rng.integers(0, c, item_shape)
        # an ignored index (PyTorch's default -100, or a class), on some items
        ignore = data.draw(st.sampled_from([-100, 0]), label="ignore_index")
        if data.draw(st.booleans(), label="some items ignored") and target.size:
            target = np.where(rng.random(item_shape) < 0.3, ignore, target)
        assume(reduction != "mean" or (target != ignore).any())  # else 0 / 0

        def ours(t):
            return F.cross_entropy(t, target, ours_w, ignore_index=ignore, reduction=reduction,
                                   label_smoothing=eps)

        def theirs(t):
            return TF.cross_entropy(t, torch.tensor(target), _like(theirs_w, t), ignore_index=ignore,
                                    reduction=reduction, label_smoothing=eps)

        return Case([z], ours, theirs)
    # class probabilities (as Mixup makes them), sometimes not normalised: both frameworks take
    # them as they are; the target gets a gradient too
    probs = rng.uniform(0.05, 1.0, shape)
    if data.draw(st.booleans(), label="normalised"):
        probs = probs / probs.sum(axis=axis, keepdims=True)

    def hips(t, p):
        logp = t - anp.max(t, axis=axis, keepdims=True)
        logp = logp - anp.log(anp.sum(anp.exp(logp), axis=axis, keepdims=True))
        q = (1 - eps) * p + eps / c
        if weight is not None:
            q = q * (weight if axis == 0 else weight.reshape((c,) + (1,) * (z.ndim - 2)))
        loss = -anp.sum(q * logp, axis=axis)
        return {"mean": anp.mean, "sum": anp.sum, "none": lambda a: a}[reduction](loss)

    return Case(
        [z, probs],
        lambda t, p: F.cross_entropy(t, p, ours_w, reduction=reduction, label_smoothing=eps),
        lambda t, p: TF.cross_entropy(t, p, _like(theirs_w, t), reduction=reduction,
                                      label_smoothing=eps),
        hips,
    )
