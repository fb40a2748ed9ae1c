"""The block-and-thread helper (``mini_iformer.runtime``), and the ops that use it, across many
blocks and threads.

The op specifications draw shapes smaller than one block; here the block size is shrunk so
the same ops run through many blocks, with a short last block, on two threads.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer import runtime


@pytest.fixture
def small_blocks():
    with runtime.blocks(elements=7 * 5, threads=2):  # 7 rows of 5, or 35 elements
        yield


def test_blocks_cover_every_row_once_in_order(small_blocks):
    seen = []
    parts = runtime.for_each_block(100, 5, lambda s, e: seen.append((s, e)) or (s, e), np.zeros(1))
    assert parts == sorted(parts) and parts[0][0] == 0 and parts[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert sorted(seen) == parts and len(parts) == -(-100 // 7)


def test_errors_inside_a_block_reach_the_caller(small_blocks):
    def fail(s, e):
        if s > 50:
            raise ValueError("block failed")

    with pytest.raises(ValueError, match="block failed"):
        runtime.for_each_block(100, 5, fail, np.zeros(1))


@pytest.mark.parametrize("value, expected", [("3", "3"), ("1", "1"),
                                             ("many", "MINI_IFORMER_NUM_THREADS='many'")])
def test_thread_count_from_the_environment(value, expected):
    env = dict(os.environ, MINI_IFORMER_NUM_THREADS=value)
    result = subprocess.run(
        [sys.executable, "-c", "import mini_iformer.runtime as r; print(r.threads())"],
        env=env, capture_output=True, text=True)
    assert expected in (result.stdout if result.returncode == 0 else result.stderr)


def test_blocks_restores_the_settings_and_refuses_nonsense():
    before = (runtime.threads(), runtime.block_elements(123))
    with runtime.blocks(elements=5, threads=3):
        assert (runtime.threads(), runtime.block_elements(123)) == (3, 5)
        with runtime.blocks(threads=1):
            assert (runtime.threads(), runtime.block_elements(123)) == (1, 5)
    assert (runtime.threads(), runtime.block_elements(123)) == before
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="positive int"), runtime.blocks(elements=bad):
            pass


def _check(ours, theirs, *arrays):
    xs = [mi.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours(*xs), theirs(*ts)
    w = np.random.default_rng(9).standard_normal(ref.shape)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.backward(w)
    ref.backward(torch.tensor(w))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("rows", [1, 7, 50, 103])
def test_block_ops_match_torch_across_many_blocks(small_blocks, rows):
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 5))
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    _check(lambda t, tw, tb: F.layer_norm(t, (5,), tw, tb, 1e-5),
           lambda t, tw, tb: torch.nn.functional.layer_norm(t, (5,), tw, tb, 1e-5), x, w, b)
    _check(lambda t: F.softmax(t, -1), lambda t: torch.softmax(t, -1), x)
    _check(F.gelu, torch.nn.functional.gelu, x)
    x32 = x.astype(np.float32)
    with mi.no_grad():
        got = F.gelu(mi.tensor(x32)).numpy()
    exact = torch.nn.functional.gelu(torch.tensor(x32.astype(np.float64))).numpy()
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-6)  # float32 GELU, exact to ~4e-7
