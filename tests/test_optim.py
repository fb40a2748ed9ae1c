"""``mini_iformer.optim``: optimisers, parameter groups, clipping and the schedule, against
PyTorch.

* SGD (momentum, dampening, Nesterov, weight decay) and AdamW (lr, betas, eps, weight decay),
  with two parameter groups of different hyper-parameters and gradients that are sometimes
  absent, follow ``torch.optim`` step by step on the same parameters and gradients: to 1e-12
  in float64 and to float32 rounding in float32 (where everything stays float32);
* the state dict: plain serialisable values, a save/load round trip in the middle of a run
  is invisible (bit for bit), and a state dict that does not fit is refused, naming the
  problem, without changing anything;
* argument checking;
* ``param_groups_weight_decay`` puts each parameter of a small model in the right group;
* ``clip_grad_norm_`` against ``torch.nn.utils.clip_grad_norm_``;
* ``WarmupCosine`` against its formula at every step, and its state round trip.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mini_iformer as mi
from mini_iformer import nn
from mini_iformer.optim import (
    SGD,
    AdamW,
    Optimizer,
    WarmupCosine,
    clip_grad_norm_,
    param_groups_weight_decay,
)

# Two groups of parameters of assorted shapes (a 0-d one included).
SHAPES = [[(3, 4), (5,), (2, 3, 2, 2)], [(4,), ()]]
STEPS = 5


# =============================================================================================
# Helpers
# =============================================================================================
def _make_params(rng, dtype):
    """Our parameter groups and PyTorch's, with equal values."""
    ours, theirs = [], []
    for shapes in SHAPES:
        values = [rng.standard_normal(s).astype(dtype) for s in shapes]
        ours.append([nn.Parameter(v.copy()) for v in values])
        theirs.append([torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values])
    return ours, theirs


def _grad_plan(rng, steps, dtype):
    """Per step, per parameter (flattened): a gradient array or None. The last parameter of
    the first group never gets one, so it must keep its value and have no state."""
    shapes = [s for group in SHAPES for s in group]
    plan = []
    for _ in range(steps):
        row = []
        for i, s in enumerate(shapes):
            absent = i == len(SHAPES[0]) - 1 or rng.random() < 0.2
            row.append(None if absent else rng.standard_normal(s).astype(dtype))
        plan.append(row)
    return plan


def _set_grads(params, grads):
    for p, g in zip(params, grads):
        if isinstance(p, torch.Tensor):
            p.grad = None if g is None else torch.from_numpy(g.copy())
        else:
            p.grad = None if g is None else mi.tensor(g.copy())


def _flat(groups):
    return [p for group in groups for p in group]


def _groups(params, hypers):
    return [dict(h, params=ps) for ps, h in zip(params, hypers)]


def _check_same(ours, theirs, rtol, atol):
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert p.dtype == q.detach().numpy().dtype, i
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"parameter {i}")


def _run_against_torch(ours_cls, torch_cls, hypers, torch_hypers, seed, dtype, rtol, atol):
    rng = np.random.default_rng(seed)
    ours_params, torch_params = _make_params(rng, dtype)
    plan = _grad_plan(rng, STEPS, dtype)
    # The defaults come from the first group; the second group overrides all of them.
    opt = ours_cls(_groups(ours_params, hypers), **hypers[0])
    ref = torch_cls(_groups(torch_params, torch_hypers), **torch_hypers[0], foreach=False)
    flat_ours, flat_torch = _flat(ours_params), _flat(torch_params)
    untouched = flat_ours[len(SHAPES[0]) - 1].numpy().copy()
    arrays_before = [p.data for p in flat_ours]
    for grads in plan:
        _set_grads(flat_ours, grads)
        _set_grads(flat_torch, grads)
        opt.step()
        ref.step()
        _check_same(flat_ours, flat_torch, rtol, atol)
    # Updates are in place, in the parameter's dtype; the never-updated one is untouched.
    assert all(p.data is a for p, a in zip(flat_ours, arrays_before))
    assert all(p.dtype == dtype for p in flat_ours)
    np.testing.assert_array_equal(flat_ours[len(SHAPES[0]) - 1].numpy(), untouched)
    # The same parameters have state, holding the same values.
    for i, (p, q) in enumerate(zip(flat_ours, flat_torch)):
        theirs = {k: v for k, v in ref.state.get(q, {}).items() if v is not None}
        ours = opt.state.get(p, {})
        assert set(ours) == set(theirs), (i, set(ours), set(theirs))
        for k, v in ours.items():
            if k == "step":
                assert v == int(theirs[k].item())
            else:
                assert v.dtype == dtype
                np.testing.assert_allclose(mi.backend.to_numpy(v), theirs[k].numpy(),
                                           rtol=rtol, atol=atol, err_msg=f"{k} of {i}")
    return opt


