"""The CUDA kernels of the GPU paths, run on the CPU by ``cuda_emulator`` (no GPU needed).

Inside ``emulated()`` every operation that has a kernel takes its GPU path on NumPy arrays,
and each launch runs the kernel's CUDA source compiled as C++, thread by thread, in reverse
order. So the whole GPU path (the Python around the launch, the kernel's indexing, bounds
and arithmetic) meets the same specifications as the NumPy path: PyTorch in float64 over
drawn shapes and hyper-parameters, HIPS autograd and finite differences (``check_case``).
On a machine with a GPU, ``test_gpu.py`` runs the same kernels for real.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from op_specs import SPECS
from oracle import check_case
from specs_conv import conv2d_case
from specs_pool import MAX_POOL_PATHS, max_pool2d_case

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer.ops import cuda, cuda_emulator, use

pytestmark = pytest.mark.skipif(
    not cuda_emulator.available(), reason="no C++ compiler (g++, c++ or clang++) on the PATH"
)


@pytest.fixture(autouse=True)
def automatic_choice():
    """These tests are about the forms the library picks by itself on a GPU (emulated here),
    whatever MINI_IFORMER_IMPL says."""
    with use("fast"):
        yield


@contextlib.contextmanager
def recording():
    """Emulate the kernels and collect the names of those launched."""
    launched: list[str] = []

    def runner(kernel, n, args, dtype):
        launched.append(kernel.name)
        cuda_emulator.run(kernel, n, args, dtype)

    with cuda.emulate(runner):
        yield launched


# -- the specifications, on the GPU paths --------------------------------------------------------
@pytest.mark.parametrize(
    "kind, kernels",
    [
        ("depthwise", {"depthwise_forward", "depthwise_backward_input",
                       "depthwise_backward_weight"}),
        ("general", {"im2col", "col2im"}),
    ],
)
@given(data=st.data())
def test_conv2d_kernels_match_the_oracles(kind, kernels, data):
    case = conv2d_case(data, kind)
    with recording() as launched:
        check_case(case)
    # "general" also draws depthwise-like convolutions with a stride, which the GPU sends to
    # the depthwise kernels: either family is right, as long as kernels did the work
    assert set(launched) & (kernels | {"depthwise_forward"}), launched


@pytest.mark.parametrize("path", MAX_POOL_PATHS)
@given(data=st.data())
def test_max_pool2d_kernels_match_the_oracles(path, data):
    with recording() as launched:
        check_case(max_pool2d_case(data, path))
    assert "max_pool_forward" in launched and "max_pool_backward" in launched


@given(data=st.data())
def test_gelu_kernel_matches_the_oracles(data):
    case = SPECS["gelu"](data)
    with recording() as launched:
        check_case(case)
    if case.inputs[0].size:  # (an empty tensor launches nothing)
        assert launched and set(launched) == {"gelu_forward"}


# -- float32, iFormer's shapes, and what is chosen ------------------------------------------------
def test_float32_kernels_agree_with_the_numpy_paths():
    """iFormer's own settings in float32: the emulated kernels and the NumPy paths agree to
    float32 rounding, forward and backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 9, 10)).astype(np.float32)
    dw = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    stem = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)

    def run():
        xs = mi.tensor(x, requires_grad=True)
        ws = [mi.tensor(dw, requires_grad=True), mi.tensor(stem, requires_grad=True)]
        h = F.conv2d(xs, ws[0], padding=1, groups=8)
        h = F.max_pool2d(F.gelu(h), 3, stride=1, padding=1)
        y = F.conv2d(h, ws[1], stride=2, padding=1)
        (y * y).sum().backward()
        return [y.numpy(), xs.grad.numpy()] + [w.grad.numpy() for w in ws]

    expected = run()
    with recording() as launched:
        got = run()
    assert len(set(launched)) == 8, launched
    for e, g in zip(expected, got):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-4 * np.abs(e).max())


