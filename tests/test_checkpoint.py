"""Checkpoints: our .npz round trip, torch.save files read without torch, hostile files refused.

PyTorch writes the reference files here; ``load`` must read them exactly. The hostile files
are hand-assembled pickles (see ``_assemble``) that would create a canary file if anything in
them ran; each test checks the refusal, the name it gives, and that the canary is absent.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mini_iformer as mi
from mini_iformer import checkpoint
from mini_iformer.checkpoint import CheckpointError, load, save

ROOT = Path(__file__).resolve().parents[1]


def _expected(t: torch.Tensor) -> np.ndarray:
    """What ``load`` should return for a torch tensor: the same values, bfloat16 as float32."""
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def _assert_same(loaded: dict, reference: dict) -> None:
    assert list(loaded) == list(reference)
    for key, value in reference.items():
        want = _expected(value) if isinstance(value, torch.Tensor) else np.asarray(value)
        got = loaded[key]
        assert isinstance(got, np.ndarray), key
        assert (got.dtype, got.shape) == (want.dtype, want.shape), key
        np.testing.assert_array_equal(got, want, err_msg=key, strict=True)


def _refused(path: Path, pattern: str) -> CheckpointError:
    """Assert ``load(path)`` raises CheckpointError naming the file and matching ``pattern``."""
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(pattern, message), message
    return info.value


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    net(torch.randn(2, 3, 5, 5))  # one training step: running stats and num_batches_tracked move
    return net


# -- a tiny pickle assembler, for files torch would never write ------------------------------

@dataclass
class G:  # GLOBAL: "import module.name"
    module: str
    name: str


@dataclass
class Call:  # REDUCE: fn(*args)
    fn: Any
    args: tuple


@dataclass
class Pid:  # BINPERSID: a persistent id, e.g. a storage reference
    fields: tuple


@dataclass
class Build:  # BUILD: set attributes of obj from state
    obj: Any
    state: Any


@dataclass
class Then:  # evaluate first, memoise it as 0, drop it, then evaluate second (g0 refers to it)
    first: Any
    second: Any


@dataclass
class Memo:  # GET 0
    pass


def _ops(x: Any) -> bytes:
    if isinstance(x, G):
        return f"c{x.module}\n{x.name}\n".encode()
    if isinstance(x, Call):
        return _ops(x.fn) + _ops(tuple(x.args)) + b"R"
    if isinstance(x, Pid):
        return _ops(tuple(x.fields)) + b"Q"
    if isinstance(x, Build):
        return _ops(x.obj) + _ops(x.state) + b"b"
    if isinstance(x, Then):
        return _ops(x.first) + b"p0\n0" + _ops(x.second)
    if isinstance(x, Memo):
        return b"g0\n"
    if isinstance(x, tuple):
        return b"(" + b"".join(map(_ops, x)) + b"t"
    if isinstance(x, list):
        return b"(" + b"".join(map(_ops, x)) + b"l"
    if isinstance(x, dict):
        return b"}(" + b"".join(_ops(k) + _ops(v) for k, v in x.items()) + b"u"
    if isinstance(x, bytes):  # BINBYTES (protocol 2 itself would call _codecs.encode)
        return b"B" + len(x).to_bytes(4, "little") + x
    return pickle.dumps(x, protocol=2)[2:-1]  # int, float, str, bool, None: strip PROTO, STOP


def _assemble(obj: Any) -> bytes:
    return b"\x80\x02" + _ops(obj) + b"."


def _storage(key: str, numel: int, kind: str = "FloatStorage") -> Pid:
    return Pid(("storage", G("torch", kind), key, "cpu", numel))


def _tensor(storage: Any, offset: Any, size: Any, stride: Any) -> Call:
    return Call(G("torch._utils", "_rebuild_tensor_v2"),
                (storage, offset, size, stride, False, Call(G("collections", "OrderedDict"), ())))


def _torch_zip(path: Path, pkl: bytes, members: dict[str, bytes] | None = None,
               byteorder: bytes | None = b"little") -> Path:
    """A file laid out as torch.save lays it out, with the given data.pkl and storages."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        if byteorder is not None:
            z.writestr("archive/byteorder", byteorder)
        for key, data in (members or {}).items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", b"3\n")
    return path


