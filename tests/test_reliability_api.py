"""Misusing the public API gives a clear error, never a silent wrong answer or a traceback from
deep inside NumPy.

This file specifies, beyond what test_model, test_autograd, test_nn, test_nn_ops, test_backend
and test_predict already pin down:

* the model refuses, before any operation runs, images of another rank or channel count, an
  empty batch, an image size its stages cannot divide, integer/boolean/complex images and
  images on another backend than its parameters, naming the expected and the given shape or
  dtype; it accepts NumPy arrays and casts float16 images up to its parameters' dtype exactly;
* ``backward`` refuses a gradient of a non-floating dtype, of a shape that is only
  broadcastable, ``True`` passed where ``retain_graph`` was meant, and a second pass through a
  freed model graph (naming ``retain_graph``); with ``retain_graph=True`` every gradient is
  exactly doubled; writing into ``.data`` is not tracked (no version counters), as documented;
* arrays of two backends never meet silently (the check runs here with a stand-in array
  class; the real CuPy case runs on a GPU machine);
* ``Module.load_state_dict`` is all-or-nothing, lists missing/unexpected keys and shape
  mismatches by name (long lists cut short with a count), hints at a ``module.`` prefix, and
  refuses complex values, non-integral counts and non-bool ``strict``;
* the command lines (predict, validate, demo) exit with status 2 and one ``error:`` line (or
  argparse's usage message), with no traceback, for bad arguments and files;
* cross-entropy of logits up to float32's limits is finite where PyTorch's is, equal to it,
  has a finite gradient and raises no floating-point warning.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import _cupy_skip_reason  # the suite's own CuPy check

import mini_iformer as mi
import mini_iformer.functional as F
from mini_iformer import autograd, backend, checkpoint, demo, nn, predict, validate
from mini_iformer.data.testing import write_cifar_batches
from mini_iformer.models import create_model
from mini_iformer.nn import module as module_mod

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny():
    """iformer_cifar_tiny in evaluation mode, seeded."""
    mi.random.manual_seed(0)
    return create_model("iformer_cifar_tiny").eval()


def _images(shape=(2, 3, 32, 32), dtype=np.float32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


class _DeviceArray(np.ndarray):
    """Stands in for an array of another backend (a CuPy array) on a machine without one."""

    def get(self) -> np.ndarray:
        return np.asarray(self).view(np.ndarray).copy()


@pytest.fixture
def fake_device(monkeypatch):
    """Make :class:`_DeviceArray` count as a "cupy" array; return a host -> device function."""
    monkeypatch.setattr(backend, "_ARRAY_TYPES", [(_DeviceArray, "cupy"), (np.ndarray, "numpy")])
    return lambda a: np.array(a).view(_DeviceArray)


# =============================================================================================
# 1. Model input
# =============================================================================================
@pytest.mark.parametrize("shape, dtype, error, message", [
    ((3, 32, 32), np.float32, ValueError,
     r"expected images of shape \(B, 3, H, W\), got shape \(3, 32, 32\) \(add the batch axis"),
    ((1, 2, 3, 32, 32), np.float32, ValueError,
     r"expected images of shape \(B, 3, H, W\), got shape \(1, 2, 3, 32, 32\)"),
    ((2, 4, 32, 32), np.float32, ValueError,
     r"expected images of shape \(B, 3, H, W\), got shape \(2, 4, 32, 32\)"),
    ((0, 3, 32, 32), np.float32, ValueError,
     r"with B >= 1, got an empty batch of shape \(0, 3, 32, 32\)"),
    ((2, 3, 0, 32), np.float32, ValueError, r"at least one pixel, got 0x32"),
    ((2, 3, 4, 4), np.float32, ValueError,
     r"input of 4x4 gives stage 2 a 1x1 token map.*multiples of 8 \(e\.g\. 32\)"),
    ((2, 3, 1, 1), np.float32, ValueError, r"input of 1x1 gives stage 1 a 1x1 token map"),
    ((2, 3, 32, 44), np.float32, ValueError, r"32x44 gives stage 2 a 8x11 token map"),
    ((2, 3, 32, 32), np.uint8, TypeError, r"floating-point images, got dtype uint8"),
    ((2, 3, 32, 32), np.bool_, TypeError, r"floating-point images, got dtype bool"),
    ((2, 3, 32, 32), np.complex64, TypeError, r"floating-point images, got dtype complex64"),
], ids=["3-D", "5-D", "4-channels", "empty-batch", "zero-height", "too-small", "one-pixel",
        "odd-width", "uint8", "bool", "complex"])
def test_bad_images_are_refused_naming_the_expected_and_given_shape_or_dtype(
        tiny, monkeypatch, shape, dtype, error, message):
    ran = []
    monkeypatch.setattr(autograd, "_profiler", lambda fn, phase, seconds: ran.append(fn.name))
    for images in (np.zeros(shape, dtype=dtype), mi.tensor(np.zeros(shape, dtype=dtype))):
        with pytest.raises(error, match=r"^InceptionTransformer: .*" + message):
            tiny(images)
    assert ran == []  # refused before any operation ran


@pytest.mark.parametrize("value, name", [("images.png", "str"), (None, "NoneType"),
                                         ({"x": 1}, "dict")])
def test_something_that_is_not_an_image_array_is_a_type_error_naming_its_type(tiny, value, name):
    with pytest.raises(TypeError, match=rf"expected images as a Tensor or an array of shape "
                                        rf"\(B, 3, H, W\), got {name}"):
        tiny(value)


def test_a_numpy_array_is_accepted_and_gives_the_same_logits_as_a_tensor(tiny):
    x = _images()
    with mi.no_grad():
        from_array, from_tensor = tiny(x), tiny(mi.tensor(x))
    assert from_array.dtype == np.float32
    np.testing.assert_array_equal(from_array.numpy(), from_tensor.numpy())


def test_float16_images_are_cast_up_to_float32_exactly(tiny):
    x16 = _images(dtype=np.float16)
    with mi.no_grad():
        half, single = tiny(x16), tiny(x16.astype(np.float32))
    assert half.dtype == np.float32
    np.testing.assert_array_equal(half.numpy(), single.numpy())
    x = mi.tensor(x16, requires_grad=True)
    tiny(x).sum().backward()
    assert x.grad.dtype == np.float16 and np.isfinite(x.grad.numpy()).all()


def test_float64_images_run_the_float32_model_in_float64_by_the_promotion_rules(tiny):
    x = _images(dtype=np.float64)
    with mi.no_grad():
        wide, single = tiny(x), tiny(x.astype(np.float32))
    assert wide.dtype == np.float64 and single.dtype == np.float32
    np.testing.assert_allclose(wide.numpy(), single.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [(8, 8), (24, 40), (64, 32)])
def test_every_size_check_image_size_accepts_runs_with_resized_position_embeddings(tiny, size):
    tiny.check_image_size(*size)
    with mi.no_grad():
        out = tiny(_images((1, 3, *size)))
    assert out.shape == (1, 10) and np.isfinite(out.numpy()).all()


def test_check_image_size_names_the_released_models_step():
    model = mi.models.InceptionTransformer(img_size=224, embed_dims=(8, 8, 8, 8),
                                           depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
                                           attention_heads=(1, 1, 1, 1), num_classes=2)
    model.check_image_size(240, 320)
    with pytest.raises(ValueError, match=r"232x224 gives stage 2 a 29x28 token map.*multiples of "
                                         r"16 \(e\.g\. 224\)"):
        model.check_image_size(232, 224)


def test_images_on_another_backend_than_the_model_are_refused_naming_both(tiny, fake_device):
    x = mi.Tensor._make(fake_device(_images()))
    assert x.backend == "cupy" and tiny.pos_embed1.backend == "numpy"
    with pytest.raises(mi.BackendMismatchError,
                       match=r"images are on the cupy backend but the model's parameters are on "
                             r"numpy"):
        tiny(x)


# =============================================================================================
# 2. Autograd
# =============================================================================================
def _tiny_loss(model):
    x = mi.tensor(_images())
    return F.cross_entropy(model(x), np.array([1, 7]))


def test_a_second_backward_through_a_freed_model_graph_names_retain_graph(tiny):
    loss = _tiny_loss(tiny)
    loss.backward()
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        loss.backward()
    tiny.zero_grad()


def test_retain_graph_makes_every_model_gradient_exactly_twice_the_first(tiny):
    tiny.zero_grad()
    loss = _tiny_loss(tiny)
    loss.backward(retain_graph=True)
    first = {name: p.grad.numpy().copy() for name, p in tiny.named_parameters()}
    loss.backward()
    for name, p in tiny.named_parameters():
        np.testing.assert_array_equal(p.grad.numpy(), 2 * first[name], err_msg=name)
    tiny.zero_grad()


@pytest.mark.parametrize("grad, dtype", [
    (np.ones((2, 3), np.int64), "int64"), (np.ones((2, 3), bool), "bool"),
    (np.ones((2, 3), np.complex64), "complex64"), (np.full((2, 3), "a"), "<U1"),
    (mi.tensor(np.ones((2, 3), np.int32)), "int32"),
])
def test_a_gradient_of_a_non_floating_dtype_is_refused_before_anything_runs(grad, dtype):
    x = mi.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = x * 3.0
    with pytest.raises(TypeError, match=rf"grad must have a floating-point dtype like the tensor "
                                        rf"\(float32\), got {dtype}"):
        y.backward(grad)
    assert x.grad is None
    y.backward(np.ones((2, 3), np.float32))  # the graph was not consumed
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 3.0))


def test_a_non_numeric_python_gradient_is_a_type_error_naming_the_shape():
    y = mi.tensor(np.ones(2), requires_grad=True) * 2.0
    for bad in (object(), [["a", "b"]], {"grad": 1.0}):
        with pytest.raises(TypeError, match=r"grad must be a Tensor, an array or numbers of "
                                            r"shape \(2,\)"):
            y.backward(bad)


def _re_shape(shape: tuple[int, ...]) -> str:
    return re.escape(str(tuple(shape)))


@pytest.mark.parametrize("shape, grad_shape", [((2, 3), (1, 3)), ((2, 3), ()), ((1,), ()),
                                               ((), (1,)), ((2, 3), (3, 2))])
def test_a_gradient_that_only_broadcasts_to_the_tensor_is_refused(shape, grad_shape):
    y = mi.tensor(np.ones(shape), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=rf"grad has shape {_re_shape(grad_shape)} but the tensor "
                                         rf"has shape {_re_shape(shape)}; the gradient must have "
                                         "exactly the tensor's shape"):
        y.backward(np.ones(grad_shape))


def test_true_passed_as_the_gradient_points_to_retain_graph():
    loss = (mi.tensor([1.0, 2.0], requires_grad=True) * 2.0).sum()
    with pytest.raises(TypeError, match=r"grad=True is not a gradient.*retain_graph= by keyword"):
        loss.backward(True)
    with pytest.raises(TypeError, match=r"retain_graph must be True or False, got str 'yes'"):
        loss.backward(retain_graph="yes")


def test_a_float64_gradient_is_rounded_to_the_float32_tensor_and_lists_are_read_as_float32():
    x = mi.tensor(np.zeros(2, np.float32), requires_grad=True)
    (x * 1.0).backward(np.array([0.1, 1e-50]), retain_graph=True)
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.array([0.1, 1e-50]).astype(np.float32))
    x.grad = None
    (x * 1.0).backward([1, 2])  # Python numbers take the tensor's dtype
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])


def test_requires_grad_must_be_a_bool_and_only_floating_tensors_take_it():
    with pytest.raises(TypeError, match=r"requires_grad must be True or False, got str 'yes'"):
        mi.tensor([1.0], requires_grad="yes")
    for make, dtype in [(lambda: mi.zeros(2, dtype=np.int64, requires_grad=True), "int64"),
                        (lambda: nn.Parameter(np.array([1, 2], np.int32)), "int32"),
                        (lambda: mi.tensor([True, False]).requires_grad_(), "bool")]:
        with pytest.raises(TypeError, match=rf"only floating-point tensors can require "
                                            rf"gradients \(this one is {dtype}\)"):
            make()
    t = mi.tensor([1.0], requires_grad=np.True_)
    assert t.requires_grad is True


def test_augmented_assignment_rebinds_so_the_graph_keeps_the_old_values():
    a = mi.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = a * a
    saved = b
    b += 10.0  # a new tensor: no in-place operation exists
    assert b is not saved
    (saved * b).sum().backward()  # d/da (a^2 (a^2 + 10)) = 4a^3 + 20a
    np.testing.assert_allclose(a.grad.numpy(), 4 * a.numpy() ** 3 + 20 * a.numpy())


def test_writing_into_data_after_the_forward_is_not_tracked_as_documented():
    a = mi.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = a * 3.0
    loss = (b * b).sum()
    b.data[...] = 0.0  # no version counter notices: backward uses the new values
    loss.backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0])  # not 18 a
    assert "No in-place operations, no version counters" in autograd.__doc__


def test_an_error_numpy_cannot_rebuild_keeps_its_type_and_message():
    class IntoInt(mi.Function):
        name = "into_int"

        def forward(self, a):
            out = np.zeros(a.shape, np.int64)
            np.add(out, a, out=out)  # float into int: NumPy's _UFuncOutputCastingError
            return out

    with pytest.raises(TypeError, match=r"^into_int: Cannot cast ufunc 'add' output.*input "
                                        r"shapes: \(3,\)"):
        IntoInt.apply(mi.tensor(np.ones(3)))


@pytest.mark.parametrize("layer, x, message", [
    (nn.LayerNorm(4), np.ones((3, 4), np.int64), "LayerNorm: expected a floating-point input, "
                                                 "got dtype int64"),
    (nn.Linear(4, 2), np.ones((3, 4), np.int32), "Linear: expected a floating-point input, "
                                                 "got dtype int32"),
    (nn.BatchNorm2d(3).eval(), np.ones((2, 3, 4, 4), bool), "BatchNorm2d: expected a "
                                                            "floating-point input, got dtype bool"),
    (nn.BatchNorm2d(3).eval(), np.ones((0, 3, 4, 4), np.float32), r"BatchNorm2d: got an empty "
                                                                  r"input of shape \(0, 3, 4, 4\)"),
    (nn.Conv2d(3, 4, 3), np.ones((0, 3, 8, 8), np.float32), r"Conv2d: got an empty input of "
                                                           r"shape \(0, 3, 8, 8\)"),
])
def test_layers_refuse_non_floating_and_empty_input_by_name(layer, x, message):
    with pytest.raises((TypeError, ValueError), match=message):
        layer(mi.tensor(x))


# =============================================================================================
# 3. Backends
# =============================================================================================
def test_a_gradient_on_another_backend_is_refused_naming_both(fake_device):
    y = mi.tensor(np.ones(3), requires_grad=True) * 2.0
    with pytest.raises(mi.BackendMismatchError,
                       match=r"backward: inputs live on different backends \(numpy and cupy\)"):
        y.backward(fake_device(np.ones(3)))


def test_load_state_dict_brings_values_of_another_backend_to_the_parameters_backend(fake_device):
    m = nn.Linear(2, 3)
    state = {k: fake_device(v.numpy() + 1) for k, v in m.state_dict().items()}
    m.load_state_dict(state)
    for key, t in m.state_dict().items():
        assert type(t.data) is np.ndarray, key
        np.testing.assert_array_equal(t.numpy(), np.asarray(state[key]))


@pytest.mark.gpu
def test_numpy_and_cupy_tensors_never_meet_in_ops_backward_or_the_model():
    reason = _cupy_skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        host_model = create_model("iformer_cifar_tiny").eval()
        host = mi.tensor(np.ones(3), requires_grad=True)
        mi.set_backend("cupy")
        device = mi.ones(3)
        images = mi.tensor(_images())
        with pytest.raises(mi.BackendMismatchError, match=r"different backends \((numpy and "
                                                          r"cupy|cupy and numpy)\)"):
            host + device
        with pytest.raises(mi.BackendMismatchError, match=r"images are on the cupy backend but "
                                                          r"the model's parameters are on numpy"):
            host_model(images)
        with pytest.raises(mi.BackendMismatchError, match=r"backward: .*numpy and cupy"):
            (host * 2.0).backward(device)
        # a state dict from the GPU loads into the host model, which stays on the host
        device_model = create_model("iformer_cifar_tiny")
        host_model.load_state_dict(device_model.state_dict())
        assert {p.backend for p in host_model.parameters()} == {"numpy"}
    finally:
        mi.set_backend("numpy")


# =============================================================================================
# 4. load_state_dict: all or nothing, every problem by name
# =============================================================================================
def _snapshot(model):
    """(array object, copy of its values) for every parameter and buffer, by name."""
    return {name: (t.data, t.numpy().copy(), t.dtype)
            for name, t in [*model.named_parameters(), *model.named_buffers()]}


def _assert_unchanged(model, before):
    after = _snapshot(model)
    assert after.keys() == before.keys()
    for name, (array, values, dtype) in before.items():
        assert after[name][0] is array, name  # not even replaced by an equal array
        assert after[name][2] == dtype, name
        np.testing.assert_array_equal(after[name][1], values, err_msg=name)


def test_weights_of_another_configuration_are_refused_by_key_and_change_nothing():
    mi.random.manual_seed(1)
    model = create_model("iformer_cifar")
    before = _snapshot(model)
    state = create_model("iformer_cifar_tiny").state_dict()
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    for part in ["load_state_dict into InceptionTransformer failed, nothing was changed",
                 "missing keys: blocks1.1.norm1.weight, ",
                 "(and 90 more; 110 in all)",
                 "pos_embed1: shape (1, 16, 16, 24) in the state dict, (1, 16, 16, 48) in the "
                 "model",
                 "patch_embed.proj1.weight: shape (12, 3, 3, 3) in the state dict, (24, 3, 3, 3)",
                 "... and 89 more keys with a wrong shape or value"]:
        assert part in message, (part, message)
    assert "unexpected keys" not in message and "hint" not in message
    assert len(message.splitlines()) == 1 + 1 + 20 + 1  # title, missing, 20 shapes, the rest
    _assert_unchanged(model, before)


def test_keys_with_a_module_prefix_get_a_hint_and_change_nothing(tiny):
    before = _snapshot(tiny)
    state = {"module." + k: v.numpy() for k, v in tiny.state_dict().items()}
    with pytest.raises(ValueError, match=r"hint: every key of the state dict is the model's with "
                                         r"the prefix 'module\.' added; load "
                                         r"\{k\.removeprefix\('module\.'\)"):
        tiny.load_state_dict(state)
    _assert_unchanged(tiny, before)


def test_one_renamed_key_is_listed_as_missing_and_unexpected_without_a_hint(tiny):
    before = _snapshot(tiny)
    state = {k: v.numpy() + 1 for k, v in tiny.state_dict().items()}
    state["head.weights"] = state.pop("head.weight")
    with pytest.raises(ValueError) as info:
        tiny.load_state_dict(state)
    lines = str(info.value).splitlines()
    assert lines[1:] == ["  missing keys: head.weight", "  unexpected keys: head.weights"]
    _assert_unchanged(tiny, before)


@pytest.mark.parametrize("key, value, message", [
    ("head.bias", np.ones(10, np.complex128), r"head\.bias: dtype complex128 is not a real "
                                              r"numeric type \(the model holds float32\)"),
    ("patch_embed.norm1.num_batches_tracked", np.array(2.5), r"num_batches_tracked: "
                                                             r"non-integral or non-finite values "
                                                             r"for the int64 buffer"),
    ("patch_embed.norm1.num_batches_tracked", np.array(np.nan), r"non-integral or non-finite"),
    ("head.bias", "ten floats", r"head\.bias: dtype <U10 is not a real numeric type"),
    ("head.bias", [[1.0, 2.0], [3.0]], r"head\.bias: not an array \(list: "),
    ("head.bias", np.ones((1, 10)), r"head\.bias: shape \(1, 10\) in the state dict, \(10,\) "
                                    r"in the model"),
], ids=["complex", "fractional-count", "nan-count", "string", "ragged", "extra-axis"])
def test_a_value_of_the_wrong_kind_is_refused_by_key_and_changes_nothing(tiny, key, value,
                                                                         message):
    before = _snapshot(tiny)
    state = {k: v.numpy() * 2 for k, v in tiny.state_dict().items()}
    state[key] = value
    for strict in (True, False):
        with pytest.raises(ValueError, match=message):
            tiny.load_state_dict(state, strict=strict)
        _assert_unchanged(tiny, before)


def test_non_string_keys_are_listed_not_a_crash(tiny):
    state = dict(tiny.state_dict())
    state[3] = np.ones(2)
    with pytest.raises(ValueError, match=r"unexpected keys: 3$"):
        tiny.load_state_dict(state)
    result = tiny.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["3"] and result.missing_keys == []


def test_strict_false_with_one_wrong_shape_loads_nothing_at_all(tiny):
    before = _snapshot(tiny)
    state = {k: v.numpy() + 1 for k, v in tiny.state_dict().items()}
    del state["norm.bias"]
    state["head.bias"] = np.ones(11)
    with pytest.raises(ValueError, match=r"head\.bias: shape \(11,\)") as info:
        tiny.load_state_dict(state, strict=False)
    assert "missing keys" not in str(info.value)  # not an error when not strict
    _assert_unchanged(tiny, before)


def test_strict_must_be_a_bool(tiny):
    with pytest.raises(TypeError, match=r"strict must be True or False, got 'no'"):
        tiny.load_state_dict(tiny.state_dict(), strict="no")


def test_a_conversion_failing_midway_changes_nothing(tiny, monkeypatch):
    before = _snapshot(tiny)
    real, calls = module_mod._converted_like, []

    def flaky(value, t):
        calls.append(1)
        if len(calls) == 5:
            raise MemoryError("out of memory while copying")
        return real(value, t)

    monkeypatch.setattr(module_mod, "_converted_like", flaky)
    with pytest.raises(MemoryError):
        tiny.load_state_dict({k: v.numpy() + 1 for k, v in tiny.state_dict().items()})
    assert len(calls) == 5
    _assert_unchanged(tiny, before)


# =============================================================================================
# 5. Command lines
# =============================================================================================
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An image, a file that is not a checkpoint, a tiny model's checkpoint and CIFAR data."""
    from PIL import Image

    root = tmp_path_factory.mktemp("cli")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "cat.png")
    (root / "notes.npz").write_bytes(b"these are not weights")
    mi.random.manual_seed(0)
    checkpoint.save(create_model("iformer_cifar_tiny").state_dict(), root / "tiny.npz")
    rng = np.random.default_rng(0)
    write_cifar_batches(root / "cifar", rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
                        rng.integers(0, 10, 40), test_size=20)
    return root


