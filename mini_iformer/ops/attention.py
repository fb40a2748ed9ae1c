"""``scaled_dot_product_attention``, like ``torch.nn.functional.scaled_dot_product_attention``.

    S = scale * Q K^T + M,    A = softmax(S) over the keys,    out = A' V,   A' = A * keep

Shapes: Q (..., L, E), K (..., S, E), V (..., S, Ev), out (..., L, Ev); M (optional) an
additive mask broadcast to (..., L, S); keep (optional) the attention-dropout mask, 0 or
1/(1-p). Backward, four lines:

    dV = A'^T g        dA = (g V^T) * keep        dS = A * (dA - sum(dA * A, keys))
    dQ = scale * dS K  dK = scale * dS^T Q        dM = dS

**The reference** is exactly this (:func:`attention_forward`, :func:`attention_backward`).
**The fast form** (``fast``) saves passes: the scale goes on Q, the softmax runs in place.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor, register_op
from .args import check_probability, shape_of
from .dropout import keep_mask
from .registry import Dispatch, Implementation, register

__all__ = ["scaled_dot_product_attention", "attention_forward", "attention_backward"]


def attention_forward(ctx, q, k, v, mask, keep, scale):
    """out = A' V with A = softmax(scale * Q K^T + M) (stable: the row maximum is subtracted
    before the exponential) and A' = A * keep. A row of scores that are all -inf (a query
    masked from every key) gets weights 0, not 0/0, as in PyTorch."""
    xp = backend.array_module(q)
    s = scale * (q @ xp.swapaxes(k, -1, -2))
    if mask is not None:
        s = s + mask
    m = s.max(axis=-1, keepdims=True)
    none = m == -xp.inf  # a query that may attend to no key: all its weights are 0
    e = xp.exp(s - xp.where(none, 0, m))
    a = e / xp.where(none, 1, e.sum(axis=-1, keepdims=True))
    ctx.q, ctx.k, ctx.v, ctx.a, ctx.keep, ctx.scale = q, k, v, a, keep, scale
    return (a * keep if keep is not None else a) @ v


def attention_backward(ctx, g):
    """dV = A'^T g;  dA = (g V^T) keep;  dS = A (dA - sum(dA A));  dQ = scale dS K;
    dK = scale dS^T Q;  dM = dS."""
    xp = backend.array_module(g)
    a, keep, scale = ctx.a, ctx.keep, ctx.scale
    a_drop = a * keep if keep is not None else a
    dv = xp.swapaxes(a_drop, -1, -2) @ g
    da = g @ xp.swapaxes(ctx.v, -1, -2)
    if keep is not None:
        da = da * keep
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True))
    dq = scale * (ds @ ctx.k)
    dk = scale * (xp.swapaxes(ds, -1, -2) @ ctx.q)
    return dq, dk, dv, (ds if ctx.needs_input_grad[3] else None), None


def fast_forward(ctx, q, k, v, mask, keep, scale):
    """The reference with fewer passes: the scale applied to Q (L x E numbers) rather than to
    S (L x S), the softmax done in place in the score array (kept as A for backward), one
    reciprocal per row, and the backward's products in place."""
    xp = backend.array_module(q)
    need_q, need_k, need_v, need_m = ctx.needs_input_grad[:4]
    qs = q * scale
    s = qs @ xp.swapaxes(k, -1, -2)
    if mask is not None:
        s += mask
    m = s.max(axis=-1, keepdims=True)
    s -= xp.where(m == -xp.inf, 0, m)  # a query masked from every key: exp(-inf) = 0 ...
    xp.exp(s, out=s)
    total = xp.einsum("...ij->...i", s)
    total = xp.where(total == 0, 1, total)  # ... its weights stay 0 (elsewhere a term is 1)
    # one reciprocal per row, then multiply: faster than dividing every score
    s *= (1.0 / total)[..., None]
    a = s
    a_drop = a * keep if keep is not None else a
    out = a_drop @ v
    need_scores = need_q or need_k or need_m
    ctx.a = a if need_scores or need_v else None
    ctx.keep = keep
    ctx.v = v if need_scores else None
    ctx.k = k if need_q else None
    ctx.qs = qs if need_k else None
    ctx.scale = scale
    return out


