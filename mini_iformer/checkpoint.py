"""Saving and loading state dicts: our own ``.npz`` files, and the checkpoints PyTorch writes.

:func:`save` writes a NumPy ``.npz``: a zip archive with one ``<key>.npy`` member per entry,
readable by ``np.load`` too. :func:`load` reads that, or a file written by ``torch.save``
(the zip format, PyTorch 1.6 and later), telling them apart by content, not by file name.
It never imports PyTorch.

The layout of a ``torch.save`` file (stored, uncompressed zip members)::

    <archive>/data.pkl            the saved object, pickled (protocol 2)
    <archive>/data/0              raw bytes of storage "0"
    <archive>/data/1              ...
    <archive>/byteorder           "little" or "big" (absent in older files: little)
    <archive>/version             format version, e.g. "3"
    <archive>/.format_version, .storage_alignment, .data/serialization_id   bookkeeping

``<archive>`` is the file name's stem, or "archive" when torch wrote to a buffer. A tensor
comes in two pieces: a flat *storage* (one ``data/<key>`` member of raw bytes) and a view
of it (offset, size, stride), so several tensors may share one storage, e.g. slices of one
tensor saved together. ``data.pkl`` names a storage by a "persistent id",
``('storage', torch.FloatStorage, '0', 'cpu', 54)``, and builds each tensor by calling
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``.

Why the unpickler is restricted. A pickle is a small program for a stack machine, and its
GLOBAL and REDUCE instructions mean "import this name" and "call it with these arguments".
``pickle.load`` obeys any name: ``os.system``, ``builtins.eval``. Loading a stranger's
``.pth`` with plain pickle therefore runs whatever code they put in it. Here
the unpickler's ``find_class``, the only path from a file to a Python object, looks the
name up in a table of the few that a tensor state dict uses (plus ``argparse.Namespace``, kept
as an inert bag of values, because training scripts save their arguments next to the
weights), each mapped to a NumPy implementation in this module; nothing is ever imported by
name. Any other name is refused before it can be called, so nothing from the file runs. (The
instructions are also read once without running them, so a name written out in a GLOBAL
instruction, as ``torch.save`` writes them, is refused before any object is built at all.)
The unpickler itself, shared with the CIFAR reader, is :mod:`mini_iformer.safe_pickle`.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import secrets
import stat
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import backend, safe_pickle

__all__ = ["CheckpointError", "save", "load", "load_weights"]

PathLike = str | os.PathLike

# The first bytes of the pre-1.6 format: torch pickled this magic number before anything else.
_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

# A view may repeat storage elements (torch's expand() gives stride 0) up to this many elements,
# so that a small file cannot ask for a terabyte array.
_MAX_REPEATED = 2**24

_RESAVE = (
    "re-save it with a current PyTorch (torch.save(torch.load(f), g)) or with "
    "mini_iformer.checkpoint.save"
)


class CheckpointError(ValueError):
    """A checkpoint could not be read or written; the message names the file and the reason."""


class _Reason(Exception):
    """Raised inside this module with the reason only; the public functions add the path."""


def _read_only(self: Any, state: Any) -> None:
    """``__setstate__`` of every object data.pkl can reach, so that it cannot change them.

    Pickle's BUILD instruction calls it. A frozen dataclass with slots gets a generated one
    that sets its fields regardless of ``frozen``: a file could rewrite the shared dtype table.
    """
    raise AttributeError(f"a checkpoint may not modify {type(self).__name__} objects")


# -- element types ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DType:
    """A PyTorch element type: its name, its legacy storage class, its bytes as NumPy reads them."""

    __setstate__ = _read_only
    name: str
    storage: str | None
    raw: str  # NumPy dtype of the stored bytes, little-endian (bfloat16 is read as "<u2")

    @property
    def itemsize(self) -> int:
        return np.dtype(self.raw).itemsize


_DTYPES = [
    _DType("float32", "FloatStorage", "<f4"),
    _DType("float64", "DoubleStorage", "<f8"),
    _DType("float16", "HalfStorage", "<f2"),
    _DType("bfloat16", "BFloat16Storage", "<u2"),
    _DType("int64", "LongStorage", "<i8"),
    _DType("int32", "IntStorage", "<i4"),
    _DType("int16", "ShortStorage", "<i2"),
    _DType("int8", "CharStorage", "i1"),
    _DType("uint8", "ByteStorage", "u1"),
    _DType("bool", "BoolStorage", "u1"),
    _DType("complex64", "ComplexFloatStorage", "<c8"),
    _DType("complex128", "ComplexDoubleStorage", "<c16"),
    # No legacy storage class: torch writes these through _rebuild_tensor_v3 (below).
    _DType("uint16", None, "<u2"),
    _DType("uint32", None, "<u4"),
    _DType("uint64", None, "<u8"),
]
#: ``torch.storage.UntypedStorage``: plain bytes; the tensor record says how to read them.
_UNTYPED = _DType("untyped", "UntypedStorage", "u1")


@dataclass(frozen=True, slots=True)
class _Storage:
    """The bytes of one ``data/<key>`` member and the element type the file gave them."""

    __setstate__ = _read_only
    key: str
    data: bytes
    dtype: _DType
    big_endian: bool

    def view(self, dtype: _DType) -> np.ndarray:
        """The storage as a flat array of ``dtype``: native byte order, bfloat16 as float32."""
        raw = np.dtype(dtype.raw).newbyteorder(">" if self.big_endian else "<")
        if len(self.data) % raw.itemsize:
            raise _Reason(
                f"storage {self.key!r} holds {len(self.data)} bytes, not a whole "
                f"number of {dtype.name} elements"
            )
        flat = np.frombuffer(self.data, dtype=raw)
        if dtype.name == "bfloat16":  # bfloat16 is the top half of a float32
            return (flat.astype(np.uint32) << 16).view(np.float32)
        if dtype.name == "bool":
            return flat != 0
        return flat.astype(raw.newbyteorder("="), copy=False)


# -- the rebuild functions data.pkl calls, on NumPy ------------------------------------------


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or any(type(v) is not int or v < 0 for v in value):
        raise _Reason(f"a tensor's {what} is {value!r:.80}, not a sequence of integers >= 0")
    return tuple(value)


def _view(storage: Any, offset: Any, size: Any, stride: Any, dtype: _DType) -> np.ndarray:
    """``storage[offset:]`` seen with ``size`` and ``stride`` (in elements), copied.

    Every index the view can reach is checked to lie inside the storage first, so a file
    that lies about sizes gets an error rather than a read of memory it does not own.
    """
    if not isinstance(storage, _Storage):
        raise _Reason(f"a tensor record names {type(storage).__name__}, not a storage")
    flat = storage.view(dtype)
    (offset,), size, stride = (
        _ints((offset,), "offset"),
        _ints(size, "size"),
        _ints(stride, "stride"),
    )
    if len(size) != len(stride):
        raise _Reason(f"a tensor has size {size} but stride {stride}")
    if 0 in size:  # nothing is read (torch writes any offset for an empty view)
        return np.zeros(size, dtype=flat.dtype)
    if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= flat.size:
        raise _Reason(
            f"a tensor (offset {offset}, size {size}, stride {stride}) reaches past "
            f"the end of storage {storage.key!r} ({flat.size} elements)"
        )
    if math.prod(size) > max(flat.size, _MAX_REPEATED):
        raise _Reason(
            f"a tensor of size {size} repeats the {flat.size} elements of storage "
            f"{storage.key!r} into more than {_MAX_REPEATED} elements"
        )
    # A dimension of length 1 never steps, whatever its stride says (torch writes any).
    strides = tuple(s * flat.itemsize if n > 1 else 0 for n, s in zip(size, stride))
    return np.lib.stride_tricks.as_strided(flat[offset:], size, strides, writeable=False).copy()


def _rebuild_tensor_v2(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> np.ndarray:
    """A tensor on a typed storage (``torch.FloatStorage`` ...): the common case."""
    if not isinstance(storage, _Storage) or storage.dtype is _UNTYPED:
        raise _Reason(
            f"_rebuild_tensor_v2 got a {type(storage).__name__} where a typed storage belongs"
        )
    return _view(storage, offset, size, stride, storage.dtype)


def _rebuild_tensor_v3(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> np.ndarray:
    """A tensor on untyped bytes (torch uses it for dtypes without a storage class: uint16...)."""
    if not isinstance(dtype, _DType) or dtype is _UNTYPED:
        raise _Reason(f"_rebuild_tensor_v3 got {dtype!r:.80} where a dtype belongs")
    return _view(storage, offset, size, stride, dtype)


def _rebuild_parameter(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any = None
) -> np.ndarray:
    """An ``nn.Parameter`` (saved with ``keep_vars=True``): its tensor is all we keep."""
    if not isinstance(data, np.ndarray):
        raise _Reason(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


@dataclass(frozen=True, slots=True)
class _Callable:
    """A function data.pkl may call, frozen so that a file cannot modify it."""

    __setstate__ = _read_only
    function: Callable[..., Any]

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


class _Namespace:
    """Stands in for ``argparse.Namespace``: training scripts save their command-line
    arguments next to the weights (``{'model': ..., 'args': args}``). Kept as an inert bag of
    the plain values pickle itself builds; nothing is called."""

    __slots__ = ("values",)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise _Reason(f"malformed argparse.Namespace state ({type(state).__name__})")
        self.values = dict(state)


#: The whole vocabulary of a tensor state dict: (module, name) -> what it stands for here.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): _Namespace,
    ("torch._utils", "_rebuild_tensor_v2"): _Callable(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor_v3"): _Callable(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_parameter"): _Callable(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Callable(_rebuild_parameter),
    ("torch.storage", "UntypedStorage"): _UNTYPED,
    **{("torch", d.storage): d for d in _DTYPES if d.storage},  # storage classes
    **{("torch", d.name): d for d in _DTYPES},  # dtype objects, as _rebuild_tensor_v3 uses
}


def _refusal(module: str, name: str) -> _Reason:
    """Why ``module.name``, which is not in ``ALLOWED_GLOBALS``, is refused."""
    if module == "torch" and name.startswith(("float8", "float4")):
        return _Reason(f"a tensor has dtype torch.{name}, which NumPy cannot represent")
    return _Reason(
        f"refused: the pickle asks for {module}.{name}, which is not allowed in a "
        "tensor checkpoint; nothing from the file was executed"
    )


class _Storages:
    """The storages data.pkl refers to by persistent id, read from the zip on first use."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, big_endian: bool):
        self.archive, self.prefix, self.big_endian = archive, prefix, big_endian
        self.storages: dict[str, _Storage] = {}

    def load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Reason(f"unexpected persistent id {pid!r:.80} (expected a storage)")
        _, dtype, key, _location, numel = pid  # the location (cpu, cuda:0) does not matter here
        if not isinstance(dtype, _DType) or not isinstance(key, str) or type(numel) is not int:
            raise _Reason(f"malformed storage reference {pid!r:.80}")
        if key not in self.storages:
            member = f"{self.prefix}/data/{key}"
            data = _read_member(self.archive, member, f"storage member {member!r}")
            if len(data) != numel * dtype.itemsize:
                raise _Reason(
                    f"storage member {member!r} holds {len(data)} bytes; the pickle "
                    f"says {numel} {dtype.name} elements ({numel * dtype.itemsize} bytes)"
                )
            self.storages[key] = _Storage(key, data, dtype, self.big_endian)
        return self.storages[key]