def _one_error_line(capsys, *expected: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for part in expected:
        assert part in lines[0], (part, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv, expected", [
    (["--batch-size", "-1", "{cat}"], ["--batch-size", "must be at least 1, got -1"]),
    (["--model", "resnet50", "{cat}"], ["invalid choice: 'resnet50'"]),
    (["{dir}/missing.jpg"], ["no such image file", "missing.jpg"]),
    (["--checkpoint", "{dir}/missing.npz", "{cat}"], ["no such checkpoint file", "missing.npz"]),
    (["--model", "iformer_cifar_tiny", "--checkpoint", "{dir}/notes.npz", "{cat}"],
     ["notes.npz", "not a checkpoint"]),
    (["--model", "iformer_cifar_tiny", "--checkpoint", "{dir}/tiny.npz", "{cat}"],
     ["does not fit iformer_cifar_tiny", "head.weight: shape (10, 96) in the state dict, "
                                         "(1000, 96) in the model"]),
    (["--model", "iformer_cifar_tiny", "--img-size", "36", "{cat}"],
     ["--img-size 36 does not fit iformer_cifar_tiny", "36x36 gives stage 2 a 9x9 token map"]),
], ids=["negative-batch", "unknown-model", "missing-image", "missing-checkpoint",
        "not-a-checkpoint", "another-head", "bad-img-size"])