def _rezip(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """Copy a zip member by member through ``change`` (None drops the member); valid CRCs."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = change(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)
    return dst


# -- our .npz ---------------------------------------------------------------------------------

def test_npz_round_trip_keeps_values_dtypes_shapes_and_order(tmp_path):
    rng = np.random.default_rng(0)
    state = {
        "blocks1.0.attn.qkv.weight": rng.standard_normal((6, 4)).astype(np.float32),
        "blocks1.0.norm.num_batches_tracked": np.array(7, dtype=np.int64),
        "a.double": rng.standard_normal(3),
        "z.tensor": mi.tensor(np.arange(4.0, dtype=np.float32)),
        "b.half.mask": (np.arange(5) % 2 == 0),
        "c.scalar": np.float16(1.5),
        "d.empty": np.zeros((0, 3), dtype=np.float32),
        "e.transposed": np.arange(6, dtype=np.int32).reshape(2, 3).T,
    }
    save(state, tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    expected = {k: v.data if isinstance(v, mi.Tensor) else np.asarray(v) for k, v in state.items()}
    _assert_same(loaded, expected)
    assert loaded["blocks1.0.norm.num_batches_tracked"].shape == ()
    with np.load(tmp_path / "m.npz") as plain:  # a standard .npz: NumPy reads it directly
        assert list(plain.files) == list(state)


def test_save_takes_tensors_of_either_backend(tmp_path, backend_name):
    weight = mi.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert weight.backend == backend_name
    save({"w": weight, "raw": weight.data}, tmp_path / "b.npz")
    loaded = load(tmp_path / "b.npz")
    for key in ("w", "raw"):
        np.testing.assert_array_equal(loaded[key], np.arange(6.0, dtype=np.float32).reshape(2, 3),
                                      strict=True)


def test_save_writes_exactly_the_path_given(tmp_path):
    save({"w": np.ones(2)}, tmp_path / "model.ckpt")
    assert os.listdir(tmp_path) == ["model.ckpt"]
    np.testing.assert_array_equal(load(tmp_path / "model.ckpt")["w"], np.ones(2))
    save({"w": np.zeros(3)}, str(tmp_path / "model.ckpt"))  # overwrites in place
    np.testing.assert_array_equal(load(tmp_path / "model.ckpt")["w"], np.zeros(3))


def test_keys_that_are_np_savez_keywords_are_ordinary_keys(tmp_path):
    state = {"file": np.ones(1), "allow_pickle": np.zeros(1), "args": np.arange(2), "kwds": np.eye(2)}
    save(state, tmp_path / "k.npz")
    _assert_same(load(tmp_path / "k.npz"), state)


def test_a_torch_checkpoint_converts_to_npz(tmp_path):
    state = _model().state_dict()
    torch.save(state, tmp_path / "t.pth")
    save(load(tmp_path / "t.pth"), tmp_path / "a.npz")
    _assert_same(load(tmp_path / "a.npz"), state)


@pytest.mark.parametrize("value, pattern", [
    (np.array([{}], dtype=object), "entry 'bad' has dtype object"),
    (torch.ones(2), "entry 'bad' is a torch.Tensor, not an array or Tensor"),
    ([1.0, 2.0], "entry 'bad' is a builtins.list"),
])
def test_save_refuses_values_it_cannot_store(tmp_path, value, pattern):
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / "x.npz")) + ": " + pattern):
        save({"good": np.ones(1), "bad": value}, tmp_path / "x.npz")
    with pytest.raises(CheckpointError, match="keys must be non-empty strings"):
        save({3: np.ones(1)}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope[/\\]m\.npz: cannot create a file in"):
        save({"w": np.ones(1)}, tmp_path / "nope" / "m.npz")


@pytest.mark.parametrize("where", [(np.lib.format, "write_array"), (os, "fsync"), (os, "replace")],
                         ids=["mid-archive", "fsync", "rename"])
@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "ctrl-c"])
def test_a_failed_write_leaves_the_previous_file_alone(tmp_path, monkeypatch, where, error):
    target = tmp_path / "m.npz"
    save({"old": np.arange(3.0)}, target)
    before = target.read_bytes()
    module, name = where
    real = getattr(module, name)
    calls = []

    def fail_second_time(*args, **kwargs):  # write_array: the first array goes in, then fail
        calls.append(1)
        if len(calls) == 2 or name != "write_array":
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fail_second_time)
    expected = KeyboardInterrupt if isinstance(error, KeyboardInterrupt) else CheckpointError
    with pytest.raises(expected):
        save({"new": np.ones(1000), "other": np.ones(5)}, target)
    monkeypatch.undo()
    assert calls, "the failure was never triggered"
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_npz_with_a_pickled_object_array_is_refused_unread(tmp_path):
    canary = tmp_path / "canary"
    payload = np.array([_SystemCall(f"touch '{canary}'")], dtype=object)
    np.savez(tmp_path / "evil.npz", w=payload)  # np.savez pickles object arrays
    _refused(tmp_path / "evil.npz", r"unreadable \.npz archive .*allow_pickle=False")
    assert not canary.exists()


# -- torch.save files -------------------------------------------------------------------------

def test_reads_a_torch_model_state_dict(tmp_path):
    state = _model().state_dict()
    torch.save(state, tmp_path / "model.pth")
    loaded = load(tmp_path / "model.pth")
    _assert_same(loaded, state)
    counter = loaded["1.num_batches_tracked"]
    assert counter.dtype == np.int64 and counter.shape == () and counter == 1


def test_reads_views_and_tensors_sharing_one_storage(tmp_path):
    big = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    state = {
        "big": big, "rows": big[2:5], "column": big[:, 7], "stepped": big[1::2, 3::3],
        "transposed": big.t(), "permuted": big.view(2, 3, 10).permute(2, 0, 1),
        "element": big[4, 9], "empty": big[3:3], "expanded": big[0, :4].unsqueeze(0).expand(3, 4),
        "own": torch.arange(5),
    }
    torch.save(state, tmp_path / "views.pth")
    with zipfile.ZipFile(tmp_path / "views.pth") as z:  # all the views share big's storage
        assert sum("/data/" in n and "/.data/" not in n for n in z.namelist()) == 2
    _assert_same(load(tmp_path / "views.pth"), state)


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int32,
          torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.uint16,
          torch.uint32]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reads_every_dtype(tmp_path, dtype):
    values = torch.tensor([[0.0, 1.5, -2.25], [3.0, -0.0, 1e4]], dtype=torch.float64)
    if not dtype.is_floating_point and not dtype.is_complex:
        values = values.abs().round()
    state = {"x": values.to(dtype), "xt": values.to(dtype).t()}
    torch.save(state, tmp_path / "d.pth")
    _assert_same(load(tmp_path / "d.pth"), state)


def test_bfloat16_becomes_float32_bit_for_bit(tmp_path):
    bits = torch.from_numpy(np.array([0x3F80, 0xC000, 0x7F80, 0x0001, 0x8000], np.uint16).view(np.int16))
    state = {"b": bits.view(torch.bfloat16)}
    torch.save(state, tmp_path / "bf.pth")
    got = load(tmp_path / "bf.pth")["b"]
    assert got.dtype == np.float32
    want = np.array([1.0, -2.0, np.inf, 2.0 ** -133, -0.0], dtype=np.float32)
    np.testing.assert_array_equal(got, want, strict=True)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("wrapper", ["model", "state_dict"])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_unwraps_training_checkpoints(tmp_path, wrapper, prefix):
    net = _model()
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(1, 3, 5, 5)).sum().backward()
    optimiser.step()
    state = net.state_dict()
    saved = {prefix + k: v for k, v in state.items()}
    torch.save({wrapper: saved, "epoch": 12, "best": 0.75, "arch": "iformer_small",
                "optimizer": optimiser.state_dict(), "schedule": [1, 2.5, "cosine", None]},
               tmp_path / "ckpt.pth")
    _assert_same(load(tmp_path / "ckpt.pth"), state)


def test_module_prefix_is_kept_unless_every_key_has_it(tmp_path):
    state = {"module.a": torch.ones(1), "b": torch.zeros(1)}
    torch.save(state, tmp_path / "p.pth")
    assert list(load(tmp_path / "p.pth")) == ["module.a", "b"]


def test_parameters_saved_with_keep_vars(tmp_path):
    state = _model().state_dict(keep_vars=True)
    torch.save(state, tmp_path / "p.pth")
    _assert_same(load(tmp_path / "p.pth"), state)


def test_big_endian_files_and_a_missing_byteorder(tmp_path):
    state = {"f": torch.randn(2, 3), "i": torch.arange(-3, 3), "h": torch.randn(4).half(),
             "b": torch.randn(3).bfloat16(), "m": torch.tensor([True, False])}
    torch.save(state, tmp_path / "le.pth")
    itemsize = {str(i): v.element_size() for i, v in enumerate(state.values())}

    def to_big(name: str, data: bytes) -> bytes:
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rpartition("/data/")[2]
        if "/data/" in name and key in itemsize:
            return np.frombuffer(data, f"<u{itemsize[key]}").byteswap().tobytes()
        return data

    big = _rezip(tmp_path / "le.pth", tmp_path / "be.pth", to_big)
    _assert_same({k: _expected(v) for k, v in torch.load(big).items()}, state)  # torch agrees
    _assert_same(load(big), state)
    plain = _rezip(tmp_path / "le.pth", tmp_path / "no.pth",
                   lambda n, d: None if n.endswith("/byteorder") else d)
    _assert_same(load(plain), state)


def test_a_checkpoint_saved_on_a_gpu_loads(tmp_path):
    torch.save({"w": torch.randn(3)}, tmp_path / "cpu.pth")
    cuda = _rezip(tmp_path / "cpu.pth", tmp_path / "cuda.pth", lambda n, d: d.replace(
        b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0") if n.endswith("data.pkl") else d)
    with zipfile.ZipFile(cuda) as z:
        assert b"cuda:0" in z.read("cpu/data.pkl")
    np.testing.assert_array_equal(load(cuda)["w"], load(tmp_path / "cpu.pth")["w"])


@st.composite
def _views(draw):
    """A tensor of a drawn dtype and shape, then a strided view of it (slices, a permutation)."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))
    seed = draw(st.integers(0, 2**16))
    base = (torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 50)
    if not dtype.is_floating_point and not dtype.is_complex:
        base = base.abs()
    base = base.to(dtype)
    index = tuple(slice(draw(st.integers(0, n)), None, draw(st.integers(1, 3))) for n in shape)
    view = base[index].permute(tuple(draw(st.permutations(range(len(shape))))))
    return base, view


@given(_views())
def test_any_view_round_trips_through_torch_save(tmp_path, views):
    base, view = views
    state = {"base": base, "view": view, "copy": view.contiguous()}
    torch.save(state, tmp_path / "v.pth")
    _assert_same(load(tmp_path / "v.pth"), state)


def test_load_never_imports_torch(tmp_path):
    torch.save(_model().state_dict(), tmp_path / "m.pth")
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # from here on, any `import torch` fails\n"
        "try:\n    import torch\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('torch is still importable')\n"
        "from mini_iformer.checkpoint import load\n"
        "state = load(sys.argv[1])\n"
        "print(len(state), state['1.num_batches_tracked'].dtype)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-W", "error", "-c", code, str(tmp_path / "m.pth")],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(len(_model().state_dict())), "int64"]


