"""Run the project's CUDA kernels on the CPU, for machines without a GPU (and for lessons).

Every kernel follows the conventions of :mod:`mini_iformer.ops.cuda` (plain CUDA C, one
thread per output, a grid-stride loop, no shared memory, no atomics). Such a kernel is also
valid C++ once ``__global__`` means nothing and ``blockIdx``/``threadIdx``/``blockDim``/
``gridDim`` are ordinary variables. This module compiles each kernel that way with the
system's C++ compiler and runs it "thread" by thread: a small grid of blocks, visited in
reverse order, so that a kernel whose result depended on the launch configuration or on the
order threads run in would give a wrong answer here.

What it checks: indexing, bounds, the arithmetic and the Python glue around each launch.
What it cannot: speed, and anything about real concurrency beyond the one-writer rule.

Use::

    from mini_iformer.ops import cuda_emulator
    with cuda_emulator.emulated():          # GPU paths on NumPy arrays, kernels on the CPU
        y = mi.functional.conv2d(x, w, padding=1, groups=x.shape[1])

It needs a C++ compiler (``g++``, ``c++`` or ``clang++``) on the PATH; :func:`available`
says whether there is one.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import cuda

CPU_PRELUDE = r"""
#include <math.h>
#include <cmath>
struct emu_dim3 { unsigned int x, y, z; };
static emu_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
extern "C" void emu_set_thread(unsigned int block, unsigned int thread,
                               unsigned int threads, unsigned int blocks) {
    blockIdx.x = block; threadIdx.x = thread; blockDim.x = threads; gridDim.x = blocks;
}
"""

#: The emulated launch: this many blocks of this many threads.
BLOCKS, THREADS = 3, 4

_compiler = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
_build_dir: Path | None = None
_libraries: dict[str, ctypes.CDLL] = {}


def _directory() -> Path:
    """A temporary folder for the compiled kernels, removed when the process exits."""
    global _build_dir
    if _build_dir is None:
        _build_dir = Path(tempfile.mkdtemp(prefix="mini_iformer_cuda_emulator_"))
        atexit.register(shutil.rmtree, _build_dir, ignore_errors=True)
    return _build_dir


def available() -> bool:
    """Whether a C++ compiler is on the PATH."""
    return _compiler is not None


def library(source: str) -> ctypes.CDLL:
    """``source`` (a kernel's full source, :func:`~.cuda.source_for`) compiled as C++ for the
    CPU and loaded; compiled once per distinct source."""
    text = CPU_PRELUDE + source
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    lib = _libraries.get(key)
    if lib is None:
        if _compiler is None:
            raise RuntimeError("cuda_emulator needs a C++ compiler (g++, c++ or clang++)")
        src, so = _directory() / f"{key}.cpp", _directory() / f"{key}.so"
        src.write_text(text)
        result = subprocess.run(
            [_compiler, "-O1", "-shared", "-fPIC", "-std=c++14", "-o", str(so), str(src)],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(f"compiling kernel source {src} failed:\n{result.stderr}")
        lib = _libraries[key] = ctypes.CDLL(str(so))
    return lib


def _c_argument(a):
    if isinstance(a, np.ndarray):
        if not a.flags.c_contiguous:
            raise AssertionError(
                f"a kernel was given a non-contiguous array (shape {a.shape}, strides "
                f"{a.strides}): kernels index their arrays as C-contiguous"
            )
        return ctypes.c_void_p(a.ctypes.data)
    if isinstance(a, np.int64):
        return ctypes.c_longlong(int(a))
    if isinstance(a, np.float32):
        return ctypes.c_float(float(a))
    if isinstance(a, np.float64):
        return ctypes.c_double(float(a))
    raise AssertionError(f"a kernel was given an argument of type {type(a).__name__}: {a!r}")


def run(kernel: cuda.Kernel, n: int, args: tuple, dtype: np.dtype) -> None:
    """The runner :func:`mini_iformer.ops.cuda.emulate` calls for each launch."""
    lib = library(cuda.source_for(kernel.source, dtype))
    fn = getattr(lib, kernel.name)
    fn.restype = None
    c_args = [_c_argument(a) for a in args]
    for block in reversed(range(BLOCKS)):
        for thread in reversed(range(THREADS)):
            lib.emu_set_thread(block, thread, THREADS, BLOCKS)
            fn(*c_args)


def emulated():
    """Context manager: GPU paths on NumPy arrays, kernels run by :func:`run`."""
    if not available():
        raise RuntimeError(
            "cuda_emulator needs a C++ compiler (g++, c++ or clang++) on the PATH, e.g. "
            "`apt install g++`"
        )
    return cuda.emulate(run)