# -- reading --------------------------------------------------------------------------------


def _read_member(archive: zipfile.ZipFile, name: str, what: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise _Reason(f"{what} is missing from the archive") from None
    except Exception as exc:  # a damaged member: bad CRC, bad header, truncated data
        raise _Reason(f"{what} is corrupt ({type(exc).__name__}: {exc})") from exc


def _read_torch(archive: zipfile.ZipFile, pkl_name: str) -> Any:
    prefix = pkl_name[: -len("/data.pkl")]
    order = b"little"
    if f"{prefix}/byteorder" in archive.namelist():
        order = _read_member(archive, f"{prefix}/byteorder", f"{prefix}/byteorder").strip()
    if order not in (b"little", b"big"):
        raise _Reason(f"unknown byte order {order[:20]!r} (expected 'little' or 'big')")
    data = _read_member(archive, pkl_name, pkl_name)
    storages = _Storages(archive, prefix, order == b"big")
    try:
        return safe_pickle.load(data, ALLOWED_GLOBALS, _refusal, persistent_load=storages.load)
    except _Reason:
        raise
    except Exception as exc:  # damaged pickle bytes can make the unpickler raise almost anything
        raise _Reason(f"{pkl_name} is corrupt ({type(exc).__name__}: {exc})") from exc


def _read_zip(path: str) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # BadZipFile mostly; also OSError, EOFError from a cut-off file
        raise _Reason(f"truncated or corrupt zip archive ({exc})") from exc
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if pickles:
            return _read_torch(archive, pickles[0])
        if not all(n.endswith(".npy") for n in names):
            raise _Reason(
                "a zip archive, but neither a NumPy .npz (only *.npy members) nor a "
                "PyTorch checkpoint (no <archive>/data.pkl member)"
            )
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except Exception as exc:  # bad CRC, damaged .npy header, an object array (needs pickle)
        raise _Reason(f"unreadable .npz archive ({type(exc).__name__}: {exc})") from exc


def _as_state_dict(obj: Any) -> dict[str, np.ndarray]:
    """Unwrap ``{'model': sd, ...}`` / ``{'state_dict': sd, ...}``, check, drop ``module.``."""
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping):
        raise _Reason(
            f"the pickled object has type {type(obj).__name__}, not a mapping of names to tensors"
        )
    for key, value in obj.items():
        if not isinstance(key, str):
            raise _Reason(f"the state dict has a key {key!r:.80} that is not a string")
        if not isinstance(value, np.ndarray):
            raise _Reason(f"entry {key!r} has type {type(value).__name__}, not a tensor")
    state = dict(obj)
    if state and all(key.startswith("module.") for key in state):  # saved from DataParallel
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _load(path: str) -> dict[str, np.ndarray]:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise _Reason("is a directory, not a checkpoint file")
        with open(path, "rb") as f:
            head = f.read(32)
    except FileNotFoundError:
        raise _Reason("no such file") from None
    except OSError as exc:
        raise _Reason(f"cannot read the file ({exc.strerror or exc})") from exc
    if not head:
        raise _Reason("empty file (0 bytes)")
    if head.startswith(b"PK"):
        return _as_state_dict(_read_zip(path))
    if head.startswith(b"\x80") and _LEGACY_MAGIC in head:
        raise _Reason(
            "legacy PyTorch format (before 1.6, or _use_new_zipfile_serialization="
            f"False), which is not supported: {_RESAVE}"
        )
    if head.startswith(b"\x80"):
        raise _Reason(
            "a bare pickle, which is not supported: unpickling it could run any code "
            f"in it. If it holds tensors, {_RESAVE}"
        )
    if head.startswith(b"\x93NUMPY"):
        raise _Reason("a single .npy array, not a state dict (save one with np.savez)")
    raise _Reason(
        "not a checkpoint: neither a NumPy .npz nor a PyTorch zip archive "
        f"(first bytes {head[:8]!r})"
    )


