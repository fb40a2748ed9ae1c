"""The array backend: selection, clear errors, mixing, and the helpers whose APIs differ."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import mini_iformer as mi
from mini_iformer import backend, runtime


@pytest.fixture
def restore_backend():
    yield
    backend.set_backend("numpy")


def test_numpy_is_the_default():
    assert mi.get_backend() == "numpy" and backend.get_xp() is np
    assert mi.ones(2).backend == "numpy"


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ValueError, match="unknown backend 'jax'.*numpy, cupy"):
        mi.set_backend("jax")


def test_missing_cupy_gives_one_clear_error(monkeypatch, restore_backend):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(mi.BackendUnavailableError, match=r"needs CuPy, which is not installed.*pip install"):
        mi.set_backend("cupy")
    assert mi.get_backend() == "numpy"


def _fake_cupy(count=None, error=None):
    fake = types.ModuleType("cupy")

    def get_device_count():
        if error is not None:
            raise error
        return count

    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    fake.ndarray = type("ndarray", (), {})
    return fake


def test_cupy_without_a_gpu_says_so(monkeypatch, restore_backend):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(error=RuntimeError("no CUDA-capable device is detected")))
    with pytest.raises(mi.BackendUnavailableError, match=r"found CuPy but no usable NVIDIA GPU.*no CUDA-capable"):
        mi.set_backend("cupy")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=0))
    with pytest.raises(mi.BackendUnavailableError, match=r"no NVIDIA GPU is visible"):
        mi.set_backend("cupy")
    assert mi.get_backend() == "numpy"


class _DeviceArray(np.ndarray):
    """Stands in for an array of another backend."""


def test_mixing_backends_in_one_op_is_refused(monkeypatch):
    monkeypatch.setattr(backend, "_ARRAY_TYPES", [(_DeviceArray, "cupy"), (np.ndarray, "numpy")])
    host = mi.tensor(np.ones(3))
    device = mi.Tensor._make(np.ones(3).view(_DeviceArray))
    assert device.backend == "cupy"
    for combine in (lambda: host + device, lambda: mi.matmul(device, host),
                    lambda: mi.concatenate([host, device]), lambda: host * np.ones(3).view(_DeviceArray),
                    lambda: host < device):
        with pytest.raises(mi.BackendMismatchError, match="different backends \\((numpy and cupy|cupy and numpy)\\)"):
            combine()


def _run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k != backend.ENV_VAR}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_environment_variable_selects_the_backend():
    ok = _run_python("import mini_iformer as mi; print(mi.get_backend())", MINI_IFORMER_BACKEND="numpy")
    assert ok.returncode == 0 and ok.stdout.strip() == "numpy"
    bad = _run_python("import mini_iformer", MINI_IFORMER_BACKEND="tpu")
    assert bad.returncode != 0 and "MINI_IFORMER_BACKEND='tpu'" in bad.stderr


def test_environment_variable_cupy_without_cupy_fails_clearly():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here; the missing-CuPy path is covered by monkeypatching")
    except ImportError:
        pass
    result = _run_python("import mini_iformer", MINI_IFORMER_BACKEND="cupy")
    assert result.returncode != 0 and "BackendUnavailableError" in result.stderr
    assert "not installed" in result.stderr


def test_scatter_add_adds_for_repeated_indices(backend_name):
    xp = backend.get_xp()
    target = xp.zeros(4)
    backend.scatter_add(target, xp.asarray([0, 2, 0, 0]), xp.asarray([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(backend.to_numpy(target), [8.0, 0.0, 2.0, 0.0])


def test_erf_matches_the_math_library(backend_name):
    xs = np.linspace(-3, 3, 13)
    got = backend.to_numpy(backend.erf(backend.asarray(xs)))
    np.testing.assert_allclose(got, [math.erf(v) for v in xs], rtol=1e-14, atol=1e-15)
    assert backend.erf(backend.asarray(xs.astype(np.float32))).dtype == np.float32


def test_asarray_and_to_numpy_round_trip(backend_name):
    host = np.arange(6.0).reshape(2, 3)
    dev = backend.asarray(host)
    assert backend.array_backend(dev) == backend_name
    back = backend.to_numpy(dev)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
    t = mi.tensor(host)
    assert t.backend == backend_name and isinstance(t.numpy(), np.ndarray)


@pytest.mark.gpu
def test_tensors_from_two_real_backends_do_not_mix(restore_backend):
    try:
        mi.set_backend("cupy")
    except mi.BackendUnavailableError as exc:
        pytest.skip(f"CuPy backend unavailable: {exc}")
    device = mi.ones(3)
    mi.set_backend("numpy")
    host = mi.ones(3)
    with pytest.raises(mi.BackendMismatchError):
        host + device


def test_keep_freed_memory_applies_once_on_glibc_and_changes_no_result():
    import platform

    import numpy as np


    applied = runtime.keep_freed_memory()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied is True
    assert runtime.keep_freed_memory() is applied  # a second call is a no-op
    a = np.arange(10**6, dtype=np.float32)
    assert float((a * 2).sum()) == float(np.float64(a.sum()) * 2)


def test_array_module_is_the_module_of_the_arrays_an_op_receives(monkeypatch):
    fake = types.ModuleType("fake_cupy")
    monkeypatch.setattr(backend, "_ARRAY_TYPES", [(_DeviceArray, "cupy"), (np.ndarray, "numpy")])
    monkeypatch.setattr(backend, "_cupy", fake)
    assert backend.array_module(np.ones(2)) is np
    assert backend.array_module(2.0, None, np.ones(2)) is np
    assert backend.array_module() is np
    assert backend.array_module(np.ones(2).view(_DeviceArray), 1.0) is fake


class _Poisoned(types.ModuleType):
    def __getattr__(self, name):
        raise AssertionError(f"an operation used the current backend's module ({name}) instead "
                             "of its inputs' module")


def test_operations_take_their_module_from_their_inputs_not_the_setting(monkeypatch):
    """Ops, forward and backward, never consult the backend setting (only tensor creation
    does): with the setting's module poisoned, a graph of every kind of op still runs."""
    import mini_iformer.functional as F

    rng = np.random.default_rng(0)
    x = mi.tensor(rng.standard_normal((2, 4, 8, 8)), requires_grad=True)
    w = mi.tensor(rng.standard_normal((4, 1, 3, 3)), requires_grad=True)
    g = rng.standard_normal((2, 4, 4, 4))
    monkeypatch.setattr(backend, "_xp", _Poisoned("poisoned"))
    for mode in ("fast", "reference"):
        with mi.ops.use(mode):
            h = F.gelu(F.conv2d(x, w, padding=1, groups=4))
            h = F.max_pool2d(h, 3, 1, 1) + F.interpolate(F.avg_pool2d(h, 2), scale_factor=2)
            h = F.layer_norm(h.permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2)
            h = (mi.tanh(h) * mi.sigmoid(h) + mi.maximum(h, 0.1) + mi.exp(-mi.abs(h))
                 + mi.clip(h, -1.0, 1.0) + mi.where(h > 0, h, 0.0) + mi.sqrt(h * h + 1)
                 + mi.log(h * h + 1) + mi.erf(h) + h.var(axis=1, keepdims=True)
                 + F.log_softmax(h, 1) + h.max(axis=2, keepdims=True) + h[:, [0, 2, 1, 3]])
            h = mi.concatenate([h[:, :2], mi.stack([h[:, 2], h[:, 3]], 1)], 1)
            h = F.pad(h, (1, 1, 1, 1))[:, :, 1:-1, 1:-1]
            q = h.reshape(2, 4, 64).transpose(1, 2)
            h = F.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(2, 4, 8, 8)
            y = F.conv2d(F.softmax(h, -1), mi.tensor(rng.standard_normal((4, 4, 3, 3))),
                         stride=2, padding=1)
            y.backward(g)
    assert x.grad is not None and w.grad is not None