def test_predict_user_errors_exit_2_with_one_line(files, capsys, argv, expected):
    argv = [a.format(cat=files / "cat.png", dir=files) for a in argv]
    assert predict.main(argv) == 2
    _one_error_line(capsys, *expected)


@pytest.mark.parametrize("argv, expected", [
    (["--batch-size", "-1"], ["--batch-size", "must be at least 1, got -1"]),
    (["--workers", "-1"], ["--workers", "must be at least 0, got -1"]),
    (["--crop-pct", "nan"], ["--crop-pct", "must be in (0, 1]"]),
    (["--model", "iformer_huge"], ["invalid choice: 'iformer_huge'"]),
    (["--checkpoint", "{dir}/missing.npz"], ["no such checkpoint file", "missing.npz"]),
    (["--checkpoint", "{dir}"], ["not a file", "--checkpoint names a weights file"]),
    (["--checkpoint", "{dir}/notes.npz"], ["notes.npz", "not a checkpoint"]),
    (["--model", "iformer_cifar"], ["tiny.npz does not fit iformer_cifar",
                                    "missing keys: blocks1.1.norm1.weight",
                                    "pos_embed1: shape (1, 16, 16, 24) in the state dict"]),
    (["--img-size", "64"], ["--img-size applies to --dataset folder only"]),
    (["--data-dir", "{dir}/nowhere"], ["no CIFAR-10 data", "nowhere"]),
], ids=["negative-batch", "negative-workers", "nan-crop", "unknown-model", "missing-checkpoint",
        "directory-checkpoint", "not-a-checkpoint", "another-model", "img-size-for-cifar",
        "missing-data"])