@st.composite
def sgd_hypers(draw):
    nesterov = draw(st.booleans(), label="nesterov")
    if nesterov:
        momentum = draw(st.floats(0.05, 0.99), label="momentum")
        dampening = 0.0
    else:
        momentum = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)), label="momentum")
        dampening = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)), label="dampening")
    return dict(lr=draw(st.floats(0.0, 1.0), label="lr"), momentum=momentum,
                dampening=dampening, nesterov=nesterov,
                weight_decay=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5)), label="wd"))


@st.composite
def adamw_hypers(draw):
    beta1 = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)), label="beta1")
    beta2 = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.9999)), label="beta2")
    return dict(lr=draw(st.floats(1e-5, 0.5), label="lr"), betas=(beta1, beta2),
                eps=draw(st.floats(1e-10, 1e-1), label="eps"),
                weight_decay=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5)), label="wd"))


# =============================================================================================
# SGD and AdamW against torch.optim
# =============================================================================================
@given(hypers=st.lists(sgd_hypers(), min_size=2, max_size=2), seed=st.integers(0, 2**32 - 1))
def test_sgd_matches_torch_float64(backend_name, hypers, seed):
    _run_against_torch(SGD, torch.optim.SGD, hypers, hypers, seed, np.float64, 1e-12, 1e-12)


@given(hypers=st.lists(adamw_hypers(), min_size=2, max_size=2), seed=st.integers(0, 2**32 - 1))
def test_adamw_matches_torch_float64(backend_name, hypers, seed):
    _run_against_torch(AdamW, torch.optim.AdamW, hypers, hypers, seed, np.float64, 1e-12, 1e-12)


@given(hypers=st.lists(sgd_hypers(), min_size=2, max_size=2), seed=st.integers(0, 2**32 - 1))
def test_sgd_matches_torch_float32(backend_name, hypers, seed):
    _run_against_torch(SGD, torch.optim.SGD, hypers, hypers, seed, np.float32, 2e-6, 2e-6)


@given(hypers=st.lists(adamw_hypers(), min_size=2, max_size=2), seed=st.integers(0, 2**32 - 1))
def test_adamw_matches_torch_float32(backend_name, hypers, seed):
    _run_against_torch(AdamW, torch.optim.AdamW, hypers, hypers, seed, np.float32, 2e-6, 2e-6)


def test_adamw_defaults_match_torch():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3))
    ours, theirs = nn.Parameter(w.copy()), torch.nn.Parameter(torch.from_numpy(w.copy()))
    opt, ref = AdamW([ours]), torch.optim.AdamW([theirs], foreach=False)
    assert opt.defaults == {k: ref.defaults[k] for k in opt.defaults}
    for _ in range(3):
        g = rng.standard_normal(w.shape)
        ours.grad, theirs.grad = mi.tensor(g), torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-13, atol=1e-13)


def test_zero_grad_and_step_details():
    p = nn.Parameter(np.ones((2, 2), np.float32))
    q = nn.Parameter(np.ones(3, np.float32))
    opt = SGD([p, q], lr=0.5)
    p.grad = mi.tensor(np.full((2, 2), 2.0, np.float32))
    opt.step()  # q has no gradient: skipped
    np.testing.assert_array_equal(p.numpy(), np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(q.numpy(), np.ones(3, np.float32))
    p.grad = mi.tensor(np.ones((2, 2), np.float64))  # another dtype: used as p's dtype
    opt.step()
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p.numpy(), np.full((2, 2), -0.5, np.float32))
    opt.zero_grad()
    assert p.grad is None and q.grad is None
    q.grad = mi.tensor(np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"gradient has shape \(4,\).*\(3,\)"):
        opt.step()


