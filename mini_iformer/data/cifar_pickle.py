"""CIFAR's Python 2 pickles, read with the restricted reader :func:`load_pickle`.

The batch files are Python 2 pickles. They are read from memory by the restricted unpickler
of :mod:`mini_iformer.safe_pickle` (so that a corrupt length or memo index cannot make it
allocate gigabytes), which resolves no global name except the three that rebuild a NumPy array
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``), and even
those are replaced by stand-ins that only collect the array's shape, dtype (plain numbers
only) and bytes: a file that names anything else (``os.system``, say) is refused before
anything in it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_pickle
from ..cli import message_of
from .base import DatasetError, PathLike, os_reason

__all__ = ["load_pickle", "as_text", "ALLOWED_GLOBALS"]


def as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- the restricted unpickler --------------------------------------------------------------------


class _NDArrayType:
    """Stands for ``numpy.ndarray`` inside a pickle; it is never instantiated."""


class _DtypeStub:
    """What ``numpy.dtype(code, align, copy)`` becomes: the type code and, later, byte order."""

    _CODES = frozenset(["b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"])

    def __init__(self, code: Any, align: Any = 0, copy: Any = 1):
        code = as_text(code)
        if code not in self._CODES:
            raise pickle.UnpicklingError(f"array dtype {code!r} is not a plain numeric type")
        self.code = code
        self.order = "|"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError("malformed dtype state")
        order = as_text(state[1])
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"malformed dtype byte order {order!r}")
        self.order = order

    def dtype(self) -> np.dtype:
        return np.dtype((self.order if self.order in "<>" else "") + self.code)


class _ArrayStub:
    """What ``_reconstruct(ndarray, ...)`` becomes; its state is checked, then made an array."""

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
                f"array of shape {shape} needs {count * dt.itemsize} bytes, "
                f"the file holds {len(raw)}"
            )
        flat = np.frombuffer(raw, dtype=dt, count=count)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if cls is not _NDArrayType:
        raise pickle.UnpicklingError("_reconstruct is only allowed for numpy.ndarray")
    return _ArrayStub()


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global that a CIFAR file never contains."""


def _forbidden(module: str, name: str) -> _ForbiddenGlobal:
    # Escaped: a corrupt file's "name" may hold line breaks or control characters.
    return _ForbiddenGlobal(repr(f"{module}.{name}")[1:-1])


#: Everything a CIFAR file may name: the three globals that rebuild a NumPy array of numbers.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    # The same function under its NumPy 2 module name, for files pickled by NumPy 2.
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDArrayType,
    ("numpy", "dtype"): _DtypeStub,
}


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
        obj = _resolve(safe_pickle.load(raw, ALLOWED_GLOBALS, _forbidden, encoding="bytes"))
    except _ForbiddenGlobal as exc:
        raise DatasetError(
            f"{path}: refused to load, the file calls {exc} (a CIFAR file holds only plain data "
            f"and NumPy arrays, so this is not one and may be malicious){tail}"
        ) from exc
    except Exception as exc:
        raise DatasetError(
            f"{path}: not a readable CIFAR file, truncated or corrupt "
            f"({type(exc).__name__}: {message_of(exc)}){tail}"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: holds a {type(obj).__name__}, not a CIFAR dict{tail}")
    return {as_text(k): v for k, v in obj.items()}


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
        raise DatasetError(f"{path}: cannot read the file ({os_reason(exc)}){tail}") from exc
