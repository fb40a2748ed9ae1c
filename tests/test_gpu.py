"""The CuPy backend on a real GPU: the two backends agree, op by op, on the model, on training
steps and through checkpoints; the kernels really run; nothing waits for the host.

Every test here carries the ``gpu`` marker and is skipped, with the reason, where CuPy or a
GPU is missing. (The rest of the suite also runs on CuPy through the ``backend_name``
fixture, and ``test_cuda_kernels.py`` checks the kernels' logic on any machine.)
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from conftest import _cupy_skip_reason  # the suite's own CuPy check
from hypothesis import given, settings
from hypothesis import strategies as st
from op_specs import SPECS
from oracle import _as_list

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer import backend, checkpoint, runtime
from mini_iformer.ops import cuda

_REASON = _cupy_skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]


@contextlib.contextmanager
def on(name: str):
    previous = mi.get_backend()
    mi.set_backend(name)
    try:
        yield
    finally:
        mi.set_backend(previous)


def _forward_backward(case, name: str):
    """Outputs and input gradients of ``case`` computed on backend ``name``, as NumPy."""
    with on(name):
        inputs = [mi.tensor(a, requires_grad=True) for a in case.inputs]
        outs = _as_list(case.ours(*inputs))
        rng = np.random.default_rng(0)
        loss = None
        for o in outs:
            if o.requires_grad:
                term = (o * mi.tensor(rng.standard_normal(o.shape))).sum()
                loss = term if loss is None else loss + term
        if loss is not None:
            loss.backward()
        return ([o.numpy() for o in outs],
                [None if t.grad is None else t.grad.numpy() for t in inputs])


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=15)
@given(data=st.data())
def test_every_op_gives_the_same_result_on_both_backends(name, data):
    case = SPECS[name](data)
    outs_np, grads_np = _forward_backward(case, "numpy")
    outs_gpu, grads_gpu = _forward_backward(case, "cupy")
    for a, b in zip(outs_np + grads_np, outs_gpu + grads_gpu):
        if a is None or b is None:
            assert a is None and b is None
            continue
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_gpu_kernels_are_the_ones_that_run(monkeypatch):
    launched = []
    original = cuda.Kernel.__call__

    def record(self, n, *args, dtype):
        launched.append(self.name)
        return original(self, n, *args, dtype=dtype)

    monkeypatch.setattr(cuda.Kernel, "__call__", record)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    with on("cupy"):
        xt = mi.tensor(x, requires_grad=True)
        h = F.conv2d(xt, mi.tensor(rng.standard_normal((8, 1, 3, 3)), dtype=np.float32),
                     padding=1, groups=8)
        h = F.max_pool2d(F.gelu(h), 3, 1, 1)
        y = F.conv2d(h, mi.tensor(rng.standard_normal((4, 8, 3, 3)), dtype=np.float32),
                     stride=2, padding=1)
        y.sum().backward()
    assert set(launched) == {
        "depthwise_forward", "depthwise_backward_input", "gelu_forward", "max_pool_forward",
        "max_pool_backward", "im2col", "col2im",
    }


def _tiny_model(name: str):
    with on(name):
        mi.random.manual_seed(0)
        return mi.models.create_model("iformer_cifar_tiny", drop_path_rate=0.1)


def _train(name: str, steps: int = 3):
    from mini_iformer.optim import AdamW
    from mini_iformer.training import RunState, train_steps

    model = _tiny_model(name)
    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((8, 3, 32, 32)).astype(np.float32),
                rng.integers(0, 10, 8)) for _ in range(steps)]
    with on(name):
        mi.random.manual_seed(3)  # the drop-path masks: drawn on the host, the same on both
        optimizer = AdamW(model.parameters(), lr=_LR, weight_decay=0.05)

        class Constant:
            def step(self):
                pass

        state = RunState()
        train_steps(model, batches, optimizer, Constant(), state, label_smoothing=0.1,
                    sync_every=2)
        return {k: backend.to_numpy(v.data) for k, v in model.state_dict().items()}, state


# Convolution biases that feed straight into a training-mode BatchNorm: their gradient is 0 in
# exact arithmetic (the mean subtraction cancels them), so what a backend computes is rounding
# noise whose sign depends on the summation order, and AdamW turns any sign into a step of
# about lr. Two backends may move them apart by up to 2 * lr per step.
_BEFORE_BATCH_NORM = ("patch_embed.proj1.bias", "patch_embed.proj2.bias",
                      "patch_embed2.proj.bias", "patch_embed3.proj.bias", "patch_embed4.proj.bias")
# ... and the running means of those BatchNorms, which follow the biases (by at most as much).
_AFTER_THE_BIASES = ("patch_embed.norm1.running_mean", "patch_embed.norm2.running_mean",
                     "patch_embed2.norm.running_mean", "patch_embed3.norm.running_mean",
                     "patch_embed4.norm.running_mean")
_LR, _STEPS = 1e-3, 3


def assert_training_agrees(cpu, s_cpu, gpu, s_gpu):
    """The same training steps on two backends: the same losses and weights (the biases
    before BatchNorm within the steps AdamW can take; see test_cuda_kernels.py)."""
    assert abs(s_cpu.loss_sum - s_gpu.loss_sum) < 1e-3 * abs(s_cpu.loss_sum)
    for key in cpu:
        if key in _BEFORE_BATCH_NORM + _AFTER_THE_BIASES:
            np.testing.assert_allclose(gpu[key], cpu[key], rtol=0, atol=2 * _LR * _STEPS,
                                       err_msg=key)
        else:
            np.testing.assert_allclose(gpu[key], cpu[key], rtol=2e-3, atol=2e-4, err_msg=key)


def test_a_few_training_steps_agree_across_backends():
    assert_training_agrees(*_train("numpy", _STEPS), *_train("cupy", _STEPS))


def test_a_checkpoint_saved_on_one_backend_loads_on_the_other(tmp_path):
    gpu_model = _tiny_model("cupy")
    path = tmp_path / "gpu.npz"
    checkpoint.save(gpu_model.state_dict(), path)
    cpu_model = _tiny_model("numpy")
    with on("numpy"):
        cpu_model.load_state_dict(checkpoint.load_weights(path))
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
    gpu_model.eval()
    cpu_model.eval()
    with on("cupy"), mi.no_grad():
        y_gpu = gpu_model(mi.tensor(x)).numpy()
    with on("numpy"), mi.no_grad():
        y_cpu = cpu_model(mi.tensor(x)).numpy()
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-4, atol=1e-5)
    for key, value in cpu_model.state_dict().items():
        assert value.backend == "numpy", key


def test_host_data_reaches_the_gpu_without_waiting_and_intact():
    cupy = backend.module_of("cupy")
    with on("cupy"):
        for shape, dtype in [((3, 4), np.float32), ((0,), np.float64), ((5, 1, 2), np.bool_)]:
            host = np.random.default_rng(0).random(shape) > 0.5
            host = host.astype(dtype)
            dev = runtime.to_device_async(host)
            assert isinstance(dev, cupy.ndarray) and dev.dtype == host.dtype
            np.testing.assert_array_equal(dev.get(), host)


def test_batches_are_copied_ahead_and_the_position_is_the_used_one():
    from mini_iformer.data import DataLoader
    from mini_iformer.training import DeviceBatches

    class Samples:
        def __len__(self):
            return 10

        def get(self, i, rng):
            return np.full((1, 2, 2), i, np.float32), i

    cupy = backend.module_of("cupy")
    loader = DataLoader(Samples(), 2, shuffle=True, seed=0)
    expected = [(x.copy(), y.copy()) for x, y in loader]
    loader.set_epoch(0)
    feed = DeviceBatches(loader, depth=2)
    with on("cupy"):
        for b, (x, y) in enumerate(feed):
            assert isinstance(x, cupy.ndarray) and isinstance(y, cupy.ndarray)
            np.testing.assert_array_equal(x.get(), expected[b][0])
            np.testing.assert_array_equal(y.get(), expected[b][1])
            assert feed.state_dict()["position"] == b + 1
            if b == 2:
                break
    assert feed.state_dict()["position"] == 3


def test_peak_memory_is_reported_once_the_gpu_is_used():
    with on("cupy"):
        mi.tensor(np.ones((256, 256), np.float32)) * 2
    assert runtime.gpu_memory_peak_mib() > 0