def test_adamw_trains_a_linear_regression():
    """End to end with the autograd engine: AdamW plus the schedule fit y = x @ w_true."""
    rng = np.random.default_rng(1)
    x = mi.tensor(rng.standard_normal((64, 3)).astype(np.float32))
    y = x @ mi.tensor(np.array([[1.0], [-2.0], [0.5]], np.float32))
    model = nn.Linear(3, 1)
    opt = AdamW(param_groups_weight_decay(model, 1e-4), lr=0.1)
    schedule = WarmupCosine(opt, 200, warmup_steps=10, min_lr=1e-3)
    for _ in range(200):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        schedule.step()
    assert loss.item() < 1e-3
    assert model.weight.dtype == np.float32


# =============================================================================================
# State dicts
# =============================================================================================
def _is_plain(value):
    if isinstance(value, dict):
        return all(isinstance(k, (int, str)) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return isinstance(value, (np.ndarray, int, float, bool, str))


def _through_a_file(sd):
    """Write the state dict as an .npz of its arrays plus JSON for the rest, and read it
    back (dict keys come back as strings, as from a checkpoint)."""
    arrays = {}

    def strip(node, path):
        if isinstance(node, np.ndarray):
            arrays[path] = node
            return {"__array__": path}
        if isinstance(node, dict):
            return {str(k): strip(v, f"{path}/{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v, f"{path}/{i}") for i, v in enumerate(node)]
        return node

    meta = json.dumps(strip(sd, "s"))
    buffer = io.BytesIO()
    np.savez(buffer, **{k.replace("/", "|"): v for k, v in arrays.items()})
    buffer.seek(0)
    with np.load(buffer) as f:
        loaded = {k.replace("|", "/"): f[k] for k in f.files}

    def fill(node):
        if isinstance(node, dict):
            if set(node) == {"__array__"}:
                return loaded[node["__array__"]]
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    return fill(json.loads(meta))


OPTIMIZERS = {
    "adamw": (AdamW, [dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                      dict(lr=0.003, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)]),
    "sgd": (SGD, [dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.01),
                  dict(lr=0.05, momentum=0.5, dampening=0.3, nesterov=False, weight_decay=0.0)]),
}


def _fresh(params):
    return [[nn.Parameter(p.data.copy()) for p in group] for group in params]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("via_file", [False, True])
def test_state_dict_round_trip_mid_run_is_exact(backend_name, name, via_file):
    cls, hypers = OPTIMIZERS[name]
    rng = np.random.default_rng(3)
    params, _ = _make_params(rng, np.float32)
    plan = _grad_plan(rng, 6, np.float32)
    straight = _fresh(params)
    opt_straight = cls(_groups(straight, hypers), **hypers[0])
    for grads in plan:
        _set_grads(_flat(straight), grads)
        opt_straight.step()

    first = _fresh(params)
    opt = cls(_groups(first, hypers), **hypers[0])
    for grads in plan[:3]:
        _set_grads(_flat(first), grads)
        opt.step()
    sd = opt.state_dict()
    assert _is_plain(sd), sd
    assert sorted(sd) == ["param_groups", "state"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1, 2], [3, 4]]
    assert 2 not in sd["state"]  # never had a gradient
    if via_file:
        sd = _through_a_file(sd)
    second = _fresh(first)
    opt2 = cls(_groups(second, [dict(h, lr=123.0) for h in hypers]), **hypers[0])
    opt2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == [h["lr"] for h in hypers]
    for grads in plan[3:]:
        _set_grads(_flat(second), grads)
        opt2.step()
    for p, q in zip(_flat(second), _flat(straight)):
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # The loaded state is a copy: changing the state dict afterwards changes nothing.
    for entry in sd["state"].values():
        for v in entry.values():
            if isinstance(v, np.ndarray):
                v[...] = 7.0
    _assert_same_state(opt2.state_dict(), opt_straight.state_dict())


def _assert_same_state(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert sorted(a["state"]) == sorted(b["state"])
    for i, entry in a["state"].items():
        assert sorted(entry) == sorted(b["state"][i])
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                assert isinstance(b["state"][i][k], np.ndarray)
                np.testing.assert_array_equal(v, b["state"][i][k])
            else:
                assert v == b["state"][i][k]


def _stepped_adamw(params, hypers):
    opt = AdamW(_groups(params, hypers), **hypers[0])
    rng = np.random.default_rng(5)
    for grads in _grad_plan(rng, 2, np.float32):
        _set_grads(_flat(params), grads)
        opt.step()
    return opt


def test_load_state_dict_refuses_what_does_not_fit():
    _, hypers = OPTIMIZERS["adamw"]
    params, _ = _make_params(np.random.default_rng(4), np.float32)
    target = _stepped_adamw(params, hypers)
    before = target.state_dict()
    source_params, _ = _make_params(np.random.default_rng(6), np.float32)
    good = _stepped_adamw(source_params, hypers).state_dict()

    def refused(sd, match):
        with pytest.raises(ValueError, match=match):
            target.load_state_dict(sd)
        _assert_same_state(target.state_dict(), before)

    # Another number of groups.
    one_group = AdamW(_flat(_fresh(params)), lr=0.1)
    refused(one_group.state_dict(), r"1 parameter groups but the optimiser has 2")
    # Another number of parameters in a group.
    sd = _through_a_file(good)
    sd["param_groups"][1]["params"] = [3]
    refused(sd, r"group 1 has 1 parameters in the state dict but 2 in the optimiser")
    # A state array of the wrong shape.
    sd = _through_a_file(good)
    sd["state"]["0"]["exp_avg_sq"] = np.zeros((4, 3), np.float32)
    refused(sd, r"parameter 0 .*exp_avg_sq has shape \(4, 3\) in the state dict but the "
                r"parameter has shape \(3, 4\)")
    # Another optimiser's state.
    sgd = SGD(_flat(_fresh(params)), lr=0.1, momentum=0.9)
    for p in sgd.param_groups[0]["params"]:
        p.grad = mi.tensor(np.ones(p.shape, np.float32))
    sgd.step()
    sd = sgd.state_dict()
    sd["param_groups"] = good["param_groups"]
    refused(sd, r"has entries \['momentum_buffer'\], AdamW expects")
    # An invalid hyper-parameter.
    sd = _through_a_file(good)
    sd["param_groups"][0]["betas"] = [0.9, 1.5]
    refused(sd, r"group 0: invalid beta parameter at index 1")
    # A state entry for a parameter that does not exist.
    sd = _through_a_file(good)
    sd["state"]["9"] = sd["state"]["0"]
    refused(sd, r"parameter 9 belongs to no parameter")
    # The same state dict, unchanged, still loads.
    target.load_state_dict(_through_a_file(good))
    _assert_same_state(target.state_dict(), good)


# =============================================================================================
# Argument checking
# =============================================================================================
def _p(*shape):
    return nn.Parameter(np.zeros(shape, np.float32))


@pytest.mark.parametrize("make, error, match", [
    (lambda: SGD([_p(2)], lr=-0.1), ValueError, "invalid learning rate"),
    (lambda: AdamW([_p(2)], lr=float("nan")), ValueError, "invalid learning rate"),
    (lambda: AdamW([_p(2)], betas=(1.0, 0.9)), ValueError, "beta parameter at index 0"),
    (lambda: AdamW([_p(2)], betas=(0.9, -0.1)), ValueError, "beta parameter at index 1"),
    (lambda: AdamW([_p(2)], eps=0.0), ValueError, "invalid eps"),
    (lambda: AdamW([_p(2)], weight_decay=-1e-4), ValueError, "invalid weight_decay"),
    (lambda: SGD([_p(2)], lr=0.1, weight_decay=-1.0), ValueError, "invalid weight_decay"),
    (lambda: SGD([_p(2)], lr=0.1, momentum=-0.5), ValueError, "invalid momentum"),
    (lambda: SGD([_p(2)], lr=0.1, nesterov=True), ValueError, "Nesterov momentum needs"),
    (lambda: SGD([_p(2)], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "Nesterov momentum needs"),
    (lambda: SGD([{"params": [_p(2)]}, {"params": [_p(2)], "lr": -1.0}], lr=0.1), ValueError,
     "invalid learning rate"),
    (lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda: SGD([{"params": []}], lr=0.1), ValueError, "empty parameter list"),
    (lambda: SGD([np.zeros(2)], lr=0.1), TypeError, "can only optimise Tensors"),
    (lambda: SGD(_p(2), lr=0.1), TypeError, "iterable of Tensors"),
    (lambda: SGD([mi.tensor(np.zeros(2, np.int64))], lr=0.1), TypeError, "floating-point"),
    (lambda: SGD([{"lr": 0.1}], lr=0.1), ValueError, "'params' entry"),
])
def test_invalid_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_parameter_in_two_groups_or_twice_is_refused():
    shared = _p(3)
    with pytest.raises(ValueError, match="already in another parameter group"):
        AdamW([{"params": [shared]}, {"params": [_p(2), shared]}])
    with pytest.raises(ValueError, match="appears twice"):
        AdamW([shared, shared])
    opt = AdamW([shared])
    with pytest.raises(ValueError, match="already in another parameter group"):
        opt.add_param_group({"params": [shared], "lr": 0.1})
    opt.add_param_group({"params": _p(2), "lr": 0.1})  # a single tensor is a group of one
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 0.1]
    assert opt.param_groups[1]["weight_decay"] == 0.01  # the default fills in


# =============================================================================================
# Weight-decay groups
# =============================================================================================
class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(np.zeros((1, 4), np.float32))  # 2-D, but a bias
        self.weight = nn.Parameter(np.zeros((4, 4), np.float32))


class _Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.pos_embed = nn.Parameter(np.zeros((1, 2, 2, 4), np.float32))
        self.layer_scale = nn.Parameter(np.ones(4, np.float32))
        self.custom = _Custom()
        self.table = nn.Parameter(np.zeros((3, 3), np.float32))
        self.frozen = nn.Parameter(np.zeros((2, 2), np.float32), requires_grad=False)
        self.head = nn.Linear(4, 2)


def test_param_groups_weight_decay_sorts_parameters():
    model = _Small()
    groups = param_groups_weight_decay(model, 0.05, skip_list=("table",))
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay, decay = ([names[id(p)] for p in g["params"]] for g in groups)
    # (a module's own parameters come before its children's, as in PyTorch)
    assert no_decay == ["layer_scale", "table", "conv.bias", "bn.weight", "bn.bias",
                        "custom.bias", "head.bias"]
    assert decay == ["pos_embed", "conv.weight", "custom.weight", "head.weight"]
    assert [g["weight_decay"] for g in groups] == [0.0, 0.05]
    opt = AdamW(groups, lr=1e-3, weight_decay=0.5)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.05]
    # Without the skip list, the 2-D table is decayed.
    _, decay = param_groups_weight_decay(model, 0.05)
    assert "table" in [names[id(p)] for p in decay["params"]]
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups_weight_decay(model, -1.0)


# =============================================================================================
# Gradient clipping
# =============================================================================================
@given(seed=st.integers(0, 2**32 - 1), factor=st.floats(0.05, 3.0),
       norm_type=st.sampled_from([2.0, 1.0, 3.0, math.inf]),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_clip_grad_norm_matches_torch(backend_name, seed, factor, norm_type, dtype):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (7,), (2, 1, 3), ()]
    ours, theirs = [], []
    for i, s in enumerate(shapes):
        g = None if i == 1 and seed % 2 else np.asarray(rng.standard_normal(s) * 3, dtype)
        p = nn.Parameter(np.zeros(s, dtype))
        q = torch.nn.Parameter(torch.from_numpy(np.zeros(s, dtype)))
        _set_grads([p, q], [g, g])
        ours.append(p)
        theirs.append(q)
    expected_total = float(torch.nn.utils.clip_grad_norm_(theirs, math.inf, norm_type))
    max_norm = factor * expected_total
    before = [None if p.grad is None else p.grad.numpy().copy() for p in ours]
    total = clip_grad_norm_(ours, max_norm, norm_type)
    reference = float(torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type))
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert isinstance(total, mi.Tensor) and total.shape == () and total.dtype == np.float64
    assert total.backend == mi.get_backend()
    total = float(total)
    assert total == pytest.approx(reference, rel=tol)
    for p, q, b in zip(ours, theirs, before):
        if p.grad is None:
            assert q.grad is None
            continue
        assert p.grad.dtype == dtype
        if max_norm >= total + 1e-6:  # not clipped: exactly as before
            np.testing.assert_array_equal(p.grad.numpy(), b)
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=tol, atol=tol)
    clipped = float(clip_grad_norm_(ours, math.inf, norm_type))
    assert clipped == pytest.approx(total * min(1.0, max_norm / (total + 1e-6)), rel=tol)


