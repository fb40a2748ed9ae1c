"""``mini_iformer.nn``: modules, parameters, state dicts and layers, specified against PyTorch.

* registration: assigning a Parameter, a Module or a buffer to an attribute files it in the
  right place, and reassigning moves it; the mistakes PyTorch refuses are refused too;
* traversal: parameters, buffers, children and modules in PyTorch's order, with dotted names;
* modes and helpers: ``train``/``eval``, ``apply``, ``zero_grad``, ``requires_grad_``,
  ``astype``, forward hooks;
* state: ``state_dict`` has PyTorch's keys, order and shapes for the same structure;
  ``load_state_dict`` reports every problem at once and changes nothing when it fails;
* every layer against its ``torch.nn`` counterpart with the same weights, in float64, forward
  and backward, over drawn shapes and hyper-parameters;
* initialisation and the library's random generator (``mini_iformer.random``).
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer import nn
from mini_iformer import random as mi_random

TOL = 1e-10  # float64 against float64: only summation order differs


@pytest.fixture(autouse=True)
def _restore_default_generator():
    """Tests re-seed the library's generator; leave it as it was for the tests after them."""
    state = mi_random.get_state()
    yield
    mi_random.set_state(state)


# =============================================================================================
# Helpers
# =============================================================================================
def _np(t):
    """Host NumPy values of one of our tensors or of a torch tensor."""
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return t.numpy()


def _close(ours, theirs, tol=TOL):
    a, b = _np(ours), _np(theirs)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _randomize(module, rng):
    """New random values for every float entry of the state dict (variances positive)."""
    new = {}
    for key, t in module.state_dict().items():
        if t.dtype.kind != "f":
            new[key] = t.numpy()
        elif key.endswith("running_var"):
            new[key] = rng.uniform(0.5, 2.0, t.shape)
        else:
            new[key] = rng.standard_normal(t.shape)
    module.load_state_dict(new)
    return module