@given(shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
       dtype=st.sampled_from(["float32", "float64", "int64", "bool"]))
def test_to_device_async_keeps_shape_dtype_and_values(backend_name, shape, dtype):
    """The pinned staging copy (on CuPy) gives what backend.asarray gives: a 0-d array stays
    0-d, an empty one empty."""
    host = (np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(dtype)
    out = runtime.to_device_async(host)
    assert backend.array_backend(out) == backend.get_backend()
    assert out.shape == host.shape and out.dtype == host.dtype
    np.testing.assert_array_equal(backend.to_numpy(out), host)


def test_the_subpackages_are_reachable_from_the_package_and_load_on_first_use():
    """``mi.optim.AdamW`` after ``import mini_iformer as mi``, as with PyTorch; data, optim and
    training are imported only when first used, so ``import mini_iformer`` stays light."""
    code = (
        "import sys\n"
        "import mini_iformer as mi\n"
        "lazy = ('mini_iformer.data', 'mini_iformer.optim', 'mini_iformer.training')\n"
        "assert not [m for m in lazy if m in sys.modules], [m for m in lazy if m in sys.modules]\n"
        "assert mi.optim.AdamW and mi.data.CIFAR10 and mi.data.DataLoader\n"
        "assert mi.training.train_steps and mi.nn.Linear and mi.functional.conv2d\n"
        "try:\n"
        "    mi.no_such_thing\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_thing' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