# -- hostile files ----------------------------------------------------------------------------

class _SystemCall:
    """What an attacker pickles: unpickling it calls os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _PartialCall:
    """Unpickling it calls functools.partial(os.system, command)()."""

    def __init__(self, call: functools.partial) -> None:
        self.call = call

    def __reduce__(self):
        return (self.call, ())


def _payloads(canary: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (pickle bytes that create ``canary`` when unpickled, the global refused first)."""
    touch, write = f"touch '{canary}'", f"open(r'{canary}', 'w').close()"
    eval_ = Call(G("builtins", "eval"), (write + " or []",))
    system = f"{os.system.__module__}.system"  # posix.system: where os.system really lives
    return {
        "os.system": (_assemble(Call(G("os", "system"), (touch,))), "os.system"),
        "reduce-class": (pickle.dumps(_SystemCall(touch), protocol=2), system),
        "reduce-class-protocol-5": (pickle.dumps(_SystemCall(touch), protocol=5), system),
        "eval": (_assemble(eval_), "builtins.eval"),
        "exec": (_assemble(Call(G("builtins", "exec"), (write,))), "builtins.exec"),
        "popen": (_assemble(Call(G("subprocess", "Popen"), (["touch", str(canary)],))),
                  "subprocess.Popen"),
        "getattr": (_assemble(Call(Call(G("builtins", "getattr"), (
            Call(G("builtins", "__import__"), ("os",)), "system")), (touch,))), "builtins.getattr"),
        "partial": (pickle.dumps(_PartialCall(functools.partial(os.system, touch)), protocol=2),
                    "functools.partial"),
        "importlib": (_assemble(Then(Call(G("importlib", "import_module"), ("os",)), Call(Call(
            G("builtins", "getattr"), (Memo(), "system")), (touch,)))), "importlib.import_module"),
        "nested-in-ordered-dict": (_assemble(Call(G("collections", "OrderedDict"), (eval_,))),
                                   "builtins.eval"),
        "nested-as-storage": (_assemble({"w": _tensor(eval_, 0, (1,), (1,))}), "builtins.eval"),
        "hidden-in-wrapper": (_assemble({"model": {}, "args": eval_}), "builtins.eval"),
    }


