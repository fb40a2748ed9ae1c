"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports CuPy or knows it exists. Everything else asks it for
``xp`` (the array module of the current backend) and for the few helpers whose APIs differ
between the two libraries:

==================  ===========================  ==================================
helper              NumPy                        CuPy
==================  ===========================  ==================================
``scatter_add``     ``np.add.at``                ``cupy.add.at``
``erf``             ``scipy.special.erf``        ``cupyx.scipy.special.erf``
``to_numpy``        the array itself             ``array.get()`` (device -> host)
``asarray``         ``np.asarray``               ``cupy.asarray`` (host -> device)
==================  ===========================  ==================================

Choosing a backend::

    import mini_iformer as mi
    mi.set_backend("cupy")          # or: MINI_IFORMER_BACKEND=cupy python train.py
    mi.get_backend()                # -> "cupy"

Asking for CuPy where it is not installed, or where no GPU is visible, raises one
:class:`BackendUnavailableError` saying which and how to fix it. Arrays of two backends in
one operation raise :class:`BackendMismatchError` (see :func:`common_backend`).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "BackendMismatchError",
    "set_backend",
    "get_backend",
    "get_xp",
    "array_backend",
    "common_backend",
    "is_array",
    "asarray",
    "to_numpy",
    "scatter_add",
    "erf",
    "set_cudnn",
    "cudnn_enabled",
    "gpu_memory_peak_mib",
    "to_device_async",
    "keep_freed_memory",
]

#: The names :func:`set_backend` accepts.
BACKENDS = ("numpy", "cupy")