def load(path: PathLike) -> dict[str, np.ndarray]:
    """Read a state dict from ``path``: our ``.npz``, or a ``torch.save`` zip file.

        Returns ``{name: array}`` in the file's order. A PyTorch file may wrap the state dict
        under ``'state_dict'`` or ``'model'`` (the other entries, read by the same restricted
    unpickler, are then dropped); a ``module.``
        prefix on every key (DataParallel) is removed. bfloat16 becomes float32; other dtypes are
        kept. Raises :class:`CheckpointError` naming the file and the reason for anything else.
    """
    name = os.fspath(path)
    try:
        return _load(name)
    except _Reason as exc:
        raise CheckpointError(f"{name}: {exc}") from exc.__cause__


# -- writing --------------------------------------------------------------------------------


def _as_numpy(value: Any) -> np.ndarray:
    """A host NumPy array from an array (NumPy or CuPy), a Tensor, or a NumPy scalar."""
    if backend.is_array(value):
        return backend.to_numpy(value)
    if backend.is_array(getattr(value, "data", None)):  # mini_iformer.Tensor
        return backend.to_numpy(value.data)
    if isinstance(value, np.generic):
        return np.asarray(value)
    kind = type(value)
    raise _Reason(f"is a {kind.__module__}.{kind.__qualname__}, not an array or Tensor")