def test_max_pool_takes_the_first_maximum_and_never_the_padding():
    """Ties go to the first element in row-major window order, as in PyTorch; an all -inf
    window picks a real element, not the padding."""
    x = np.array([[[[1.0, 1.0, 0.0], [1.0, -np.inf, 2.0], [2.0, 0.0, 2.0]]]])
    x_inf = np.full((1, 1, 3, 3), -np.inf)
    for arr, kernel, stride, pad in [(x, 2, 1, 0), (x, 3, 1, 1), (x, 3, 2, 1), (x_inf, 3, 1, 1)]:
        ours = mi.tensor(arr, requires_grad=True)
        with recording():
            y = F.max_pool2d(ours, kernel, stride, pad)
            y.backward(np.ones(y.shape))
        theirs = torch.tensor(arr, requires_grad=True)
        ty = TF.max_pool2d(theirs, kernel, stride, pad)
        ty.backward(torch.ones_like(ty))
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
        np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_the_model_on_the_kernels_matches_the_numpy_paths():
    """A whole (tiny) iFormer forward and backward with every kernel emulated."""
    mi.random.manual_seed(0)
    model = mi.models.create_model("iformer_cifar_tiny")
    model = model.astype(np.float64)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))

    def run():
        model.zero_grad()
        out = model(mi.tensor(x))
        out.sum().backward()
        return out.numpy(), {k: p.grad.numpy().copy() for k, p in model.named_parameters()}

    y0, g0 = run()
    with recording() as launched:
        y1, g1 = run()
    assert {"depthwise_forward", "im2col", "max_pool_forward", "gelu_forward"} <= set(launched)
    np.testing.assert_allclose(y1, y0, rtol=1e-10, atol=1e-12)
    for key in g0:
        np.testing.assert_allclose(g1[key], g0[key], rtol=1e-9, atol=1e-11, err_msg=key)


def test_without_a_gpu_numpy_arrays_take_the_numpy_paths():
    x = np.zeros((1, 2, 4, 4), np.float32)
    assert not cuda.use_kernels(x)
    with cuda.emulate(cuda_emulator.run):
        assert cuda.use_kernels(x)
        assert not cuda.use_kernels(x.astype(np.int32))  # no integer kernels
        assert not cuda.use_kernels(x.astype(np.float16))
    assert not cuda.use_kernels(x)


def test_kernel_arguments_are_packed_by_the_convention():
    packed = cuda.pack_args((3, 2.5, np.zeros(2, np.float32)), np.float32)
    assert type(packed[0]) is np.int64 and type(packed[1]) is np.float32
    assert isinstance(packed[2], np.ndarray)
    with pytest.raises(TypeError, match="flags as ints"):
        cuda.pack_args((True,), np.float64)
    kernel = cuda.KERNELS["gelu_forward"]
    with pytest.raises(TypeError, match="no kernel for dtype float16"):
        kernel(4, dtype=np.float16)


def test_the_emulator_refuses_a_non_contiguous_array():
    """A kernel indexes its arrays as C-contiguous: the emulator catches glue that forgets."""
    x = np.zeros((4, 4))[:, ::2]
    with pytest.raises(AssertionError, match="non-contiguous"):
        cuda_emulator.run(cuda.KERNELS["gelu_forward"], 8, (x,), np.dtype(np.float64))


def test_every_kernel_source_compiles_for_both_dtypes():
    kernels = list(cuda.KERNELS.values())
    assert len(kernels) == 8
    assert {k.file for k in kernels} == {"conv.cu", "pool.cu", "activation.cu"}
    for kernel in kernels:
        for dtype in (np.float32, np.float64):
            lib = cuda_emulator.library(cuda.source_for(kernel.source, dtype))
            assert hasattr(lib, kernel.name)


def test_a_drawn_array_is_unchanged_by_emulation():
    """The emulated GELU reads its input without writing to it."""
    x = np.linspace(-4, 4, 15).reshape(3, 5)
    before = x.copy()
    with recording():
        F.gelu(mi.tensor(x))
    np.testing.assert_array_equal(x, before)


# -- training steps through the GPU path, on the CPU -------------------------------------------
def test_the_biases_before_batch_norm_have_no_gradient_but_rounding():
    """What the cross-backend training check's tolerance relies on (test_gpu.py)."""
    from test_gpu import _BEFORE_BATCH_NORM, _tiny_model

    model = _tiny_model("numpy")
    x = np.random.default_rng(2).standard_normal((8, 3, 32, 32)).astype(np.float32)
    F.cross_entropy(model(mi.tensor(x)), np.arange(8) % 10).backward()
    grads = {k: np.abs(p.grad.numpy()).max() for k, p in model.named_parameters()}
    largest = max(grads.values())
    for key in _BEFORE_BATCH_NORM:
        assert grads[key] < 1e-5 * largest, (key, grads[key], largest)


def test_training_steps_through_the_gpu_path_agree_with_numpy():
    """test_gpu.py's cross-backend training check, with the GPU path run on the CuPy stand-in
    (the emulated kernels: other summation orders, as on a GPU)."""
    import standin_cupy
    from test_gpu import _STEPS, _train, assert_training_agrees

    cpu = _train("numpy", _STEPS)
    with standin_cupy.installed():
        gpu = _train("cupy", _STEPS)
    assert_training_agrees(*cpu, *gpu)