def test_clip_grad_norm_edge_cases():
    p = nn.Parameter(np.zeros(3))
    assert float(clip_grad_norm_([p], 1.0)) == 0.0  # no gradients at all
    p.grad = mi.tensor(np.array([3.0, 4.0, 0.0]))
    assert float(clip_grad_norm_(p, 100.0)) == 5.0  # a single tensor; max_norm above the norm
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 4.0, 0.0])
    assert float(clip_grad_norm_(p, 1.0)) == 5.0
    np.testing.assert_allclose(p.grad.numpy(), np.array([3.0, 4.0, 0.0]) / (5.0 + 1e-6))
    # A non-finite total is returned as it is and nothing is scaled.
    for bad in (np.inf, np.nan):
        p.grad = mi.tensor(np.array([bad, 1.0, 2.0]))
        total = float(clip_grad_norm_(p, 1.0))
        assert not math.isfinite(total) and (math.isnan(total) == math.isnan(bad))
        np.testing.assert_array_equal(p.grad.numpy(), [bad, 1.0, 2.0])
    # A gradient left by backward as a read-only broadcast view is clipped correctly too.
    q = nn.Parameter(np.ones((2, 3)))
    (q.mean() * 12.0).backward()
    assert float(clip_grad_norm_([q], 1.0)) == pytest.approx(np.sqrt(6 * 4.0))
    np.testing.assert_allclose(q.grad.numpy(), np.full((2, 3), 2.0 / (np.sqrt(24) + 1e-6)))
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([q], -1.0)


