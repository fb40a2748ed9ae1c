"""The engine's rules: graph order, accumulation, freeing, no_grad, dtypes and the Tensor API."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest
import torch

import mini_iformer as mi


def test_a_10000_op_chain_backpropagates_without_recursion(backend_name):
    x = mi.tensor(np.array(0.5), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001  # dy/dx = 1.0001 ** 10000
    assert sys.getrecursionlimit() < 10_000 * 2  # a recursive walk would have failed
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001**10_000, rtol=1e-9)


def test_deep_chain_of_mixed_ops_matches_torch():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(5)
    x, tx = mi.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = x, tx
    for i in range(3000):
        y, ty = (mi.tanh(y) + 0.5 * y, torch.tanh(ty) + 0.5 * ty) if i % 2 else (y * 0.9 + 0.01, ty * 0.9 + 0.01)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_second_backward_through_a_freed_graph_raises_clearly():
    x = mi.tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        loss.backward()


def test_a_branch_of_a_freed_graph_is_also_freed():
    x = mi.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 2).sum().backward()


def test_retain_graph_allows_a_second_backward_and_gradients_accumulate():
    x = mi.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    loss = (x * x * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    np.testing.assert_allclose(first, 3 * x.numpy() ** 2)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_leaf_gradients_accumulate_across_graphs_until_reset():
    w = mi.tensor(np.array([0.5, 1.5]), requires_grad=True)
    for _ in range(3):
        (w * 2.0).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [6.0, 6.0])
    w.grad = None
    (w * 2.0).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 2.0])


def test_gradients_of_two_inputs_do_not_share_memory():
    a = mi.tensor(np.ones(3), requires_grad=True)
    b = mi.tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 10  # e.g. an optimiser scaling one gradient in place
    np.testing.assert_allclose(b.grad.numpy(), np.ones(3))


@pytest.mark.parametrize("make", [
    lambda x: x + 1.0,                       # returns its incoming gradient unchanged
    lambda x: x.reshape(2, 3).reshape(6),    # returns views of it
    lambda x: x.astype("float64"),
    lambda x: mi.broadcast_to(x, (6,)),
    lambda x: x * 2.0,                       # a fresh array
])
def test_no_gradient_shares_memory_with_the_callers_array_or_another_leaf(make):
    x = mi.tensor(np.ones(6), requires_grad=True)
    y = make(x)
    seed = np.arange(6.0)
    y.backward(seed)
    expected = x.grad.numpy().copy()
    seed[:] = -100.0  # the caller reuses its buffer
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    assert not np.shares_memory(x.grad.data, seed)
    a = mi.tensor(np.ones(6), requires_grad=True)
    h = make(a)
    h.retain_grad()
    (h + mi.tensor(np.ones(6), requires_grad=True)).sum().backward()
    assert not np.shares_memory(a.grad.data, h.grad.data)


def test_a_tensor_used_twice_gets_both_contributions():
    x = mi.tensor(np.array(3.0), requires_grad=True)
    (x * x + x).backward()  # d/dx (x^2 + x) = 2x + 1
    assert x.grad.item() == 7.0


def test_intermediate_gradients_are_dropped_unless_retained():
    x = mi.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    kept = x * 2.0
    kept.retain_grad()
    (h.sum() + (kept * kept).sum()).backward()
    assert h.grad is None
    np.testing.assert_allclose(kept.grad.numpy(), 2 * kept.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 3 + 8 * x.numpy())


def test_saved_arrays_are_released_after_backward():
    x = mi.tensor(np.random.default_rng(0).standard_normal(1000), requires_grad=True)
    y = x.exp()
    saved = weakref.ref(y._ctx.y)  # exp saves its output for backward
    fn = y._ctx
    z = y.sum()
    del y
    gc.collect()
    z.backward()
    gc.collect()
    assert fn._freed and saved() is None


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = mi.tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"single-element.*\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\).*\(2, 3\)"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 3), 0.5))
    np.testing.assert_allclose(x.grad.numpy(), np.ones((2, 3)))


def test_backward_on_a_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (mi.ones(3) * 2).sum().backward()


def test_backward_on_a_scalar_leaf_sets_its_gradient():
    x = mi.tensor(np.array(2.0), requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_no_grad_records_nothing():
    x = mi.tensor([1.0, 2.0], requires_grad=True)
    with mi.no_grad():
        assert not mi.is_grad_enabled()
        y = (x * 2).exp().sum()
    assert mi.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._ctx is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_as_a_decorator_and_nested_with_enable_grad():
    x = mi.tensor([1.0], requires_grad=True)

    @mi.no_grad()
    def evaluate(t):
        inner = t * 2
        with mi.enable_grad():
            recorded = t * 3
        return inner, recorded

    inner, recorded = evaluate(x)
    assert not inner.requires_grad
    assert recorded.requires_grad and recorded._ctx is not None
    assert mi.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError), mi.no_grad():
        1 / 0  # noqa: B018 - the division raises
    assert mi.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_the_values():
    x = mi.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = (d * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), d.numpy())


# -- dtypes ------------------------------------------------------------------------------------
def test_dtype_rules():
    assert mi.tensor(1.5).dtype == np.float32
    assert mi.tensor([1.0, 2.0]).dtype == np.float32
    assert mi.tensor([1, 2]).dtype == np.int64
    assert mi.tensor(np.ones(2)).dtype == np.float64  # arrays keep their dtype
    assert mi.tensor(np.ones(2), dtype="float32").dtype == np.float32
    x32 = mi.ones(2)
    assert (x32 * 2.5).dtype == np.float32  # Python scalars never promote
    assert (x32 * np.float64(2.5)).dtype == np.float32  # nor do NumPy scalars
    assert (x32 + mi.tensor(np.ones(2))).dtype == np.float64  # float32 with float64: float64
    assert (2.0**x32).dtype == np.float32


def test_gradients_have_the_dtype_of_their_tensor():
    a = mi.tensor(np.ones(3, np.float32), requires_grad=True)
    b = mi.tensor(np.ones(3, np.float64), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    c = mi.tensor(np.ones(2, np.float32), requires_grad=True)
    c.astype("float64").sum().backward()
    assert c.grad.dtype == np.float32


def test_float32_stays_float32_through_a_small_network():
    rng = np.random.default_rng(0)
    x = mi.tensor(rng.standard_normal((4, 8)).astype(np.float32))
    w = mi.tensor(rng.standard_normal((8, 3)).astype(np.float32), requires_grad=True)
    h = mi.tanh(x @ w)
    loss = (mi.log_softmax(h, axis=-1) * -1.0).mean() + mi.var(h) + mi.sqrt(mi.exp(h)).mean()
    assert loss.dtype == np.float32
    loss.backward()
    assert w.grad.dtype == np.float32


def test_only_floating_tensors_can_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        mi.tensor([1, 2], requires_grad=True)


def test_strings_and_objects_are_refused():
    with pytest.raises(TypeError, match="cannot make a tensor"):
        mi.tensor(["a", "b"])


# -- the Tensor API ----------------------------------------------------------------------------
def test_tensor_properties_and_conversions():
    t = mi.tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert isinstance(t.numpy(), np.ndarray)
    assert t[1, 2].item() == 5.0 and float(t[0, 1]) == 1.0
    with pytest.raises(ValueError, match=r"one-element.*\(2, 3\)"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    assert "grad_fn=mul" in repr(mi.tensor([1.0], requires_grad=True) * 2)
    np.testing.assert_array_equal(np.asarray(t), t.numpy())
    assert t.T.shape == (3, 2)


def test_comparisons_are_elementwise_and_outside_the_graph():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([3.0, 2.0, 1.0])
    x = mi.tensor(a, requires_grad=True)
    y = mi.tensor(b)
    ta, tb = torch.tensor(a), torch.tensor(b)
    for ours, theirs in [(x < y, ta < tb), (x <= y, ta <= tb), (x > y, ta > tb),
                         (x >= y, ta >= tb), (x == y, ta == tb), (x != y, ta != tb),
                         (x > 1.5, ta > 1.5)]:
        assert ours.dtype == np.bool_ and not ours.requires_grad
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert {x: 1}[x] == 1  # tensors still hash by identity


def test_numpy_array_on_the_left_defers_to_the_tensor():
    x = mi.tensor(np.ones(2), requires_grad=True)
    y = np.array([2.0, 3.0]) * x
    assert isinstance(y, mi.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 3.0])


def test_custom_functions_plug_into_the_engine():
    class Cube(mi.Function):
        name = "cube"

        def forward(self, x):
            self.x = x
            return x**3

        def backward(self, g):
            return 3 * g * self.x**2

    x = mi.tensor(np.array([1.0, 2.0]), requires_grad=True)
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_factories():
    rng = np.random.default_rng(0)
    assert mi.zeros(2, 3).shape == (2, 3) and mi.zeros((2, 3)).numpy().sum() == 0
    assert mi.ones(4).numpy().sum() == 4 and mi.full((2,), 7.0).numpy().tolist() == [7.0, 7.0]
    assert mi.randn(3, 4, generator=rng).dtype == np.float32
    a = mi.randn(5, generator=np.random.default_rng(1)).numpy()
    b = mi.randn(5, generator=np.random.default_rng(1)).numpy()
    np.testing.assert_array_equal(a, b)
    assert mi.arange(3).dtype == np.int64 and mi.arange(0.0, 1.0, 0.5).dtype == np.float32
    t = mi.zeros_like(mi.ones(2, dtype=np.float64), requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad


def test_getitem_with_negative_steps_matches_numpy_and_autograd():
    import autograd
    import autograd.numpy as anp

    a = np.random.default_rng(3).standard_normal((4, 5))
    w = np.random.default_rng(4).standard_normal((2, 5))
    x = mi.tensor(a, requires_grad=True)
    y = x[::-2, ::-1]
    np.testing.assert_array_equal(y.numpy(), a[::-2, ::-1])
    (y * mi.tensor(w)).sum().backward()
    expected = autograd.grad(lambda t: anp.sum(t[::-2, ::-1] * w))(a)
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_the_declared_tensor_methods_are_exactly_the_attached_ones():
    """``tensor_methods.TensorMethods`` lists what ``mini_iformer.ops`` attaches to Tensor:
    a method attached but not declared, or declared but never attached, fails here."""
    from mini_iformer.tensor_methods import TensorMethods

    declared = {name for name in vars(TensorMethods)
                if name not in ("__module__", "__doc__", "__qualname__", "__slots__", "__hash__",
                                "__firstlineno__", "__static_attributes__")}
    attached = {name for name, value in vars(mi.Tensor).items()
                if getattr(getattr(value, "fget", value), "__module__", "").startswith(
                    "mini_iformer.ops")}
    assert declared == attached
    for name in declared:  # each declaration was replaced by a real operation
        assert vars(mi.Tensor)[name] is not vars(TensorMethods)[name]