PAYLOADS = list(_payloads(Path("x")))


@pytest.mark.parametrize("name", PAYLOADS)
def test_each_payload_is_live_under_plain_pickle(tmp_path, name):
    """The control: the files below are dangerous, so refusing them means something."""
    payload, _ = _payloads(tmp_path / "canary")[name]
    try:
        result = pickle.loads(payload)
        if hasattr(result, "wait"):
            result.wait()  # subprocess.Popen
    except Exception:  # noqa: BLE001
        pass  # the canary is made before the outer call fails on its odd arguments
    assert (tmp_path / "canary").exists()


@pytest.mark.parametrize("name", PAYLOADS)
def test_hostile_pickles_in_a_torch_zip_are_refused(tmp_path, name):
    canary = tmp_path / "canary"
    payload, refused = _payloads(canary)[name]
    path = _torch_zip(tmp_path / "evil.pth", payload, {"0": b"\0" * 4})
    _refused(path, rf"refused: the pickle asks for {re.escape(refused)}, .*nothing from the file "
                   "was executed")
    assert not canary.exists()


@pytest.mark.parametrize("name", ["os.system", "reduce-class", "eval"])
def test_a_bare_pickle_is_refused_unread(tmp_path, name):
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_payloads(canary)[name][0])
    _refused(path, r"a bare pickle, which is not supported: unpickling it could run any code")
    assert not canary.exists()


