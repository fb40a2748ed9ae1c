"""A stand-in for CuPy, for tests on machines without a GPU (a test tool, not a backend).

``install()`` makes the library's "cupy" backend run on this module: arrays are of their own
type, :class:`ndarray` (NumPy memory underneath), and each launch of a CUDA kernel goes to the
CPU emulator (``mini_iformer.ops.cuda_emulator``). So every backend-parametrised test also runs
"on the other backend" on any machine. It keeps the rules of CuPy that a CPU run would
otherwise hide:

* its functions and operators refuse NumPy arrays among their operands (``TypeError``, as
  CuPy does), so a host array that slips into device code fails here as on a GPU; only
  ``asarray``/``array`` copy host data in, and ``.get()`` copies it back out;
* a reduction gives a 0-d array, not a NumPy scalar;
* streams, events and pinned memory exist, with CuPy's signatures, and do their work at once.

It is no faster or slower than NumPy and proves nothing about the GPU itself: kernels,
streams and memory are checked on a real GPU by ``tests/test_gpu.py``.
"""

from __future__ import annotations

import contextlib
import threading
import types
from typing import Any

import numpy as np
import scipy.special


class _Reads:
    """How many times device data was read back to the host (each would wait for the GPU)."""

    count = 0


READS = _Reads()


class ndarray(np.ndarray):  # noqa: N801 - CuPy's name
    """A "device" array: NumPy memory, CuPy's rules. Every read back to the host (``get``,
    ``item``, ``tolist``, ``int()``, ``float()``, ``bool()``, a boolean mask index) is counted
    in ``READS.count``."""

    def _read(self) -> np.ndarray:
        READS.count += 1
        return self.view(np.ndarray)

    def item(self, *args: Any) -> Any:
        return self._read().item(*args)

    def tolist(self) -> Any:
        return self._read().tolist()

    def __int__(self) -> int:
        return int(self._read())

    def __float__(self) -> float:
        return float(self._read())

    def __bool__(self) -> bool:
        return bool(self._read())

    def __index__(self) -> int:
        return self._read().__index__()

    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
        """A host copy (CuPy's device -> host)."""
        host = np.array(self._read(), order=order)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Copy host data in (CuPy's host -> device); refuses a device array, as CuPy."""
        if isinstance(arr, ndarray) or not isinstance(arr, np.ndarray):
            raise TypeError(f"set: only numpy.ndarray is supported, got {type(arr).__name__}")
        if arr.shape != self.shape:
            raise ValueError(f"set: shape mismatch {arr.shape} vs {self.shape}")
        self.view(np.ndarray)[...] = arr

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = _device_only(inputs, f"{ufunc.__name__}")
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_device_only(out, ufunc.__name__))
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:  # in place: the very arrays given, as CuPy returns them
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def __getitem__(self, index):  # an element is a 0-d array, as in CuPy
        if isinstance(index, ndarray) and index.dtype == bool:  # the result's size is read
            READS.count += 1
        return _wrap(super().__getitem__(index))

    def __reduce__(self):  # pickling a device array: CuPy pickles, but nothing here should
        raise TypeError("a device array was pickled: convert it with .get() first")


def _device_only(items: Any, where: str) -> Any:
    """``items`` with device arrays as plain NumPy views; a NumPy array among them is refused
    (CuPy takes its own arrays, Python scalars and NumPy scalars, not NumPy arrays)."""
    if isinstance(items, ndarray):
        return items.view(np.ndarray)
    if isinstance(items, np.ndarray):
        raise TypeError(f"{where}: Unsupported type <class 'numpy.ndarray'> (a host array "
                        "among the operands of a device operation)")
    if isinstance(items, tuple):
        return tuple(_device_only(v, where) for v in items)
    if isinstance(items, list):
        return [_device_only(v, where) for v in items]
    return items


def _wrap(result: Any) -> Any:
    """NumPy results as device arrays (a NumPy scalar as a 0-d array, as CuPy gives)."""
    if isinstance(result, np.ndarray):
        return result.view(ndarray)
    if isinstance(result, np.generic) and not isinstance(result, (np.str_, np.bytes_)):
        return np.asarray(result).view(ndarray)
    if isinstance(result, tuple):
        return tuple(_wrap(v) for v in result)
    if isinstance(result, list):
        return [_wrap(v) for v in result]
    return result


