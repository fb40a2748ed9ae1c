"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports CuPy or knows it exists. It holds one setting, the
backend on which new tensors are created (:func:`set_backend`), and answers two questions:
which array module an operation's arrays belong to (:func:`array_module`: every operation
takes its ``xp`` from its inputs this way) and, through the few helpers below, how to do what
the two libraries spell differently:

==================  ===========================  ==================================
helper              NumPy                        CuPy
==================  ===========================  ==================================
``scatter_add``     ``np.add.at``                ``cupy.add.at``
``erf``, ``erfc``    ``scipy.special``            ``cupyx.scipy.special``
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
    "erfc",
    "array_module",
    "module_of",
    "cupy_loaded",
]

#: The names :func:`set_backend` accepts.
BACKENDS = ("numpy", "cupy")

#: Environment variable read once, when the package is imported.
ENV_VAR = "MINI_IFORMER_BACKEND"


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
            f"({exc}). Install the build for your driver's CUDA generation (nvidia-smi "
            "prints it): `pip install cupy-cuda13x` or `pip install cupy-cuda12x` (the extras "
            "[gpu-cuda13] and [gpu-cuda12]); "
            "or use the default backend with set_backend('numpy')."
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError, or a driver that fails to load
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


def _loaded_cupy() -> ModuleType:
    """CuPy, for an array known to be a CuPy array: one exists only once CuPy is loaded."""
    if _cupy is None:
        raise RuntimeError("internal error: a CuPy array was found but CuPy is not loaded")
    return _cupy


def substitute_cupy(module: ModuleType, array_type: type, special: ModuleType) -> Any:
    """For test tools only (``tests/standin_cupy.py``): run the "cupy" backend on a stand-in
    ``module`` whose arrays are of ``array_type``, with ``special`` as its
    ``cupyx.scipy.special``. Returns a function that puts everything back as it was."""
    global _cupy, _special_module
    saved = (_cupy, list(_ARRAY_TYPES), _special_module, _name)
    _cupy = module
    _ARRAY_TYPES.insert(0, (array_type, "cupy"))
    _special_module = lambda: special  # noqa: E731

    def restore() -> None:
        global _cupy, _special_module
        _cupy, _ARRAY_TYPES[:], _special_module, name = saved
        set_backend(name)

    return restore


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
    """The array module of the current backend (``numpy`` or ``cupy``), where new tensors are
    created. Operations use :func:`array_module` of their inputs instead."""
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


def array_module(*arrays: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of the arrays an operation received.

    This is how every operation picks its ``xp``: from its inputs, never from a global
    setting, so an operation on GPU arrays runs on the GPU whatever :func:`set_backend` says
    (tensors are *created* on the current backend; see :func:`get_xp`). Non-arrays (numbers,
    None) are ignored; with no array at all, NumPy.
    """
    for a in arrays:
        if array_backend(a) == "cupy":
            return _loaded_cupy()
    return np


def cupy_loaded() -> bool:
    """Whether CuPy has been imported (by selecting the "cupy" backend)."""
    return _cupy is not None


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


def to_numpy(a: Any) -> np.ndarray:
    """A host NumPy array with the contents of ``a`` (a copy when ``a`` is on the GPU)."""
    if array_backend(a) == "cupy":
        return a.get()
    return np.asarray(a)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` in place, adding repeatedly for repeated indices."""
    if array_backend(target) == "cupy":
        add_at = getattr(_loaded_cupy().add, "at", None)  # CuPy >= 13; cupyx.scatter_add before
        if add_at is None:
            import cupyx  # noqa: PLC0415

            add_at = cupyx.scatter_add
        add_at(target, index, values)
    else:
        np.add.at(target, index, values)


def _special_module() -> ModuleType:
    """CuPy's ``cupyx.scipy.special``."""
    import cupyx.scipy.special  # noqa: PLC0415

    return cupyx.scipy.special


def _special(name: str, x: Any) -> Any:
    """``scipy.special.<name>`` (or CuPy's), elementwise, keeping the dtype of ``x``."""
    if array_backend(x) == "cupy":
        return getattr(_special_module(), name)(x)
    import scipy.special  # noqa: PLC0415 - scipy loads slowly; load on use

    return getattr(scipy.special, name)(x)


def erf(x: Any) -> Any:
    """The error function, elementwise, keeping the dtype of ``x``."""
    return _special("erf", x)


def erfc(x: Any) -> Any:
    """1 - erf(x), elementwise, keeping the dtype of ``x`` and its relative accuracy where
    erf(x) is close to 1."""
    return _special("erfc", x)


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