def test_the_legacy_torch_format_is_refused_with_advice(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    _refused(tmp_path / "old.pth", r"legacy PyTorch format .* not supported: re-save .*"
                                   r"torch\.save\(torch\.load\(f\), g\)")


def test_a_file_cannot_modify_the_objects_it_is_allowed(tmp_path):
    attacks = [
        Build(G("torch", "FloatStorage"), ("float32", "FloatStorage", "<f8")),  # __setstate__
        Build(G("torch", "FloatStorage"), {"raw": "<f8"}),
        Build(G("torch", "FloatStorage"), (None, {"raw": "<f8"})),
        Build(G("torch._utils", "_rebuild_tensor_v2"), (None, {"function": G("collections", "OrderedDict")})),
        Build(G("collections", "OrderedDict"), (None, {"fromkeys": None})),
        {"w": _tensor(Build(_storage("0", 1), ("0", b"\0" * 400, G("torch", "FloatStorage"), False)),
                      0, (100,), (1,))},
    ]
    for i, attack in enumerate(attacks):
        _refused(_torch_zip(tmp_path / f"a{i}.pth", _assemble(attack), {"0": b"\0" * 4}),
                 r"data\.pkl is corrupt \((AttributeError|TypeError)")
    torch.save({"w": torch.arange(4.0)}, tmp_path / "ok.pth")
    np.testing.assert_array_equal(load(tmp_path / "ok.pth")["w"], np.arange(4.0, dtype=np.float32))


def test_an_assembled_tensor_record_loads(tmp_path):
    """The assembler writes what torch writes: the control for the out-of-bounds cases."""
    data = np.arange(6, dtype="<f4").tobytes()
    pkl = _assemble({"w": _tensor(_storage("0", 6), 2, (2, 2), (1, 2))})
    got = load(_torch_zip(tmp_path / "ok.pth", pkl, {"0": data}))["w"]
    np.testing.assert_array_equal(got, [[2.0, 4.0], [3.0, 5.0]], strict=False)


_PAST_END = r"reaches past the end of storage '0' \(6 elements\)"
_NOT_INTS = r"not a sequence of integers >= 0"


@pytest.mark.parametrize("offset, size, stride, pattern", [
    (0, (7,), (1,), _PAST_END), (5, (2,), (1,), _PAST_END), (0, (2, 3), (4, 1), _PAST_END),
    (0, (3, 3), (3, 0), _PAST_END), (0, (2,), (2**62,), _PAST_END), (2**63, (1,), (1,), _PAST_END),
    (0, (2**20, 2**20), (0, 0), r"repeats the 6 elements of storage '0' into more than"),
    (-1, (2,), (1,), r"offset is \(-1,\), " + _NOT_INTS), (0, (2,), (-1,), "stride .*" + _NOT_INTS),
    (0, (-1,), (1,), "size .*" + _NOT_INTS), (0, (2.0,), (1,), "size .*" + _NOT_INTS),
    (0, "ab", (1,), "size .*" + _NOT_INTS), (True, (1,), (1,), "offset .*" + _NOT_INTS),
    (0, (2, 2), (1,), r"has size \(2, 2\) but stride \(1,\)"),
])
def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path, offset, size, stride, pattern):
    pkl = _assemble({"w": _tensor(_storage("0", 6), offset, size, stride)})
    path = _torch_zip(tmp_path / "oob.pth", pkl, {"0": np.arange(6, dtype="<f4").tobytes()})
    _refused(path, pattern)