def save(state_dict: Mapping[str, Any], path: PathLike) -> None:
    """Write ``state_dict`` to ``path`` as an uncompressed ``.npz`` (exactly that path).

    Values may be NumPy or CuPy arrays or Tensors. The write is atomic: the archive goes to a
    temporary file beside ``path``, is flushed to disk, then renamed over ``path``; if
    anything fails, even Ctrl-C, the temporary is removed and a file already at ``path`` is
    left as it was.
    """
    name = os.fspath(path)
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f"{name}: expected a mapping of names to arrays, got {type(state_dict).__name__}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not key:
            raise CheckpointError(f"{name}: keys must be non-empty strings, got {key!r}")
        try:
            arrays[key] = _as_numpy(value)
        except _Reason as exc:
            raise CheckpointError(f"{name}: entry {key!r} {exc}") from None
        if arrays[key].dtype.hasobject:
            raise CheckpointError(
                f"{name}: entry {key!r} has dtype object; only numeric and bool arrays can be saved"
            )
    directory, base = os.path.split(os.path.abspath(name))
    temporary = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    try:
        f = open(temporary, "xb")  # noqa: SIM115 - closed by the "with f" below
    except OSError as exc:
        raise CheckpointError(
            f"{name}: cannot create a file in {directory} ({exc.strerror or exc})"
        ) from exc
    try:
        with f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for key, array in arrays.items():  # as np.savez does, minus its keyword clashes
                    with archive.open(key + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(temporary, name)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: pass them on
            raise
        raise CheckpointError(
            f"{name}: writing failed, nothing was replaced ({type(exc).__name__}: {exc})"
        ) from exc


def load_weights(path: PathLike) -> dict[str, np.ndarray]:
    """The model weights in ``path``: a plain state dict (ours or PyTorch's), or the model
    part of a training checkpoint written by ``train_cifar.py`` (its entries under
    ``model/``)."""
    entries = load(path)
    inner = {k[len("model/") :]: v for k, v in entries.items() if k.startswith("model/")}
    return inner if inner else entries