def test_validate_user_errors_exit_2_with_one_line(files, capsys, argv, expected):
    base = {"--model": "iformer_cifar_tiny", "--checkpoint": "{dir}/tiny.npz",
            "--data-dir": "{dir}/cifar", "--dataset": "cifar10"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    full = [part.format(dir=files) for item in base.items() for part in item] + ["--no-verify"]
    assert validate.main(full) == 2
    _one_error_line(capsys, *expected)


def test_validate_still_scores_a_good_checkpoint(files, capsys):
    assert validate.main(["--model", "iformer_cifar_tiny", "--checkpoint",
                          str(files / "tiny.npz"), "--dataset", "cifar10", "--data-dir",
                          str(files / "cifar"), "--no-verify", "--workers", "0"]) == 0
    assert " * Acc@1 " in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["--steps", "-1"], "--steps and --hidden must be positive"),
    (["--hidden", "0"], "--steps and --hidden must be positive"),
    (["--lr", "inf"], "--lr a finite number greater than 0, got --steps 1500 --hidden 32 --lr inf"),
    (["--lr", "nan"], "--lr nan"),
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
    (["--steps", "many"], "argument --steps: invalid int value: 'many'"),
])
def test_demo_bad_arguments_exit_2_with_the_usage_message(capsys, argv, expected):
    with pytest.raises(SystemExit) as info:
        demo.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m mini_iformer.demo")
    last = err.splitlines()[-1]
    assert last.startswith("python -m mini_iformer.demo: error: ") and expected in last, err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, first_line", [
    (["mini_iformer.validate", "--model", "iformer_cifar_tiny", "--checkpoint", "{dir}/gone.npz",
      "--data-dir", "{dir}/cifar", "--dataset", "cifar10"], "error: no such checkpoint file"),
    (["mini_iformer.demo", "--seed", "-1"], "usage: python -m mini_iformer.demo"),
], ids=["validate", "demo"])
def test_no_traceback_reaches_the_terminal(files, argv, first_line):
    argv = [a.format(dir=files) for a in argv]
    result = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(first_line) and "Traceback" not in result.stderr
    assert result.stdout == ""