@pytest.mark.parametrize("members, pid, pattern", [
    ({}, _storage("0", 6), r"storage member 'archive/data/0' is missing"),
    ({"0": b"\0" * 20}, _storage("0", 6), r"holds 20 bytes; the pickle says 6 float32 elements"),
    ({"0": b"\0" * 28}, _storage("0", 6), r"holds 28 bytes; the pickle says 6 float32"),
    ({"0": b"\0" * 24}, Pid(("storage", "FloatStorage", "0", "cpu", 6)), r"malformed storage"),
    ({"0": b"\0" * 24}, Pid(("module", G("torch", "FloatStorage"), "0", "cpu", 6)),
     r"unexpected persistent id"),
    ({"0": b"\0" * 24}, ("not", "a", "storage"), r"got a tuple where a typed storage belongs"),
])
def test_bad_storage_references(tmp_path, members, pid, pattern):
    pkl = _assemble({"w": _tensor(pid, 0, (6,), (1,))})
    _refused(_torch_zip(tmp_path / "s.pth", pkl, members), pattern)


@pytest.mark.parametrize("obj, pattern", [
    ([1, 2], r"the pickled object has type list, not a mapping of names to tensors"),
    ({"w": _tensor(_storage("0", 1), 0, (), ()), "epoch": 3}, r"entry 'epoch' has type int, not"),
    ({7: _tensor(_storage("0", 1), 0, (), ())}, r"has a key 7 that is not a string"),
    ({"model": [1]}, r"entry 'model' has type list"),
])
def test_a_pickle_that_is_not_a_state_dict(tmp_path, obj, pattern):
    _refused(_torch_zip(tmp_path / "n.pth", _assemble(obj), {"0": b"\0" * 4}), pattern)


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x96", b"\x8d"], ids=["bytes", "bytearray", "str"])
def test_a_huge_length_field_is_caught_before_allocation(tmp_path, opcode):
    pkl = b"\x80\x05" + opcode + (2**40).to_bytes(8, "little") + b"x" * 16 + b"."  # claims 1 TiB
    _refused(_torch_zip(tmp_path / "huge.pth", pkl), r"data\.pkl is corrupt \(ValueError: expected "
                                                     r"1099511627776 bytes")