#: Environment variable read once, when the package is imported.
ENV_VAR = "MINI_IFORMER_BACKEND"
#: Environment variable that switches cuDNN on ("1") when the package is imported.
CUDNN_ENV_VAR = "MINI_IFORMER_CUDNN"


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine (library missing, no GPU)."""


class BackendMismatchError(TypeError):
    """Arrays that live on two different backends met in one operation."""


# (array type, backend name) pairs, most specific first. CuPy's entry is added when CuPy is
# loaded; until then no CuPy array can exist in this process.
_ARRAY_TYPES: list[tuple[type, str]] = [(np.ndarray, "numpy")]

_name = "numpy"
_xp: ModuleType = np
_cupy: ModuleType | None = None
_use_cudnn = False


def _load_cupy() -> ModuleType:
    """Import CuPy and check that a GPU is usable; raise one clear error otherwise."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy  # noqa: PLC0415 - the one place CuPy is imported
    except ImportError as exc:
        raise BackendUnavailableError(
            "The 'cupy' backend needs CuPy, which is not installed "
            f"({exc}). Install the build matching your CUDA version, e.g. "
            "`pip install cupy-cuda12x`, or `pip install mini-iformer[gpu]`; "
            "or use the default backend with set_backend('numpy')."
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, or a driver that fails to load
        raise BackendUnavailableError(
            "The 'cupy' backend found CuPy but no usable NVIDIA GPU "
            f"({type(exc).__name__}: {exc}). Check the driver with `nvidia-smi`, "
            "or use set_backend('numpy')."
        ) from None
    if count < 1:
        raise BackendUnavailableError(
            "The 'cupy' backend found CuPy but no NVIDIA GPU is visible "
            "(cupy.cuda.runtime.getDeviceCount() == 0). Check CUDA_VISIBLE_DEVICES and "
            "`nvidia-smi`, or use set_backend('numpy')."
        )
    _cupy = cupy
    _ARRAY_TYPES.insert(0, (cupy.ndarray, "cupy"))
    return cupy


def set_backend(name: str) -> None:
    """Make ``name`` ("numpy" or "cupy") the backend for tensors created from now on.

    Tensors that already exist keep their arrays; combining them with tensors of the new
    backend raises :class:`BackendMismatchError`.
    """
    global _name, _xp
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    name = name.lower()
    _xp = _load_cupy() if name == "cupy" else np
    _name = name


def get_backend() -> str:
    """The name of the current backend: "numpy" or "cupy"."""
    return _name


def get_xp() -> ModuleType:
    """The array module of the current backend (``numpy`` or ``cupy``)."""
    return _xp


def array_backend(a: Any) -> str | None:
    """The backend an array belongs to ("numpy", "cupy"), or None if ``a`` is not an array."""
    for kind, name in _ARRAY_TYPES:
        if isinstance(a, kind):
            return name
    return None


def is_array(a: Any) -> bool:
    """True for an array of any known backend."""
    return array_backend(a) is not None


def module_of(name: str) -> ModuleType:
    """The array module of backend ``name``."""
    return _load_cupy() if name == "cupy" else np


def common_backend(arrays: Any, op: str = "operation") -> str:
    """The backend shared by ``arrays`` (non-arrays are ignored); raise if they differ."""
    found: str | None = None
    for a in arrays:
        name = array_backend(a)
        if name is None:
            continue
        if found is None:
            found = name
        elif name != found:
            raise BackendMismatchError(
                f"{op}: inputs live on different backends ({found} and {name}). Move them "
                "to one backend first, e.g. create both after set_backend(...), or convert "
                "with Tensor.numpy() / mini_iformer.tensor(...)."
            )
    return found if found is not None else _name


def asarray(data: Any, dtype: Any = None) -> Any:
    """``data`` as an array of the current backend (copying between host and device if needed)."""
    if _name == "numpy":
        if array_backend(data) == "cupy":
            data = data.get()
        return np.asarray(data, dtype=dtype)
    return _xp.asarray(data, dtype=dtype)


# Host -> GPU copies that do not wait: staging buffers in pinned (page-locked) host memory,
# each with the CUDA event recorded after its copy; a buffer is reused once its event is done.
_staging: list[tuple[Any, Any, int]] = []  # (pinned memory, event, bytes)
_STAGING_KEEP = 32


def _staging_buffer(nbytes: int) -> Any:
    for i, (mem, event, size) in enumerate(_staging):
        if size >= nbytes and event.done:
            del _staging[i]
            return mem, size
    return _cupy.cuda.alloc_pinned_memory(max(nbytes, 1)), max(nbytes, 1)


def to_device_async(data: Any) -> Any:
    """Host data as an array of the current backend, like :func:`asarray`, but on the GPU
    without making the host wait.

    A plain copy from ordinary (pageable) host memory waits for every kernel already queued
    on the GPU before it starts, so each small array sent during a training step (a drop-path
    mask, say) would stall the step. Here the data is first copied into pinned host memory,
    from which the GPU copies it asynchronously, in order with the work already queued. On
    NumPy this is ``np.asarray``.
    """
    if _name != "cupy" or array_backend(data) == "cupy":
        return asarray(data)
    host = np.ascontiguousarray(data)
    mem, size = _staging_buffer(host.nbytes)
    staged = np.frombuffer(mem, np.uint8, host.nbytes).view(host.dtype).reshape(host.shape)
    staged[...] = host
    out = _cupy.empty(host.shape, host.dtype)
    stream = _cupy.cuda.get_current_stream()
    out.set(staged, stream=stream)
    _staging.append((mem, stream.record(), size))
    if len(_staging) > _STAGING_KEEP:
        for i, (_, event, _) in enumerate(_staging):
            if event.done:
                del _staging[i]
                break
    return out


def to_numpy(a: Any) -> np.ndarray:
    """A host NumPy array with the contents of ``a`` (a copy when ``a`` is on the GPU)."""
    if array_backend(a) == "cupy":
        return a.get()
    return np.asarray(a)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` in place, adding repeatedly for repeated indices."""
    if array_backend(target) == "cupy":
        add_at = getattr(_cupy.add, "at", None)  # CuPy >= 13; cupyx.scatter_add before
        if add_at is None:
            import cupyx  # noqa: PLC0415

            add_at = cupyx.scatter_add
        add_at(target, index, values)
    else:
        np.add.at(target, index, values)


def erf(x: Any) -> Any:
    """The error function, elementwise, keeping the dtype of ``x``."""
    if array_backend(x) == "cupy":
        import cupyx.scipy.special  # noqa: PLC0415

        return cupyx.scipy.special.erf(x)
    from scipy.special import erf as _erf  # noqa: PLC0415 - scipy loads slowly; load on use

    return _erf(x)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_kept = False


def keep_freed_memory() -> bool:
    """Let the C library reuse the memory NumPy frees instead of returning it to the system.

    Why it pays: glibc serves large allocations (above a threshold of 128 KiB to 32 MiB) with
    fresh pages from the kernel, and hands them back when they are freed. A training step
    allocates and frees hundreds of megabytes of activations and gradients. Every fresh page
    costs a page fault and a zero-fill the first time it is touched, which measured about 10%
    of an ``iformer_cifar`` training step on the CPU. With both thresholds raised, freed
    blocks stay in the process and are reused.

    The cost is that the process keeps the memory of its largest step until it exits, which
    is what a training loop needs anyway. Process-wide, so the library does not do this on
    import: ``train_cifar.py`` and the benchmarks call it. Returns True when applied (glibc),
    False where the C library has no ``mallopt``.
    """
    global _kept
    if _kept:
        return True
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    largest = 2**31 - 1
    _kept = bool(mallopt(_M_MMAP_THRESHOLD, largest)) and bool(mallopt(_M_TRIM_THRESHOLD, largest))
    return _kept


def gpu_memory_peak_mib() -> float | None:
    """MiB of GPU memory held by CuPy's memory pool, which keeps the blocks it has allocated
    for reuse and so holds the most the process has needed at once (the analogue of
    ``torch.cuda.max_memory_reserved``); None when CuPy has not been used."""
    if _cupy is None:
        return None
    return _cupy.get_default_memory_pool().total_bytes() / 2**20


def set_cudnn(enabled: bool) -> None:
    """Let convolutions on the GPU call cuDNN (through CuPy) instead of this project's own
    kernels. Off by default: the point of the project is the kernels you can read. Raises
    :class:`BackendUnavailableError` when switching on where CuPy has no cuDNN."""
    global _use_cudnn
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"set_cudnn: pass True or False, got {enabled!r}")
    if enabled:
        cudnn_module()
    _use_cudnn = bool(enabled)


def cudnn_enabled() -> bool:
    """Whether :func:`set_cudnn` switched cuDNN on."""
    return _use_cudnn


def cudnn_module() -> ModuleType:
    """CuPy's cuDNN wrapper (``cupyx.cudnn``, ``cupy.cudnn`` in older CuPy)."""
    _load_cupy()
    for name in ("cupyx.cudnn", "cupy.cudnn"):
        try:
            module = __import__(name, fromlist=["convolution_forward"])
        except ImportError:
            continue
        if hasattr(module, "convolution_forward"):
            return module
    raise BackendUnavailableError(
        "cuDNN is not available to CuPy here (neither cupyx.cudnn nor cupy.cudnn imports). "
        "Install it with `pip install nvidia-cudnn-cu12` (or your CUDA's build), or leave "
        "cuDNN off: the project's own kernels need nothing more than CuPy."
    )


def _from_environment() -> None:
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return
    try:
        set_backend(value)
    except ValueError:
        raise ValueError(
            f"environment variable {ENV_VAR}={value!r} names an unknown backend: "
            f"choose one of {', '.join(BACKENDS)}"
        ) from None


_from_environment()
if os.environ.get(CUDNN_ENV_VAR, "").strip() == "1":
    _use_cudnn = True
