"""The profiler sees every operation once per forward and once per backward, keys convolutions
by the implementation they took, and leaves the engine untouched outside its block."""

from __future__ import annotations

import numpy as np
import pytest

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer import autograd, profiler


def _step():
    rng = np.random.default_rng(0)
    x = mi.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    dw = mi.tensor(rng.standard_normal((4, 1, 3, 3)), requires_grad=True)
    pw = mi.tensor(rng.standard_normal((5, 4, 1, 1)), requires_grad=True)
    h = F.conv2d(x, dw, padding=1, groups=4)                   # depthwise
    h = F.conv2d(F.gelu(h), pw)                                # pointwise
    y = F.conv2d(h, mi.tensor(rng.standard_normal((3, 5, 3, 3))), stride=2)  # general, no grad w
    loss = (y * y).sum()
    loss.backward()
    return x.grad.numpy()


def test_every_operation_is_counted_forward_and_backward():
    with profiler.profile() as prof:
        grad = _step()
    rows = prof.by_key()
    assert {"conv2d:depthwise", "conv2d:pointwise", "conv2d:general", "gelu", "mul",
            "sum"} <= set(rows)
    for key in ("conv2d:depthwise", "conv2d:pointwise", "conv2d:general", "gelu"):
        assert rows[key]["calls"] == 1
        assert prof.calls[(key, "forward")] == 1 and prof.calls[(key, "backward")] == 1
        assert rows[key]["forward"] > 0 and rows[key]["backward"] > 0
    assert prof.total == pytest.approx(sum(r["forward"] + r["backward"] for r in rows.values()))
    table = prof.table()
    assert table.splitlines()[0].split()[:3] == ["operation", "calls", "fwd"]
    assert "conv2d:depthwise" in table and table.splitlines()[-1].startswith("total")
    np.testing.assert_array_equal(grad, _step())  # profiling changes no number


def test_operations_without_gradients_are_timed_forward_only():
    with profiler.profile() as prof, mi.no_grad():
        F.gelu(mi.tensor(np.ones(4)))
    assert prof.calls[("gelu", "forward")] == 1 and ("gelu", "backward") not in prof.calls


def test_outside_the_block_nothing_is_recorded_and_profiles_do_not_nest():
    with profiler.profile() as prof:
        pass
    assert autograd._profiler is None
    _step()
    assert prof.total == 0 and not prof.by_key()
    with profiler.profile(), pytest.raises(RuntimeError, match="already running"):  # noqa: SIM117
        with profiler.profile():
            pass
    assert autograd._profiler is None