def test_float8_is_named_as_unsupported(tmp_path):
    torch.save({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}, tmp_path / "f8.pth")
    _refused(tmp_path / "f8.pth", r"dtype torch\.float8_e4m3fn, which NumPy cannot represent")


# -- damaged and foreign files ----------------------------------------------------------------

def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_foreign_and_missing_files(tmp_path):
    np.save(tmp_path / "one.npy", np.ones(2))
    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    cases = {
        tmp_path / "missing.pth": r"no such file",
        tmp_path: r"is a directory, not a checkpoint file",
        _write(tmp_path / "empty.pth", b""): r"empty file \(0 bytes\)",
        _write(tmp_path / "noise.pth", np.random.default_rng(0).bytes(1000)): r"not a checkpoint",
        _write(tmp_path / "text.pth", b"weights: [1, 2]\n"): r"not a checkpoint",
        tmp_path / "one.npy": r"a single \.npy array",
        tmp_path / "docs.zip": r"neither a NumPy \.npz .* nor a PyTorch checkpoint",
        _write(tmp_path / "pk.pth", b"PK\x03\x04 not really"): r"truncated or corrupt zip",
    }
    for path, pattern in cases.items():
        _refused(path, pattern)


@pytest.mark.parametrize("kind", ["torch", "npz"])
def test_truncated_files(tmp_path, kind):
    source = tmp_path / "whole"
    if kind == "torch":
        torch.save(_model().state_dict(), source)
    else:
        save({"w": np.arange(100.0), "b": np.ones(3)}, source)
    data = source.read_bytes()
    for cut in [1, 4, 30, 200, len(data) // 2, len(data) - 22, len(data) - 1]:
        _refused(_write(tmp_path / f"cut{cut}.pth", data[:cut]),
                 r"truncated or corrupt zip archive|not a checkpoint")


@pytest.mark.parametrize("member", ["archive/data/0", "archive/data.pkl", "w.npy"])
def test_a_flipped_byte_fails_the_crc(tmp_path, member):
    path = tmp_path / "f.pth"
    if member.endswith(".npy"):
        save({"w": np.arange(50.0)}, path)
    else:
        torch.save({"w": torch.arange(50.0)}, path)
        member = member.replace("archive", "f")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    name_len, extra_len = np.frombuffer(data[info.header_offset + 26:][:4], "<u2")
    start = info.header_offset + 30 + name_len + extra_len  # the member's first data byte
    data[start + info.file_size - 1] ^= 0x10
    error = _refused(_write(path, bytes(data)), r"(corrupt|unreadable).*Bad CRC-32")
    assert isinstance(error.__cause__, zipfile.BadZipFile)


@functools.cache
def _fuzz_source() -> bytes:
    buffer = io.BytesIO()
    big = torch.arange(12.0)
    torch.save({"module.a": big[2:8].view(2, 3).t(), "module.b": big,
                "module.n": torch.tensor(3), "module.h": torch.ones(2).bfloat16()}, buffer)
    return buffer.getvalue()


_MUTATION = st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.floats(0, 1),
                      st.integers(0, 255))