# =============================================================================================
# 6. Cross-entropy at the limits of the floating-point range
# =============================================================================================
_F32_MAX = float(np.finfo(np.float32).max)
_LOGITS = {
    "1e4": [[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]],
    "3e38": [[3e38, -3e38, 0.0], [-3e38, 3e38, 1.0]],
    "float32-max": [[_F32_MAX, -_F32_MAX, 0.0], [0.0, 0.0, 0.0]],
    "all-equal-huge": [[3e38, 3e38, 3e38], [-3e38, -3e38, -3e38]],
    "huge-and-tiny": [[1e-30, 3e38, -1e4], [1e-38, -1e-45, 3e38]],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_LOGITS))
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("target", ["indices", "soft"])
def test_cross_entropy_of_extreme_logits_equals_torch_with_a_finite_gradient(
        dtype, name, smoothing, target):
    z = np.array(_LOGITS[name], dtype=dtype)
    t = (np.array([2, 1]) if target == "indices"
         else np.array([[0.0, 0.5, 0.5], [0.25, 0.0, 0.75]], dtype=dtype))
    zt = mi.tensor(z, requires_grad=True)
    loss = F.cross_entropy(zt, t, label_smoothing=smoothing, reduction="none")  # no warning
    loss.backward(np.ones(2, dtype))  # (loss.sum() itself may overflow float32)
    tz = torch.tensor(z, requires_grad=True)
    t_loss = TF.cross_entropy(tz, torch.tensor(t), label_smoothing=smoothing, reduction="none")
    t_loss.sum().backward()
    ours, theirs = loss.numpy(), t_loss.detach().numpy()
    finite = np.isfinite(theirs)
    assert loss.dtype == dtype
    np.testing.assert_array_equal(np.isfinite(ours), finite)  # finite exactly where torch's is
    np.testing.assert_array_equal(ours[~finite], theirs[~finite])  # +inf where torch's is
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-6)
    grad = zt.grad.numpy()
    assert np.isfinite(grad).all() and np.isfinite(tz.grad.numpy()).all()
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-5, atol=1e-7)
    mean = F.cross_entropy(mi.tensor(z), t, label_smoothing=smoothing).item()
    t_mean = TF.cross_entropy(torch.tensor(z), torch.tensor(t), label_smoothing=smoothing).item()
    assert mean == pytest.approx(t_mean, rel=1e-6) or (np.isinf(mean) and mean == t_mean)
