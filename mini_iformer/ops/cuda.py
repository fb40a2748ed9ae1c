"""CUDA kernels for the CuPy backend: how they are written, compiled once, and launched.

Most operations run on a GPU unchanged: CuPy implements the NumPy calls they are made of,
and the matrix products go to cuBLAS through ``xp.matmul``. A few formulations that are fast
on a CPU are slow on a GPU, because they launch many small kernels or copy data around
(the depthwise convolution's loop over kernel offsets, im2col's strided copy, max pooling's
running argmax, GELU's dozen elementwise passes). For those, the operation has a CUDA
implementation: its kernels live in a ``.cu`` file next to the op family (``conv.cu``,
``pool.cu``, ``activation.cu``), and a few lines of Python launch them (``conv_cuda.py``,
``pool_cuda.py``, the end of ``activation_fast.py``).

Every kernel here follows one convention, so that one launcher serves them all:

* it is plain CUDA C, ``extern "C" __global__``, with the element type written ``T`` (the
  launcher prepends ``typedef float T;`` or ``typedef double T;``) and sizes and indices of
  type ``index_t`` (64-bit);
* one thread per *output* element, visited with a grid-stride loop (``GRID_STRIDE_LOOP``),
  so that a thread only ever writes its own outputs: no atomics, no races, and a result that
  does not depend on the launch configuration or on the order threads run in (backward passes
  *gather* what reaches an input instead of scattering into it, finding the outputs that read
  it with ``gather_index``);
* Python ints are passed as ``index_t``, Python floats as ``T``, arrays as pointers to their
  (C-contiguous) data.

A :class:`Kernel` names one function of a ``.cu`` file (read once, when first needed),
compiles it the first time it is launched for a dtype (CuPy caches the binary on disk too) and
keeps the compiled function. Every kernel is listed in :data:`KERNELS`. Because of the
convention above the same source also compiles as C++ for the CPU, one "thread" at a time:
the tests run every kernel that way on machines without a GPU (:mod:`.cuda_emulator`, through
:func:`emulate`), so the indexing is checked everywhere and the GPU only has to confirm the
speed.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import numpy as np

from .. import backend

__all__ = ["Kernel", "KERNELS", "PRELUDE", "use_kernels", "emulate", "source_for", "pack_args"]

#: Text put before every kernel's source.
PRELUDE = r"""
typedef long long index_t;
#define GRID_STRIDE_LOOP(i, n) \
    for (index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (index_t)blockDim.x * gridDim.x)

// For a gathering backward pass: the output index r whose window, read with this stride,
// starts at offset s (s = r * stride), or -1 when there is none (s negative, not a multiple
// of the stride, or r past the n outputs).
__device__ __forceinline__ index_t gather_index(index_t s, index_t stride, index_t n) {
    if (s < 0 || s % stride) return -1;
    s /= stride;
    return s < n ? s : -1;
}
"""

_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

#: Threads per block; blocks are capped, the grid-stride loop covers the rest.
THREADS = 256
MAX_BLOCKS = 65535

# A runner, when set, replaces CuPy: it is called as runner(kernel, n, args, dtype) with NumPy
# arrays. Set by emulate(); thread-local so that a test's emulation cannot leak elsewhere.
_local = threading.local()


def _runner() -> Callable[..., None] | None:
    return getattr(_local, "runner", None)


def use_kernels(*arrays: Any) -> bool:
    """True when ``arrays`` live on the GPU (or a test emulates the kernels on the CPU) and
    their dtype has a kernel (float32, float64)."""
    if not all(np.dtype(a.dtype) in _C_TYPES for a in arrays):
        return False
    if _runner() is not None:
        return True
    return all(backend.array_backend(a) == "cupy" for a in arrays)


def supports(*inputs: Any, **params: Any) -> bool:
    """An implementation's ``supports`` for the CUDA forms: the floating-point array inputs
    are on the GPU (or emulated) and have kernels."""
    arrays = [a for a in inputs if backend.is_array(a) and a.dtype.kind == "f"]
    return bool(arrays) and use_kernels(*arrays)


def source_for(source: str, dtype: Any) -> str:
    """The full source of a kernel for one element type."""
    return f"{PRELUDE}\ntypedef {_C_TYPES[np.dtype(dtype)]} T;\n{source}"


def pack_args(args: tuple, dtype: Any) -> tuple:
    """Python ints -> int64, Python floats -> the element type; arrays unchanged."""
    scalar = np.dtype(dtype).type
    out = []
    for a in args:
        if isinstance(a, (bool, np.bool_)):
            raise TypeError("kernel arguments: pass flags as ints, not bools")
        if isinstance(a, (int, np.integer)):
            out.append(np.int64(a))
        elif isinstance(a, (float, np.floating)):
            out.append(scalar(a))
        else:
            out.append(a)
    return tuple(out)


@functools.cache
def read_source(file: str) -> str:
    """The text of the ``.cu`` file ``file`` of this package (read once)."""
    return resources.files(__package__).joinpath(file).read_text()


#: Every kernel, by name.
KERNELS: dict[str, Kernel] = {}


class Kernel:
    """A CUDA kernel in the convention of this module: the function ``name`` of the package's
    ``.cu`` file ``file``.

    ``Kernel(name, file)(n, *args, dtype=...)`` runs ``n`` logical threads of it for element
    type ``dtype`` (float32 or float64). Compiled on first use per dtype.
    """

    def __init__(self, name: str, file: str) -> None:
        if name in KERNELS:
            raise ValueError(f"kernel {name!r} is defined twice")
        self.name = name
        self.file = file
        self._compiled: dict[np.dtype, Any] = {}
        KERNELS[name] = self

    @property
    def source(self) -> str:
        """The source of the whole ``.cu`` file the kernel is in."""
        return read_source(self.file)

    def _function(self, dtype: np.dtype) -> Any:
        fn = self._compiled.get(dtype)
        if fn is None:
            cupy = backend.module_of("cupy")
            fn = cupy.RawKernel(source_for(self.source, dtype), self.name)
            self._compiled[dtype] = fn
        return fn

    def __call__(self, n: int, *args: Any, dtype: Any) -> None:
        dtype = np.dtype(dtype)
        if dtype not in _C_TYPES:
            raise TypeError(f"kernel {self.name}: no kernel for dtype {dtype}")
        if n <= 0:
            return
        packed = pack_args(args, dtype)
        runner = _runner()
        if runner is not None:
            runner(self, n, packed, dtype)
            return
        blocks = min(MAX_BLOCKS, -(-n // THREADS))
        self._function(dtype)((blocks,), (THREADS,), packed)


@contextlib.contextmanager
def emulate(runner: Callable[[Kernel, int, tuple, np.dtype], None]) -> Iterator[None]:
    """Within the block, operations on NumPy arrays take their GPU paths, and every kernel
    launch is handed to ``runner(kernel, n, args, dtype)`` (the tests' CPU emulator)."""
    previous = _runner()
    _local.runner = runner
    try:
        yield
    finally:
        _local.runner = previous