# =============================================================================================
# WarmupCosine
# =============================================================================================
def _formula(t, total, warmup, warmup_lr, min_lr, base):
    if t >= total:
        return min_lr
    if t < warmup:
        return warmup_lr + (base - warmup_lr) * t / warmup
    progress = (t - warmup) / max(1, total - warmup)
    return min_lr + (base - min_lr) * (1.0 + np.cos(np.pi * progress)) / 2.0


def _sgd_two_groups(lrs):
    return SGD([{"params": [_p(2)], "lr": lrs[0]}, {"params": [_p(1)], "lr": lrs[1]}], lr=0.1)


@given(total=st.integers(1, 60), warmup_frac=st.floats(0.0, 1.0),
       base_lrs=st.lists(st.floats(0.0, 2.0, allow_subnormal=False), min_size=2, max_size=2),
       warmup_lr=st.one_of(st.just(0.0), st.floats(0.0, 1e-2, allow_subnormal=False)),
       min_lr=st.one_of(st.just(0.0), st.floats(0.0, 1e-2, allow_subnormal=False)))
def test_warmup_cosine_follows_its_formula(total, warmup_frac, base_lrs, warmup_lr, min_lr):
    warmup = int(round(warmup_frac * total))
    opt = _sgd_two_groups(base_lrs)
    schedule = WarmupCosine(opt, total, warmup_steps=warmup, warmup_lr=warmup_lr, min_lr=min_lr)
    assert schedule.base_lrs == base_lrs
    history = []
    for t in range(total + 4):
        if t:
            schedule.step()
        assert schedule.last_step == t
        expected = [_formula(t, total, warmup, warmup_lr, min_lr, b) for b in base_lrs]
        assert schedule.lr_at(t) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert [g["lr"] for g in opt.param_groups] == schedule.lr_at(t)
        history.append(schedule.lr_at(t))
    for g, base in enumerate(base_lrs):
        lrs = [h[g] for h in history]
        slack = 1e-15 * max(base, warmup_lr, min_lr)  # the rounding of min_lr + (base - min_lr)
        if warmup_lr <= base:  # the warm-up climbs (to base at t = warmup < total) ...
            end = warmup if warmup < total else warmup - 1
            assert all(a <= b + slack for a, b in zip(lrs[:end], lrs[1:end + 1]))
        if min_lr <= base:  # ... then the cosine descends to min_lr at t = total
            assert all(a + slack >= b for a, b in zip(lrs[warmup:total], lrs[warmup + 1:total + 1]))
        assert lrs[total:] == [min_lr] * 4  # the end of the schedule, and after it
        if warmup < total:  # the peak, where the cosine starts
            assert lrs[warmup] == pytest.approx(base, rel=1e-15, abs=slack)
        assert lrs[0] == pytest.approx(warmup_lr if warmup else base, rel=1e-15, abs=slack)