def asarray(a: Any, dtype: Any = None, order: Any = None) -> ndarray:
    """Host data (or a device array) as a device array. A copy from the host remembers the
    device and stream that were current in the calling thread (``allocated_on``), where CuPy
    would take its memory from."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    out = np.array(a, dtype=dtype, order=order or "K", copy=True).view(ndarray)
    out.allocated_on = (_current.device, _get_current_stream())
    return out


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", ndmin: int = 0) -> ndarray:
    if isinstance(obj, ndarray):
        obj = obj.view(np.ndarray)
    return np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin).view(ndarray)


# -- the CUDA runtime: one device; streams and events that finish at once --------------------
class Event:
    done = True

    def synchronize(self) -> None:
        pass

    def record(self, stream: Any = None) -> None:
        pass


class _Current(threading.local):
    """The current device and streams, per thread, as in CUDA and CuPy."""

    def __init__(self) -> None:
        self.device = 0
        self.streams: list[Stream] = []


_current = _Current()


class Stream:
    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False):
        self.non_blocking = non_blocking

    def __enter__(self) -> Stream:
        _current.streams.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.streams.pop()

    def synchronize(self) -> None:
        pass

    def record(self, event: Event | None = None) -> Event:
        return event or Event()

    def wait_event(self, event: Event) -> None:
        pass

    def use(self) -> Stream:
        return self


_NULL_STREAM = Stream(null=True)


def _get_current_stream(device_id: int = -1) -> Stream:
    return _current.streams[-1] if _current.streams else _NULL_STREAM


class Device:
    """Devices 0 and 1 (arrays all live in host memory: only which one is current matters)."""

    def __init__(self, device: int | None = None) -> None:
        self.id = _current.device if device is None else int(device)
        if self.id not in (0, 1):
            raise ValueError(f"the stand-in has devices 0 and 1, not {self.id}")
        self._previous: list[int] = []

    def use(self) -> None:
        _current.device = self.id

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> Device:
        self._previous.append(_current.device)
        _current.device = self.id
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.device = self._previous.pop()


class _MemoryPool:
    def __init__(self) -> None:
        self.held = 0

    def total_bytes(self) -> int:
        return self.held

    def used_bytes(self) -> int:
        return self.held

    def free_all_blocks(self) -> None:
        self.held = 0

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        pass


_POOL = _MemoryPool()


class RawKernel:
    """Compiles nothing: with the stand-in installed, kernel launches go to the CPU emulator
    (``mini_iformer.ops.cuda.emulate``), so this is never called."""

    def __init__(self, code: str, name: str, options: tuple = (), backend: str = "nvrtc"):
        self.code, self.name = code, name

    def __call__(self, grid: tuple, block: tuple, args: tuple, **kwargs: Any) -> None:
        raise RuntimeError(f"stand-in RawKernel {self.name}: launches go through the emulator")


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _call(function: Any, args: tuple, kwargs: dict) -> Any:
    """``function`` (NumPy's) on device arrays only, its result as device arrays."""
    name = getattr(function, "__name__", "function")
    return _wrap(function(*_device_only(args, name),
                          **dict(zip(kwargs, _device_only(tuple(kwargs.values()), name)))))


def _on_device(function: Any) -> Any:
    """``function`` with the device rules (classes and constants are left as they are)."""
    if not callable(function) or isinstance(function, type):
        return function

    def device_function(*args: Any, **kwargs: Any) -> Any:
        return _call(function, args, kwargs)

    device_function.__name__ = getattr(function, "__name__", "function")
    return device_function


class _Cupy(types.ModuleType):
    """The module: what the library uses of CuPy, spelled as CuPy spells it; the rest of
    CuPy's NumPy-compatible functions from NumPy, with the device rules."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(np, name)
        value = _Ufunc(value) if isinstance(value, np.ufunc) else _on_device(value)
        setattr(self, name, value)
        return value


class _Ufunc:
    """A ufunc with the device rules, ``at`` included (CuPy 13+'s ``cupy.add.at``)."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self.ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "out" in kwargs:
            out = kwargs["out"]
            kwargs["out"] = _device_only(out if isinstance(out, tuple) else (out,), self.__name__)
        return _wrap(self.ufunc(*_device_only(args, self.__name__), **kwargs))

    def at(self, a: ndarray, indices: Any, b: Any = None) -> None:
        target = _device_only(a, "at")
        index = _device_only(indices if isinstance(indices, tuple) else (indices,), "at")
        index = index if isinstance(indices, tuple) else index[0]
        if b is None:
            self.ufunc.at(target, index)
        else:
            self.ufunc.at(target, index, _device_only(b, "at"))

    def reduce(self, *args: Any, **kwargs: Any) -> Any:
        return _wrap(self.ufunc.reduce(*_device_only(args, self.__name__), **kwargs))


def _make() -> tuple[types.ModuleType, types.ModuleType]:
    cupy = _Cupy("cupy")
    runtime = _module("cupy.cuda.runtime", getDeviceCount=lambda: 1, deviceSynchronize=lambda: None,
                      CUDARuntimeError=RuntimeError)
    cupy.cuda = _module(
        "cupy.cuda", runtime=runtime, Stream=Stream, Event=Event, Device=Device,
        get_current_stream=_get_current_stream,
        alloc_pinned_memory=lambda size: memoryview(bytearray(int(size))),
    )
    cupy.ndarray = ndarray
    cupy.asarray = asarray
    cupy.array = array
    cupy.asnumpy = lambda a, stream=None: a.get() if isinstance(a, ndarray) else np.asarray(a)
    cupy.get_default_memory_pool = lambda: _POOL
    cupy.get_default_pinned_memory_pool = lambda: _POOL
    cupy.RawKernel = RawKernel
    cupy.__version__ = "stand-in"
    special = _module("cupyx.scipy.special", erf=_on_device(scipy.special.erf),
                      erfc=_on_device(scipy.special.erfc))
    return cupy, special


MODULE, SPECIAL = _make()


@contextlib.contextmanager
def installed():
    """Within the block the library's "cupy" backend is this stand-in, selected, with kernel
    launches on the CPU emulator; the previous state comes back afterwards."""
    from mini_iformer import backend
    from mini_iformer.ops import cuda_emulator

    restore = backend.substitute_cupy(MODULE, ndarray, SPECIAL)
    try:
        backend.set_backend("cupy")
        with cuda_emulator.emulated():
            yield MODULE
    finally:
        restore()