def fast_backward(ctx, g):
    """The reference's backward, in place where it can be."""
    xp = backend.array_module(g)
    need_q, need_k, need_v, need_m = ctx.needs_input_grad[:4]
    a, keep = ctx.a, ctx.keep
    dq = dk = dv = ds = None
    if need_v:
        a_drop = a * keep if keep is not None else a
        dv = xp.swapaxes(a_drop, -1, -2) @ g
    if need_q or need_k or need_m:
        ds = g @ xp.swapaxes(ctx.v, -1, -2)  # dA' ...
        if keep is not None:
            ds *= keep  # ... dA
        ds -= xp.einsum("...ij,...ij->...i", ds, a)[..., None]
        ds *= a  # dS = A * (dA - sum(dA * A))
        if need_q:
            dq = (ds @ ctx.k) * ctx.scale
        if need_k:
            dk = xp.swapaxes(ds, -1, -2) @ ctx.qs
    return dq, dk, dv, (ds if need_m else None), None


class ScaledDotProductAttention(Dispatch):
    name = "scaled_dot_product_attention"


@register_op("scaled_dot_product_attention")
def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Softmax attention, like ``torch.nn.functional.scaled_dot_product_attention``.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); leading axes
    broadcast. ``scale`` defaults to 1/sqrt(E). ``attn_mask``: boolean (True = may attend) or
    additive float, broadcastable to (..., L, S); ``is_causal``: query i attends to keys
    0..i. A query that may attend to no key gets output 0 (and gradient 0), as in PyTorch.
    ``dropout_p > 0`` drops attention weights (survivors scaled by 1/(1-p)) with a mask
    drawn from ``generator``; like PyTorch, the caller passes ``dropout_p=0`` in evaluation.
    Empty operands broadcast like any other: the output has the broadcast leading axes (where
    an operand is empty and the leading axes broadcast, PyTorch returns the query's shape
    instead), and the shapes are checked (PyTorch skips some checks when an operand is empty).
    """
    op = "scaled_dot_product_attention"
    named = ((query, "query"), (key, "key"), (value, "value"))
    shapes = [shape_of(t, name, op) for t, name in named]
    q_shape, k_shape, v_shape = shapes
    if min(len(s) for s in shapes) < 2:
        raise ValueError(
            f"{op}: query, key and value need at least 2 dimensions (..., tokens, features), "
            f"got shapes {q_shape}, {k_shape} and {v_shape}"
        )
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(
            f"{op}: query of shape {q_shape} and key of shape {k_shape} must have the same "
            f"feature size (last axis)"
        )
    if k_shape[-2] != v_shape[-2]:
        raise ValueError(
            f"{op}: key of shape {k_shape} and value of shape {v_shape} must have the same "
            f"number of tokens (second-to-last axis)"
        )
    try:
        batch = np.broadcast_shapes(q_shape[:-2], k_shape[:-2], v_shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: the leading axes of query {q_shape}, key {k_shape} and value {v_shape} "
            "cannot be broadcast together"
        ) from None
    p = check_probability(dropout_p, "dropout_p", op)
    scores_shape = batch + (q_shape[-2], k_shape[-2])
    dtype = np.result_type(query.dtype, key.dtype, value.dtype)
    if attn_mask is not None and is_causal:
        raise ValueError(f"{op}: give either attn_mask or is_causal=True, not both")
    mask = attn_mask
    if is_causal:
        mask = np.tril(np.ones(scores_shape[-2:], dtype=bool))
    if mask is not None:
        m_shape = shape_of(mask, "attn_mask", op)
        try:
            grown = np.broadcast_shapes(m_shape, scores_shape) != scores_shape
        except ValueError:
            grown = True
        if grown:
            raise ValueError(
                f"{op}: attn_mask of shape {m_shape} does not broadcast to the attention "
                f"scores' shape {scores_shape} (query {q_shape}, key {k_shape})"
            )
        if mask.dtype == bool:  # True: may attend -> 0, False -> -inf
            allowed = backend.to_numpy(mask.data if isinstance(mask, Tensor) else mask)
            host = np.where(allowed, 0.0, -np.inf).astype(dtype)
            mask = backend.asarray(host)
    if scale is None:
        scale = 1.0 / math.sqrt(q_shape[-1])
    keep = keep_mask(scores_shape, p, dtype, generator, op) if p > 0 else None
    return ScaledDotProductAttention.apply(query, key, value, mask, keep, scale=float(scale))


IMPLEMENTATIONS = register(
    "scaled_dot_product_attention",
    [
        Implementation("reference", attention_forward, attention_backward),
        Implementation("fast", fast_forward, fast_backward),
    ],
)