def _twins(ours, theirs, seed=0):
    """``ours`` with random weights in float64, and ``theirs`` holding the same values."""
    _randomize(ours, np.random.default_rng(seed)).astype(np.float64)
    theirs = theirs.double()
    theirs.load_state_dict({k: torch.from_numpy(_np(v).copy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def _forward_backward(ours, theirs, x_np, seed=0, tol=TOL):
    """Same input, same output gradient: outputs, input gradients and parameter gradients agree."""
    x = mi.tensor(x_np, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    y, ty = ours(x), theirs(tx)
    assert y.dtype == np.float64
    _close(y, ty, tol)
    g = np.random.default_rng(seed + 1).standard_normal(tuple(ty.shape))
    y.backward(mi.tensor(g))
    ty.backward(torch.from_numpy(g))
    _close(x.grad, tx.grad, tol)
    ours_p, theirs_p = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert list(ours_p) == list(theirs_p)
    for name, p in ours_p.items():
        assert p.grad is not None, name
        _close(p.grad, theirs_p[name].grad, tol)


def _snapshot(module):
    """Everything a load could change: which array each entry holds, and its bytes."""
    return [(name, id(t.data), t.dtype, t.shape, t.numpy().tobytes())
            for name, t in [*module.named_parameters(), *module.named_buffers()]]


class Net(nn.Module):
    """A small network touching every kind of registration."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                  nn.GELU())
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 4, bias=False)])
        self.norm = nn.LayerNorm(4)
        self.register_buffer("scale", np.full(4, 0.5, np.float32))
        self.register_buffer("cache", np.zeros(2, np.float32), persistent=False)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.stem(x).mean(axis=(2, 3))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h) * self.scale)


class TorchNet(torch.nn.Module):
    """``Net`` written with torch.nn."""

    def __init__(self):
        super().__init__()
        T = torch.nn
        self.stem = T.Sequential(T.Conv2d(3, 8, 3, stride=2, padding=1), T.BatchNorm2d(8), T.GELU())
        self.blocks = T.ModuleList([T.Linear(8, 8), T.Linear(8, 4, bias=False)])
        self.norm = T.LayerNorm(4)
        self.register_buffer("scale", torch.full((4,), 0.5))
        self.register_buffer("cache", torch.zeros(2), persistent=False)
        self.head = T.Linear(4, 3)

    def forward(self, x):
        h = self.stem(x).mean(dim=(2, 3))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h) * self.scale)


# =============================================================================================
# Registration by attribute
# =============================================================================================
def test_attributes_are_filed_by_type():
    m = nn.Module()
    m.w = nn.Parameter(np.ones(3, np.float32))
    m.child = nn.Linear(2, 2)
    m.register_buffer("stat", np.zeros(3, np.float32))
    m.register_buffer("scratch", np.zeros(1, np.float32), persistent=False)
    m.note = "plain"
    m.array = np.zeros(2)  # a plain array is a plain attribute, not a buffer
    assert list(m._parameters) == ["w"]
    assert list(m._modules) == ["child"]
    assert list(m._buffers) == ["stat", "scratch"]
    assert m.note == "plain" and "note" in m.__dict__ and "array" in m.__dict__
    assert m.w.requires_grad and isinstance(m.stat, mi.Tensor) and not m.stat.requires_grad
    assert [n for n, _ in m.named_buffers()] == ["stat", "scratch"]
    assert list(m.state_dict()) == ["w", "stat", "child.weight", "child.bias"]


def test_assigning_to_a_buffer_keeps_it_a_buffer():
    m = nn.Module()
    m.register_buffer("stat", np.zeros(3, np.float32))
    m.stat = np.arange(3.0)
    assert isinstance(m.stat, mi.Tensor) and "stat" in m._buffers
    np.testing.assert_array_equal(m.state_dict()["stat"].numpy(), [0.0, 1.0, 2.0])
    m.stat = None  # declared but empty: kept out of the state dict, like PyTorch
    assert m.stat is None and "stat" in m._buffers
    assert list(m.state_dict()) == [] and list(m.named_buffers()) == []


def test_a_buffer_given_a_tensor_that_requires_grad_is_detached():
    m = nn.Module()
    m.register_buffer("stat", mi.tensor(np.ones(2), requires_grad=True))
    assert not m.stat.requires_grad


def test_reassigning_moves_between_parameter_child_and_buffer():
    m = nn.Module()
    m.x = nn.Parameter(np.ones(2, np.float32))
    m.x = nn.Linear(2, 3)  # Parameter -> Module: moved
    assert "x" not in m._parameters and m._modules["x"] is m.x
    assert [n for n, _ in m.named_parameters()] == ["x.weight", "x.bias"]
    m.x = nn.Parameter(np.zeros(1, np.float32))  # Module -> Parameter: moved back
    assert "x" not in m._modules and list(m.children()) == []
    assert [n for n, _ in m.named_parameters()] == ["x"]

    m.y = 3  # plain -> Parameter
    m.y = nn.Parameter(np.ones(1, np.float32))
    assert "y" not in m.__dict__ and isinstance(m.y, nn.Parameter)

    m.register_buffer("z", np.zeros(2, np.float32), persistent=False)
    m.z = nn.Parameter(np.ones(2, np.float32))  # buffer -> Parameter
    assert "z" not in m._buffers and "z" not in m._non_persistent
    assert list(m.state_dict()) == ["x", "y", "z"]


def test_replacing_a_parameter_or_child_keeps_its_place_like_torch():
    ours, theirs = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    ours.weight = nn.Parameter(np.zeros((2, 2), np.float32))
    theirs.weight = torch.nn.Parameter(torch.zeros(2, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]

    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.p, self.q = nn.Linear(1, 1), nn.Linear(1, 1)
            self.p = nn.Identity()

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p, self.q = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
            self.p = torch.nn.Identity()

    assert [n for n, _ in Ours().named_modules()] == [n for n, _ in Theirs().named_modules()] \
        == ["", "p", "q"]


@pytest.mark.parametrize("value", [mi.ones(2, 2), np.ones((2, 2), np.float32), 1.0, "w"],
                         ids=["Tensor", "ndarray", "float", "str"])
def test_a_parameter_slot_takes_only_a_parameter_or_none(value):
    m = nn.Linear(2, 2)
    weight = m.weight
    with pytest.raises(TypeError, match=r"'weight'.*Parameter"):
        m.weight = value
    assert m.weight is weight
    m.weight = None  # allowed: an absent parameter, kept out of parameters and state
    assert m.weight is None and [n for n, _ in m.named_parameters()] == ["bias"]
    assert list(m.state_dict()) == ["bias"]


def test_a_child_slot_takes_only_a_module_or_none():
    seq = nn.Sequential(nn.Identity())
    seq.head = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"'head'.*Module"):
        seq.head = np.ones(2)
    seq.head = None
    assert seq.head is None and [n for n, _ in seq.named_modules()] == ["", "0"]


def test_forgetting_super_init_is_a_clear_attribute_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1, np.float32))

    with pytest.raises(AttributeError, match=re.escape("Broken: call super().__init__()")):
        Broken()


def test_delattr_removes_from_every_store():
    m = nn.Linear(2, 2)
    m.register_buffer("scratch", np.zeros(1, np.float32), persistent=False)
    m.note = 1
    del m.weight
    assert "weight" not in m._parameters and not hasattr(m, "weight")
    assert [n for n, _ in m.named_parameters()] == ["bias"]
    m.weight = 5  # the slot is gone: now a plain attribute
    assert m.__dict__["weight"] == 5 and list(m.state_dict()) == ["bias"]
    del m.scratch
    assert "scratch" not in m._buffers and "scratch" not in m._non_persistent
    del m.note
    assert not hasattr(m, "note")
    with pytest.raises(AttributeError):
        del m.nothing


def test_missing_attribute_error_names_it():
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'wieght'"):
        nn.Linear(2, 2).wieght  # noqa: B018


def test_register_helpers_refuse_bad_names_and_values():
    m = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="buffer name"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(ValueError, match="buffer name"):
        m.register_buffer("", np.zeros(1))
    with pytest.raises(KeyError, match="weight"):
        m.register_buffer("weight", np.zeros(1))
    with pytest.raises(TypeError, match="'p'.*Parameter"):
        m.register_parameter("p", mi.ones(1))
    with pytest.raises(TypeError, match="'c'.*Module"):
        m.add_module("c", np.ones(1))
    m.register_parameter("extra", None)
    assert m.extra is None and [n for n, _ in m.named_parameters()] == ["weight", "bias"]


# =============================================================================================
# Traversal
# =============================================================================================
def test_parameters_in_registration_order_shared_once():
    m = nn.Module()
    m.b = nn.Parameter(np.ones(2, np.float32))
    m.a = nn.Parameter(np.ones(3, np.float32))
    m.first = nn.Linear(3, 2)
    m.second = nn.Linear(3, 2)
    m.second.weight = m.first.weight  # tied: listed and counted once, under its first name
    names = [n for n, _ in m.named_parameters()]
    assert names == ["b", "a", "first.weight", "first.bias", "second.bias"]
    assert [id(p) for p in m.parameters()] == [id(p) for _, p in m.named_parameters()]
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["b", "a"]
    assert m.num_parameters() == 2 + 3 + 6 + 2 + 2
    # the state dict, like PyTorch's, keeps the tied weight under both names
    assert list(m.state_dict()) == ["b", "a", "first.weight", "first.bias", "second.weight",
                                    "second.bias"]


def test_shared_child_is_listed_once_but_saved_under_each_name_like_torch():
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.a = nn.Linear(2, 2)
    ours.b = ours.a
    theirs.a = torch.nn.Linear(2, 2)
    theirs.b = theirs.a
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    sd = {k: np.full(v.shape, i, np.float32) for i, (k, v) in enumerate(ours.state_dict().items())}
    ours.load_state_dict(sd)  # both names are expected; the later one wins, as in PyTorch
    np.testing.assert_array_equal(ours.a.weight.numpy(), sd["b.weight"])


def test_modules_pre_order_with_dotted_names():
    inner = nn.Sequential(nn.Linear(2, 2), nn.GELU())
    m = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ModuleList([inner, nn.Identity()]), nn.LayerNorm(2))
    names = [n for n, _ in m.named_modules()]
    assert names == ["", "0", "1", "1.0", "1.0.0", "1.0.1", "1.1", "2"]
    assert [id(x) for x in m.modules()] == [id(x) for _, x in m.named_modules()]
    assert list(m.modules())[3] is inner
    assert [id(c) for c in m.children()] == [id(m[0]), id(m[1]), id(m[2])]
    assert [n for n, _ in m.named_children()] == ["0", "1", "2"]
    assert [n for n, _ in m.named_modules(prefix="net")][:3] == ["net", "net.0", "net.1"]


def test_named_buffers_recurse_with_dotted_names():
    m = Net()
    assert [n for n, _ in m.named_buffers()] == [
        "scale", "cache", "stem.1.running_mean", "stem.1.running_var",
        "stem.1.num_batches_tracked"]
    assert [n for n, _ in m.named_buffers(recurse=False)] == ["scale", "cache"]
    assert len(list(m.buffers())) == 5


def test_sequential_and_modulelist_containers():
    a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b and list(seq) == [a, b]
    x = mi.tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    np.testing.assert_array_equal(seq(x).numpy(), b(a(x)).numpy())
    ml = nn.ModuleList()
    assert ml.append(a) is ml and ml.append(b) is ml
    assert len(ml) == 2 and ml[1] is b and list(ml) == [a, b]
    assert [n for n, _ in ml.named_children()] == ["0", "1"]


# =============================================================================================
# Modes and helpers
# =============================================================================================
def test_train_and_eval_are_recursive_and_return_self():
    m = Net()
    assert all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    assert m.train() is m and all(x.training for x in m.modules())
    assert m.train(False) is m and not any(x.training for x in m.modules())
    m.stem.train()
    assert not m.training and all(x.training for x in m.stem.modules())


@pytest.mark.parametrize("mode", ["yes", 1, None])
def test_train_mode_must_be_a_bool(mode):
    with pytest.raises(TypeError, match="mode must be a bool"):
        nn.Linear(1, 1).train(mode)


def test_apply_visits_children_before_parent():
    inner = nn.Sequential(nn.GELU(), nn.Identity())
    outer = nn.Sequential(nn.Linear(1, 1), inner)
    seen = []
    assert outer.apply(seen.append) is outer
    assert [id(x) for x in seen] == [id(outer[0]), id(inner[0]), id(inner[1]), id(inner), id(outer)]


def test_zero_grad_forgets_every_gradient():
    m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    m(mi.ones(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_requires_grad_switches_every_parameter():
    m = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    assert m.requires_grad_(False) is m
    assert not any(p.requires_grad for p in m.parameters())
    x = mi.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    m(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in m.parameters())
    m.requires_grad_()
    assert all(p.requires_grad for p in m.parameters())


def test_astype_converts_floats_and_keeps_integer_buffers():
    m = Net()
    params = dict(m.named_parameters())
    m.head.weight.grad = mi.ones(3, 4)
    assert m.astype(np.float64) is m
    for name, p in m.named_parameters():
        assert p is params[name] and p.dtype == np.float64 and p.requires_grad
    assert m.head.weight.grad.dtype == np.float64  # a gradient has its tensor's dtype
    for name, b in m.named_buffers():
        assert b.dtype == (np.int64 if name.endswith("num_batches_tracked") else np.float64), name
    y = m(mi.tensor(np.ones((2, 3, 4, 4))))
    assert y.dtype == np.float64
    with pytest.raises(TypeError, match="floating-point"):
        m.astype(np.int32)


def test_forward_hooks_see_module_inputs_output_and_can_be_removed():
    lin, act = nn.Linear(3, 2), nn.GELU()
    seq = nn.Sequential(lin, act)
    calls = []
    h_lin = lin.register_forward_hook(lambda m, inputs, out: calls.append(("lin", m, inputs, out)))
    h_seq = seq.register_forward_hook(lambda m, inputs, out: calls.append(("seq", m, inputs, out)))
    x = mi.ones(4, 3)
    y = seq(x)
    assert [c[0] for c in calls] == ["lin", "seq"]
    (_, m_lin, in_lin, out_lin), (_, m_seq, in_seq, out_seq) = calls
    assert m_lin is lin and isinstance(in_lin, tuple) and len(in_lin) == 1 and in_lin[0] is x
    assert m_seq is seq and in_seq == (x,) and out_seq is y
    calls.clear()
    np.testing.assert_array_equal(out_lin.numpy(), lin(x).numpy())
    assert [c[0] for c in calls] == ["lin"]  # a child's hook fires when it is called alone
    calls.clear()
    h_lin.remove()
    h_lin.remove()  # a second remove is harmless
    seq(x)
    assert [c[0] for c in calls] == ["seq"]
    h_seq.remove()
    calls.clear()
    seq(x)
    assert calls == []


# =============================================================================================
# state_dict and load_state_dict
# =============================================================================================
def test_structure_matches_torch_key_for_key():
    ours, theirs = Net(), TorchNet()
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert isinstance(ours_sd, OrderedDict)
    assert list(ours_sd) == list(theirs_sd)
    assert [v.shape for v in ours_sd.values()] == [tuple(v.shape) for v in theirs_sd.values()]
    assert [str(v.dtype) for v in ours_sd.values()] == \
        [str(v.dtype).removeprefix("torch.") for v in theirs_sd.values()]
    for a, b in [(ours.named_parameters(), theirs.named_parameters()),
                 (ours.named_buffers(), theirs.named_buffers()),
                 (ours.named_modules(), theirs.named_modules()),
                 (ours.named_children(), theirs.named_children())]:
        assert [n for n, _ in a] == [n for n, _ in b]
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    assert "cache" not in ours_sd  # non-persistent


def test_whole_network_matches_torch_after_loading_its_state():
    ours, theirs = Net().astype(np.float64), TorchNet().double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    _forward_backward(ours, theirs, x)
    for key, value in theirs.state_dict().items():  # running statistics updated alike
        _close(ours.state_dict()[key], value)
    ours.eval(), theirs.eval()
    _forward_backward(ours, theirs, x, seed=5)


def test_state_dict_values_share_memory_with_the_module():
    """The current contract: ``state_dict()`` values are detached tensors that share their
    arrays with the parameters and buffers (copy them before changing them in place)."""
    m = nn.BatchNorm2d(3)
    sd = m.state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for key, value in sd.items():
        owner = getattr(m, key)
        assert isinstance(value, mi.Tensor) and not value.requires_grad and value is not owner
        assert np.shares_memory(value.data, owner.data), key
    m.weight.data[0] = 7.0
    m.train()(mi.tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)))
    assert sd["weight"].numpy()[0] == 7.0
    np.testing.assert_array_equal(sd["running_mean"].numpy(), m.running_mean.numpy())


def test_load_state_dict_round_trip_copies_values():
    mi_random.manual_seed(1)
    source = Net()
    source(mi.tensor(np.ones((2, 3, 4, 4), np.float32)))  # num_batches_tracked becomes 1
    mi_random.manual_seed(2)
    target = Net()
    result = target.load_state_dict(source.state_dict())
    assert result == nn.IncompatibleKeys([], []) and isinstance(result, nn.IncompatibleKeys)
    for (k, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy()), k
        assert not np.shares_memory(a.data, b.data), k
    assert int(target.stem[1].num_batches_tracked.item()) == 1


def test_load_state_dict_accepts_arrays_and_tensors_and_converts_dtype():
    m = nn.BatchNorm2d(2)
    weight = m.weight
    m.load_state_dict({
        "weight": np.array([1.5, 2.5]),                       # float64 array
        "bias": mi.tensor(np.array([0.25, -1.0])),            # float64 Tensor
        "running_mean": np.array([1, 2], np.int32),           # integers
        "running_var": mi.tensor(np.array([3.0, 4.0], np.float32)),
        "num_batches_tracked": np.array(7.0),                 # float into the int64 buffer
    })
    assert m.weight is weight  # loaded in place: references (e.g. an optimiser's) stay valid
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert getattr(m, name).dtype == np.float32, name
    assert m.num_batches_tracked.dtype == np.int64 and int(m.num_batches_tracked.item()) == 7
    np.testing.assert_array_equal(m.weight.numpy(), [1.5, 2.5])
    np.testing.assert_array_equal(m.running_mean.numpy(), [1.0, 2.0])


def test_load_state_dict_reports_every_problem_at_once_and_changes_nothing():
    m = Net()
    before = _snapshot(m)
    sd = {k: v.numpy() + 1 for k, v in m.state_dict().items()}
    del sd["head.bias"], sd["norm.weight"]
    sd["extra.weight"] = np.ones(2)
    sd["blocks.0.weight"] = np.ones((4, 8))
    sd["stem.0.bias"] = np.ones((8, 1))
    with pytest.raises(ValueError) as info:
        m.load_state_dict(sd)
    message = str(info.value)
    for word in ["missing", "head.bias", "norm.weight", "unexpected", "extra.weight",
                 "blocks.0.weight", "(4, 8)", "(8, 8)", "stem.0.bias", "(8, 1)", "(8,)",
                 "nothing was changed"]:
        assert word in message, (word, message)
    assert _snapshot(m) == before


@pytest.mark.parametrize("bad", ["shape", "non-numeric", "unconvertible", "unexpected", "missing"])
def test_a_failed_load_changes_nothing_even_when_only_the_last_key_is_bad(bad):
    m = Net()
    before = _snapshot(m)
    sd = {k: v.numpy() * 2 + 1 for k, v in m.state_dict().items()}
    last = list(sd)[-1]
    assert last == "head.bias"
    if bad == "shape":
        sd[last] = np.ones(4)
    elif bad == "non-numeric":
        sd[last] = np.array(["a", "b", "c"])
    elif bad == "unconvertible":
        sd[last] = [[1.0, 2.0], [3.0]]
    elif bad == "unexpected":
        sd["zzz"] = np.ones(1)
    else:
        del sd[last]
    with pytest.raises(ValueError, match="zzz" if bad == "unexpected" else re.escape(last)):
        m.load_state_dict(sd)
    assert _snapshot(m) == before


@pytest.mark.parametrize("value", [None, "seven", np.array("7"), object()],
                         ids=["None", "str", "str-array", "object"])
def test_a_non_numeric_value_is_reported_by_key(value):
    m = nn.BatchNorm2d(2)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    sd["num_batches_tracked"] = value
    with pytest.raises(ValueError, match="num_batches_tracked") as info:
        m.load_state_dict(sd)
    assert "numeric" in str(info.value) or "not an array" in str(info.value)


def test_strict_false_loads_the_rest_and_returns_the_incompatible_keys():
    m = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    bias_before = m[0].bias.numpy().copy()
    sd = {"0.weight": np.full((3, 2), 2.0), "1.weight": np.full(3, 3.0),
          "1.bias": np.full(3, 4.0), "2.weight": np.ones(1), "stray": np.ones(1)}
    result = m.load_state_dict(sd, strict=False)
    assert isinstance(result, nn.IncompatibleKeys)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["2.weight", "stray"]
    missing, unexpected = result
    assert missing == ["0.bias"]
    np.testing.assert_array_equal(m[0].weight.numpy(), np.full((3, 2), 2.0))
    np.testing.assert_array_equal(m[1].weight.numpy(), np.full(3, 3.0))
    np.testing.assert_array_equal(m[1].bias.numpy(), np.full(3, 4.0))
    np.testing.assert_array_equal(m[0].bias.numpy(), bias_before)
    with pytest.raises(ValueError, match="missing keys: 0.bias"):
        m.load_state_dict(sd)
    sd["0.bias"] = np.ones(5)  # a wrong shape is an error even when not strict
    with pytest.raises(ValueError, match=r"0\.bias: shape \(5,\)"):
        m.load_state_dict(sd, strict=False)


@pytest.mark.parametrize("value", [[("weight", np.ones((1, 1)))], None, "weight"])
def test_load_state_dict_needs_a_mapping(value):
    with pytest.raises(TypeError, match="mapping"):
        nn.Linear(1, 1).load_state_dict(value)


# =============================================================================================
# repr
# =============================================================================================
def test_repr_of_a_nested_model_names_its_children():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.GELU(),
                      nn.ModuleList([nn.Linear(8, 4), nn.LayerNorm(4)]), nn.Identity())
    t = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                            torch.nn.GELU(),
                            torch.nn.ModuleList([torch.nn.Linear(8, 4), torch.nn.LayerNorm(4)]),
                            torch.nn.Identity())
    lines = repr(m).splitlines()
    assert lines[0] == "Sequential(" and lines[-1] == ")"
    expected = [
        "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
        "  (3): ModuleList(",
        "    (0): Linear(in_features=8, out_features=4, bias=True)",
        "  )",
        "  (4): Identity()",
    ]
    torch_lines = repr(t).splitlines()
    for line in expected:
        assert line in lines and line in torch_lines, line
    assert lines[2].startswith("  (1): BatchNorm2d(8, eps=1e-05")
    assert lines[3] == "  (2): GELU()"
    assert lines[6] == "    (1): LayerNorm((4,), eps=1e-05)"
    assert len(lines) == len(torch_lines) == 10
    assert repr(nn.Linear(2, 1, bias=False)) == repr(torch.nn.Linear(2, 1, bias=False))


@pytest.mark.parametrize("args, kwargs", [
    ((4, 6, 1), {}),
    ((4, 4, (3, 1)), dict(stride=2, dilation=(2, 1), groups=2, bias=False)),
    ((2, 2, 5), dict(padding=(2, 0), groups=2)),
])
def test_conv2d_repr_is_torchs(args, kwargs):
    assert repr(nn.Conv2d(*args, **kwargs)) == repr(torch.nn.Conv2d(*args, **kwargs))


# =============================================================================================
# Layers against torch.nn (float64, forward and backward)
# =============================================================================================
def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = kh if kh == kw and draw(st.booleans()) else (kh, kw)
    side = st.integers(1, 2)
    stride = draw(side | st.tuples(side, side))
    padding = draw(st.integers(0, 2) | st.tuples(st.integers(0, 2), st.integers(0, 2)))
    dilation = draw(side | st.tuples(side, side))
    sizes = []
    for k, p, d in zip((kh, kw), _pair(padding), _pair(dilation)):
        low = max(1, d * (k - 1) + 1 - 2 * p)
        sizes.append(draw(st.integers(low, low + 3)))
    n = draw(st.integers(1, 2))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  bias=draw(st.booleans()))
    return (c_in, c_out, kernel), kwargs, (n, c_in, *sizes)


@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(backend_name, case, seed):
    args, kwargs, x_shape = case
    ours, theirs = _twins(nn.Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs), seed)
    assert ours.weight.shape == tuple(theirs.weight.shape)
    _forward_backward(ours, theirs, np.random.default_rng(seed).standard_normal(x_shape), seed)


@given(lead=st.lists(st.integers(1, 3), max_size=2), n_in=st.integers(1, 5),
       n_out=st.integers(1, 5), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_matches_torch(backend_name, lead, n_in, n_out, bias, seed):
    ours, theirs = _twins(nn.Linear(n_in, n_out, bias), torch.nn.Linear(n_in, n_out, bias), seed)
    assert ours.weight.shape == (n_out, n_in)
    x = np.random.default_rng(seed).standard_normal((*lead, n_in))
    _forward_backward(ours, theirs, x, seed)


@given(norm=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       lead=st.lists(st.integers(1, 3), min_size=1, max_size=2), as_int=st.booleans(),
       affine=st.booleans(), eps=st.sampled_from([1e-5, 1e-6, 0.1]), seed=st.integers(0, 2**16))
def test_layer_norm_matches_torch(backend_name, norm, lead, as_int, affine, eps, seed):
    shape = norm[0] if as_int and len(norm) == 1 else tuple(norm)
    ours, theirs = _twins(nn.LayerNorm(shape, eps=eps, elementwise_affine=affine),
                          torch.nn.LayerNorm(shape, eps=eps, elementwise_affine=affine), seed)
    assert ours.normalized_shape == tuple(norm)
    x = np.random.default_rng(seed).standard_normal((*lead, *norm)) * 3 + 1
    _forward_backward(ours, theirs, x, seed, tol=1e-9)


@settings(max_examples=50)
@given(c=st.integers(1, 4), n=st.integers(1, 3), h=st.integers(1, 3), w=st.integers(1, 3),
       affine=st.booleans(), momentum=st.sampled_from([0.1, 0.3, 1.0]),
       eps=st.sampled_from([1e-5, 1e-3]), seed=st.integers(0, 2**16))
def test_batch_norm_matches_torch_in_training_then_evaluation(backend_name, c, n, h, w, affine,
                                                              momentum, eps, seed):
    if n * h * w == 1:
        n = 2  # training needs more than one value per channel
    ours, theirs = _twins(nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine),
                          torch.nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine), seed)
    rng = np.random.default_rng(seed)
    for step in range(1, 3):  # two training steps: statistics updated exactly like torch's
        _forward_backward(ours, theirs, rng.standard_normal((n, c, h, w)) * 2 + 1, seed + step,
                          tol=1e-9)
        for key in ("running_mean", "running_var"):
            _close(getattr(ours, key), getattr(theirs, key))
        assert ours.num_batches_tracked.dtype == np.int64
        assert int(ours.num_batches_tracked.item()) == theirs.num_batches_tracked.item() == step
        ours.zero_grad(), theirs.zero_grad()
    ours.eval(), theirs.eval()
    stats = [getattr(ours, k).numpy().copy() for k in ("running_mean", "running_var")]
    _forward_backward(ours, theirs, rng.standard_normal((n, c, h, w)), seed + 3, tol=1e-9)
    for key, before in zip(("running_mean", "running_var"), stats):  # evaluation only reads
        np.testing.assert_array_equal(getattr(ours, key).numpy(), before)
    assert int(ours.num_batches_tracked.item()) == 2


def test_batch_norm_refuses_input_of_the_wrong_shape():
    with pytest.raises(ValueError, match=re.escape("(N, 3, H, W), got shape (2, 4, 5, 5)")):
        nn.BatchNorm2d(3)(mi.ones(2, 4, 5, 5))
    with pytest.raises(ValueError, match=re.escape("got shape (2, 3)")):
        nn.BatchNorm2d(3)(mi.ones(2, 3))


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       approximate=st.sampled_from(["none", "tanh"]), training=st.booleans(),
       seed=st.integers(0, 2**16))
def test_gelu_matches_torch(backend_name, shape, approximate, training, seed):
    ours, theirs = nn.GELU(approximate).train(training), torch.nn.GELU(approximate)
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    _forward_backward(ours, theirs, x, seed)


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.none() | st.integers(1, 3) | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    sizes = [draw(st.integers(max(1, k - 2 * p), max(1, k - 2 * p) + 3))
             for k, p in zip(kernel, padding)]
    if kernel[0] == kernel[1] and padding[0] == padding[1] and draw(st.booleans()):
        kernel, padding = kernel[0], padding[0]
    return kernel, stride, padding, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes)


@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_max_pool2d_matches_torch(backend_name, case, seed):
    kernel, stride, padding, x_shape = case
    ours = nn.MaxPool2d(kernel, stride, padding)
    theirs = torch.nn.MaxPool2d(kernel, stride, padding)
    _forward_backward(ours, theirs, np.random.default_rng(seed).standard_normal(x_shape), seed)


@given(case=pool_cases(), include=st.booleans(), seed=st.integers(0, 2**16))
def test_avg_pool2d_matches_torch(backend_name, case, include, seed):
    kernel, stride, padding, x_shape = case
    ours = nn.AvgPool2d(kernel, stride, padding, count_include_pad=include)
    theirs = torch.nn.AvgPool2d(kernel, stride, padding, count_include_pad=include)
    _forward_backward(ours, theirs, np.random.default_rng(seed).standard_normal(x_shape), seed)


@given(x_shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4),
                         st.integers(1, 4)), seed=st.integers(0, 2**16))
def test_upsample_nearest_by_two_matches_torch(backend_name, x_shape, seed):
    ours, theirs = nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)
    _forward_backward(ours, theirs, np.random.default_rng(seed).standard_normal(x_shape), seed)


@given(x_shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5),
                         st.integers(1, 5)),
       size=st.tuples(st.integers(1, 7), st.integers(1, 7)), square=st.booleans(),
       align_corners=st.booleans(), seed=st.integers(0, 2**16))
def test_upsample_bilinear_to_a_size_matches_torch(backend_name, x_shape, size, square,
                                                   align_corners, seed):
    size = size[0] if square else size
    ours = nn.Upsample(size=size, mode="bilinear", align_corners=align_corners)
    theirs = torch.nn.Upsample(size=size, mode="bilinear", align_corners=align_corners)
    _forward_backward(ours, theirs, np.random.default_rng(seed).standard_normal(x_shape), seed)


def test_identity_returns_its_input_and_ignores_arguments():
    x = mi.ones(2, 3)
    layer = nn.Identity(54, unused="x")
    assert layer(x) is x and list(layer.parameters()) == []


# =============================================================================================
# Dropout and DropPath
# =============================================================================================
@pytest.mark.parametrize("layer", [nn.Dropout, nn.DropPath])
@given(p=st.floats(0.0, 1.0), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_random_layers_are_the_identity_in_evaluation(layer, p, shape):
    x = mi.tensor(np.random.default_rng(0).standard_normal(shape))
    state = mi_random.get_state()
    np.testing.assert_array_equal(layer(p).eval()(x).numpy(), x.numpy())
    assert mi_random.get_state() == state  # nothing drawn


@pytest.mark.parametrize("layer", [nn.Dropout, nn.DropPath])
def test_random_layers_at_zero_are_the_identity_in_training(layer):
    x = mi.tensor(np.random.default_rng(0).standard_normal((4, 5)))
    np.testing.assert_array_equal(layer(0.0).train()(x).numpy(), x.numpy())


@settings(max_examples=30)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_dropout_zeroes_elements_and_scales_survivors(p, seed):
    mi_random.manual_seed(seed)
    x = mi.tensor(np.random.default_rng(1).uniform(1.0, 2.0, (8, 64)), requires_grad=True)
    y = nn.Dropout(p)(x)
    kept = y.numpy() != 0
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / (1 - p), rtol=1e-12)
    y.backward(mi.ones_like(y, dtype=np.float64))
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / (1 - p), 0.0), rtol=1e-12)


@settings(max_examples=30)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_drop_path_drops_whole_samples(p, seed):
    mi_random.manual_seed(seed)
    x = mi.tensor(np.random.default_rng(1).uniform(1.0, 2.0, (64, 3, 2, 2)), requires_grad=True)
    y = nn.DropPath(p)(x)
    kept = (y.numpy() != 0).reshape(64, -1)
    assert (kept.all(axis=1) | ~kept.any(axis=1)).all()  # a sample is kept or dropped whole
    kept = kept.all(axis=1)
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / (1 - p), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy()[kept], 1 / (1 - p), rtol=1e-12)
    np.testing.assert_array_equal(x.grad.numpy()[~kept], 0.0)


@pytest.mark.parametrize("layer, fn", [(nn.Dropout, F.dropout), (nn.DropPath, F.drop_path)])
def test_random_layers_are_reproducible_from_manual_seed(layer, fn):
    x = mi.ones(16, 8)
    drop = layer(0.5)
    mi_random.manual_seed(3)
    a = drop(x).numpy()
    mi_random.manual_seed(3)
    b = drop(x).numpy()
    mi_random.manual_seed(4)
    c = drop(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0 < (a == 0).sum() < a.size
    # the mask is the one the functional form draws from the same generator
    expected = fn(x, 0.5, True, generator=np.random.default_rng(3)).numpy()
    np.testing.assert_array_equal(a, expected)


@pytest.mark.parametrize("layer, fn", [(nn.Dropout, F.dropout), (nn.DropPath, F.drop_path)])
def test_random_layers_honour_their_generator_attribute(layer, fn):
    x = mi.ones(16, 8)
    drop = layer(0.5)
    assert drop.generator is None
    drop.generator = np.random.default_rng(11)
    state = mi_random.get_state()
    a = drop(x).numpy()
    assert mi_random.get_state() == state  # the default generator was not used
    np.testing.assert_array_equal(a, fn(x, 0.5, True, generator=np.random.default_rng(11)).numpy())
    assert not np.array_equal(drop(x).numpy(), a)  # the generator moves on


def test_get_state_set_state_round_trip_reproduces_a_dropout_mask():
    x = mi.ones(32, 8)
    drop = nn.Dropout(0.5)
    drop(x)  # wherever the generator happens to be
    state = mi_random.get_state()
    assert isinstance(state, dict)
    first, second = drop(x).numpy(), drop(x).numpy()
    mi_random.set_state(state)
    np.testing.assert_array_equal(drop(x).numpy(), first)
    np.testing.assert_array_equal(drop(x).numpy(), second)
    assert not np.array_equal(first, second)


def test_random_module_refuses_bad_seeds_and_states():
    for seed in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="seed"):
            mi_random.manual_seed(seed)
    with pytest.raises(ValueError, match="set_state"):
        mi_random.set_state({"bit_generator": "nope"})
    gen = mi_random.manual_seed(5)
    assert gen is mi_random.default_generator()


# =============================================================================================
# Initialisation
# =============================================================================================
@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(16, 4000), 16),
    (lambda: nn.Conv2d(8, 2000, 3), 8 * 9),
    (lambda: nn.Conv2d(8, 2000, (1, 3), groups=4), 2 * 3),
])
def test_linear_and_conv_default_init_is_uniform_within_one_over_sqrt_fan_in(make, fan_in):
    mi_random.manual_seed(0)
    layer = make()
    bound = 1 / np.sqrt(fan_in)
    for name, p in layer.named_parameters():
        v = p.numpy().ravel()
        assert p.dtype == np.float32, name
        assert np.abs(v).max() <= np.float32(bound), name
        assert v.min() < -0.95 * bound and v.max() > 0.95 * bound, name  # the spread is used
        assert abs(v.mean()) < 0.1 * bound, name
        if name == "weight":  # uniform: std = bound / sqrt(3)
            assert abs(v.std() / (bound / np.sqrt(3)) - 1) < 0.02


def test_norm_layers_start_at_one_and_zero():
    ln, bn = nn.LayerNorm((2, 3)), nn.BatchNorm2d(4)
    for layer in (ln, bn):
        np.testing.assert_array_equal(layer.weight.numpy(), 1.0)
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
        assert layer.weight.dtype == layer.bias.dtype == np.float32
    assert ln.weight.shape == (2, 3)
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0.0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1.0)
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.dtype == np.int64
    assert int(bn.num_batches_tracked.item()) == 0
    no_affine = nn.LayerNorm(3, elementwise_affine=False)
    assert no_affine.weight is None and no_affine.bias is None and no_affine.num_parameters() == 0


def test_manual_seed_makes_construction_reproducible():
    def build():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 5))

    mi_random.manual_seed(42)
    a = build()
    mi_random.manual_seed(42)
    b = build()
    mi_random.manual_seed(43)
    c = build()
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(),
                               c.state_dict().values()):
        assert np.array_equal(va.numpy(), vb.numpy()), k
        assert not np.array_equal(va.numpy(), vc.numpy()), k


def test_trunc_normal_matches_its_std_with_wide_bounds():
    t = mi.zeros(200_000)
    mi_random.manual_seed(0)
    assert nn.init.trunc_normal_(t, std=0.02) is t
    v = t.numpy()
    assert t.dtype == np.float32 and t.shape == (200_000,)
    assert v.min() >= -2 and v.max() <= 2
    assert abs(v.std() / 0.02 - 1) < 0.02 and abs(v.mean()) < 0.001


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, -2.0, 2.0), (0.5, 1.0, 0.0, 1.5),
                                             (0.0, 1.0, 1.0, 3.0)])
def test_trunc_normal_respects_bounds_and_is_the_truncated_normal(mean, std, a, b):
    t = mi.zeros(400, 500, dtype=np.float64)
    nn.init.trunc_normal_(t, mean, std, a, b, generator=np.random.default_rng(0))
    v = t.numpy()
    assert t.shape == (400, 500) and t.dtype == np.float64
    assert v.min() >= a and v.max() <= b
    assert v.min() < a + 0.01 and v.max() > b - 0.01
    ref = scipy.stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert abs(v.mean() - ref.mean()) < 0.01 and abs(v.std() / ref.std() - 1) < 0.01
    again = mi.zeros(400, 500, dtype=np.float64)
    nn.init.trunc_normal_(again, mean, std, a, b, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(again.numpy(), v)


def test_trunc_normal_far_in_a_tail_still_respects_the_bounds():
    t = mi.zeros(100, dtype=np.float64)
    nn.init.trunc_normal_(t, 0.0, 1.0, 40.0, 41.0, generator=np.random.default_rng(0))
    assert (t.numpy() >= 40.0).all() and (t.numpy() <= 41.0).all()


@pytest.mark.parametrize("make, words", [
    (lambda: nn.Linear(-1, 3), ["in_features", "-1"]),
    (lambda: nn.Linear(3, 0), ["out_features", "0"]),
    (lambda: nn.Linear(2.5, 3), ["in_features", "2.5"]),
    (lambda: nn.Conv2d(-2, 4, 3), ["in_channels", "-2"]),
    (lambda: nn.Conv2d(4, 0, 3), ["out_channels", "0"]),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ["groups=4", "out_channels=6"]),
    (lambda: nn.Conv2d(6, 4, 3, groups=4), ["groups=4", "in_channels=6"]),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), ["groups", "0"]),
    (lambda: nn.LayerNorm(0), ["normalized_shape", "0"]),
    (lambda: nn.LayerNorm((3, -1)), ["normalized_shape", "-1"]),
    (lambda: nn.BatchNorm2d(-1), ["num_features", "-1"]),
    (lambda: nn.Dropout(1.5), ["Dropout", "p must", "1.5"]),
    (lambda: nn.Dropout(-0.1), ["Dropout", "p must", "-0.1"]),
    (lambda: nn.Dropout(True), ["Dropout", "p must", "True"]),
    (lambda: nn.DropPath(2), ["DropPath", "p must", "2"]),
    (lambda: nn.GELU(approximate="x"), ["approximate", "'x'"]),
    (lambda: nn.init.trunc_normal_(mi.zeros(3), std=0.0), ["std", "0.0"]),
    (lambda: nn.init.trunc_normal_(mi.zeros(3), a=1.0, b=1.0), ["a < b"]),
])
def test_invalid_arguments_raise_value_error_naming_them(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