def _mutate(data: bytearray, mutations: list[tuple[str, float, int]]) -> None:
    """Apply drawn mutations in place: flip a byte's bits, cut the tail, insert a byte."""
    for kind, where, byte in mutations:
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        if kind == "flip" and data:
            data[at] ^= byte or 1
        elif kind == "cut":
            del data[at:]
        else:
            data[at:at] = bytes([byte])


def _loads_or_names_the_file(path: Path) -> None:
    """``load(path)`` gives string keys and arrays, or a CheckpointError naming ``path``."""
    try:
        state = load(path)
    except CheckpointError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items())


@given(st.booleans(), st.lists(_MUTATION, min_size=1, max_size=3))
def test_mutated_files_load_or_raise_checkpoint_error(tmp_path, inside_pickle, mutations):
    """Any damage gives a state dict or a CheckpointError, never another exception.

    ``inside_pickle`` damages data.pkl itself and rewrites the zip with fresh CRCs, so the
    unpickler sees the damage instead of the CRC check.
    """
    source = _write(tmp_path / "source.pth", _fuzz_source())
    data = bytearray(source.read_bytes())
    if inside_pickle:
        with zipfile.ZipFile(source) as z:
            data = bytearray(z.read("archive/data.pkl"))
    _mutate(data, mutations)
    if inside_pickle:
        path = _rezip(source, tmp_path / "m.pth",
                      lambda n, d: bytes(data) if n.endswith("data.pkl") else d)
    else:
        path = _write(tmp_path / "m.pth", bytes(data))
    _loads_or_names_the_file(path)


@functools.cache
def _npz_source() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for key, array in {"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                           "b.c": np.array([True, False]), "n": np.array(3, np.int64),
                           "d": np.ones((2, 2), ">f8")}.items():
            with archive.open(key + ".npy", "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


@given(st.booleans(), st.lists(_MUTATION, min_size=1, max_size=3))
def test_mutated_npz_files_load_or_raise_checkpoint_error(tmp_path, inside_member, mutations):
    """The same for our own format: a damaged archive, or a damaged .npy member inside an
    intact archive (fresh CRCs), gives arrays or a CheckpointError naming the file."""
    source = _write(tmp_path / "source.npz", _npz_source())
    data = bytearray(source.read_bytes())
    if inside_member:
        with zipfile.ZipFile(source) as z:
            data = bytearray(z.read("a.npy"))
    _mutate(data, mutations)
    if inside_member:
        path = _rezip(source, tmp_path / "m.npz", lambda n, d: bytes(data) if n == "a.npy" else d)
    else:
        path = _write(tmp_path / "m.npz", bytes(data))
    _loads_or_names_the_file(path)


def test_the_module_never_names_torch_in_an_import():
    source = Path(checkpoint.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s+torch", source, re.MULTILINE)
    assert "importlib" not in source and "__import__" not in source


def test_a_training_checkpoint_with_its_argparse_arguments_loads(tmp_path):
    import argparse

    state = {"head.weight": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "train.pth"
    torch.save({"model": state, "args": argparse.Namespace(lr=1e-3, model="iformer_small"),
                "epoch": 309}, path)
    loaded = checkpoint.load(path)
    assert list(loaded) == ["head.weight"]
    np.testing.assert_array_equal(loaded["head.weight"], state["head.weight"].numpy())
