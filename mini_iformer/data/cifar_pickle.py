"""CIFAR's Python 2 pickles: the restricted reader (:func:`load_pickle`) and the writer.

The batch files are Python 2 pickles. They are read from memory by a restricted pure-Python
unpickler (so that a corrupt length or memo index cannot make it allocate gigabytes) that
resolves no global name except the three that rebuild a NumPy array
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``), and even
those are replaced by stand-ins that only collect the array's shape, dtype (plain numbers
only) and bytes: a file that names anything else (``os.system``, say) is refused before
anything in it runs.

The writer (``_write_p2``) produces protocol-2 pickles in the style Python 2 wrote the
official files; :func:`~mini_iformer.data.cifar.write_cifar_batches` uses it.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .base import DatasetError, PathLike, _one_line, _os_reason

__all__ = ["load_pickle"]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- the restricted unpickler --------------------------------------------------------------------


class _NDArrayType:
    """Stands for ``numpy.ndarray`` inside a pickle; it is never instantiated."""


class _DtypeStub:
    """What ``numpy.dtype(code, align, copy)`` becomes: the type code and, later, byte order."""

    _CODES = frozenset(["b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"])

    def __init__(self, code: Any, align: Any = 0, copy: Any = 1):
        code = _text(code)
        if code not in self._CODES:
            raise pickle.UnpicklingError(f"array dtype {code!r} is not a plain numeric type")
        self.code = code
        self.order = "|"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError("malformed dtype state")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"malformed dtype byte order {order!r}")
        self.order = order

    def dtype(self) -> np.dtype:
        return np.dtype((self.order if self.order in "<>" else "") + self.code)


class _ArrayStub:
    """What ``_reconstruct(ndarray, ...)`` becomes; its state is checked and turned into an array."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("malformed array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DtypeStub):
            raise pickle.UnpicklingError("array state without a dtype")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
        if not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("array data is not a byte string")
        dt = dtype.dtype()
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dt.itemsize:
            raise pickle.UnpicklingError(
                f"array of shape {shape} needs {count * dt.itemsize} bytes, the file holds {len(raw)}"
            )
        flat = np.frombuffer(raw, dtype=dt, count=count)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if cls is not _NDArrayType:
        raise pickle.UnpicklingError("_reconstruct is only allowed for numpy.ndarray")
    return _ArrayStub()


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global that a CIFAR file never contains."""


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickles plain data plus NumPy arrays of numbers; any other global is refused.

    Built on the pure-Python unpickler, whose memo is a dict: the C one grows an array up to
    any index a memo opcode names, so a corrupt file naming index 10**9 would make it allocate
    and clear gigabytes. CIFAR files hold few opcodes, so the speed is the same.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        # The same function under its NumPy 2 module name, for files pickled by NumPy 2.
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NDArrayType,
        ("numpy", "dtype"): _DtypeStub,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            # Escaped: a corrupt file's "name" may hold line breaks or control characters.
            raise _ForbiddenGlobal(repr(f"{module}.{name}")[1:-1]) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("uses persistent ids, which a CIFAR batch never contains")


class _PickleStream(io.BytesIO):
    """The file's bytes, for the unpickler: a text line cut short is an error.

    The pure-Python unpickler would take a truncated line (say, the name of a global) for a
    whole one; the C unpickler, like this, calls it truncated.
    """

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if not line.endswith(b"\n"):
            raise pickle.UnpicklingError("pickle data was truncated")
        return line


def _resolve(obj: Any) -> Any:
    """Replace the array stand-ins in an unpickled structure by the arrays they describe."""
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise pickle.UnpicklingError("an array without its data")
        return obj.array
    if isinstance(obj, dict):
        return {_resolve(k): _resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    if isinstance(obj, (_DtypeStub, type)) or callable(obj):
        raise pickle.UnpicklingError(f"unexpected object {type(obj).__name__}")
    return obj


def load_pickle(path: PathLike, hint: str = "") -> dict[str, Any]:
    """Read one CIFAR batch or meta file with the restricted unpickler.

    Returns a dict with ``str`` keys (the files use Python 2 byte-string keys). A missing,
    unreadable, empty, truncated or corrupt file, one that is not a dict, or one that names a
    forbidden global, raises :class:`DatasetError` naming ``path`` and the reason; ``hint``
    (what to do) ends the message.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    raw = _read_bytes(path, "a CIFAR file", tail)
    if not raw:
        raise DatasetError(f"{path}: empty file (0 bytes), not a CIFAR file{tail}")
    try:
        # From memory: a corrupt length field cannot make the unpickler read past the file.
        obj = _resolve(_RestrictedUnpickler(_PickleStream(raw), encoding="bytes").load())
    except _ForbiddenGlobal as exc:
        raise DatasetError(
            f"{path}: refused to load, the file calls {exc} (a CIFAR file holds only plain data "
            f"and NumPy arrays, so this is not one and may be malicious){tail}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any failure of a corrupt pickle is reported alike
        raise DatasetError(
            f"{path}: not a readable CIFAR file, truncated or corrupt "
            f"({type(exc).__name__}: {_one_line(exc)}){tail}"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: holds a {type(obj).__name__}, not a CIFAR dict{tail}")
    return {_text(k): v for k, v in obj.items()}


def _read_bytes(path: Path, what: str, tail: str) -> bytes:
    """The bytes of ``path``; a file that cannot be read raises :class:`DatasetError`."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file missing{tail}") from exc
    except IsADirectoryError as exc:
        raise DatasetError(f"{path}: is a folder, not {what}{tail}") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({_os_reason(exc)}){tail}") from exc


# --- the writer ----------------------------------------------------------------------------------


def _p2(obj: Any) -> bytes:
    """``obj`` as the body of a protocol-2 pickle, in the style Python 2 wrote CIFAR.

    Supports dicts, lists, tuples, ``bytes``/``str`` (written as Python 2 byte strings),
    ints, bools, None and 2-D uint8 NumPy arrays (as ``numpy.core.multiarray._reconstruct``).
    """
    if obj is None:
        return b"N"
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, (int, np.integer)):
        v = int(obj)
        if 0 <= v < 256:
            return b"K" + bytes([v])
        if 0 <= v < 65536:
            return b"M" + struct.pack("<H", v)
        if -(2 ** 31) <= v < 2 ** 31:
            return b"J" + struct.pack("<i", v)
        raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw
    if isinstance(obj, str):
        obj = obj.encode("utf-8")
    if isinstance(obj, bytes):
        if len(obj) < 256:
            return b"U" + bytes([len(obj)]) + obj
        return b"T" + struct.pack("<i", len(obj)) + obj
    if isinstance(obj, dict):
        items = [_p2(k) + _p2(v) for k, v in obj.items()]
        return b"}" + (b"(" + b"".join(items) + b"u" if items else b"")
    if isinstance(obj, list):
        out = [b"]"]
        for k in range(0, len(obj), 1000):
            out.append(b"(" + b"".join(_p2(v) for v in obj[k:k + 1000]) + b"e")
        return b"".join(out)
    if isinstance(obj, tuple):
        return b"(" + b"".join(_p2(v) for v in obj) + b"t"
    if isinstance(obj, np.ndarray) and obj.dtype == np.uint8:
        dtype = (b"cnumpy\ndtype\n" + _p2((b"u1", 0, 1)) + b"R"
                 + _p2((3, b"|", None, None, None, -1, -1, 0)) + b"b")
        state = b"(" + _p2(1) + _p2(tuple(obj.shape)) + dtype + _p2(False) + _p2(obj.tobytes()) + b"t"
        return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _p2((0,))
                + _p2(b"b") + b"\x87R" + state + b"b")
    raise TypeError(f"cannot write a {type(obj).__name__} in a CIFAR pickle")


def _write_p2(path: Path, obj: Any) -> None:
    with open(path, "wb") as f:
        f.write(b"\x80\x02" + _p2(obj) + b".")