def test_warmup_cosine_edge_cases_and_state():
    opt = _sgd_two_groups([0.4, 0.2])
    only_warmup = WarmupCosine(opt, 4, warmup_steps=4, warmup_lr=0.0, min_lr=0.01)
    assert [only_warmup.lr_at(t)[0] for t in range(6)] == [0.0, 0.1, 0.2, 0.30000000000000004,
                                                          0.01, 0.01]
    one = WarmupCosine(_sgd_two_groups([0.4, 0.2]), 1, min_lr=0.0)
    assert one.lr_at(0) == [0.4, 0.2] and one.lr_at(1) == [0.0, 0.0]
    shared = WarmupCosine(_sgd_two_groups([0.4, 0.2]), 10, base_lr=1.0)
    assert shared.lr_at(0) == [1.0, 1.0]

    schedule = WarmupCosine(_sgd_two_groups([0.4, 0.2]), 20, warmup_steps=5)
    for _ in range(7):
        schedule.step()
    sd = schedule.state_dict()
    assert json.loads(json.dumps(sd)) == sd
    other_opt = _sgd_two_groups([9.0, 9.0])
    other = WarmupCosine(other_opt, 3)
    other.load_state_dict(sd)
    assert other.last_step == 7 and other.base_lrs == [0.4, 0.2]
    assert [g["lr"] for g in other_opt.param_groups] == schedule.lr_at(7)
    for _ in range(20):
        schedule.step()
        other.step()
        assert other.lr_at(other.last_step) == schedule.lr_at(schedule.last_step)
        assert [g["lr"] for g in other_opt.param_groups] == schedule.lr_at(schedule.last_step)
    bad = dict(sd, base_lrs=[0.1])
    with pytest.raises(ValueError, match="1 base learning rates for an optimiser with 2"):
        other.load_state_dict(bad)
    assert other.last_step == 27  # unchanged


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(total_steps=0), ValueError, "total_steps must be >= 1"),
    (dict(total_steps=10, warmup_steps=11), ValueError, r"warmup_steps must be in \[0, "),
    (dict(total_steps=10, warmup_steps=-1), ValueError, r"warmup_steps must be in \[0, "),
    (dict(total_steps=10.0), TypeError, "total_steps must be an integer"),
    (dict(total_steps=10, warmup_lr=-1e-6), ValueError, "warmup_lr must be"),
    (dict(total_steps=10, min_lr=-1.0), ValueError, "min_lr must be"),
    (dict(total_steps=10, base_lr=-1.0), ValueError, r"base_lr\[0\] must be"),
    (dict(total_steps=10, base_lr=[0.1, 0.2, 0.3]), ValueError, "3 base learning rates"),
])
def test_warmup_cosine_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        WarmupCosine(_sgd_two_groups([0.1, 0.1]), **kwargs)


def test_exports():
    import mini_iformer.optim as optim

    assert set(optim.__all__) == {"Optimizer", "SGD", "AdamW", "param_groups_weight_decay",
                                  "clip_grad_norm_", "WarmupCosine"}
    assert issubclass(SGD, Optimizer) and issubclass(AdamW, Optimizer)
