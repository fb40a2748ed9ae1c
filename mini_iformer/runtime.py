"""Runtime tuning: how the library uses the machine, apart from what it computes.

Nothing here changes a result; each piece only makes the same arithmetic cheaper:

* :func:`for_each_block` runs a row-wise computation in cache-sized blocks on every core
  (NumPy). The fast forms of layer norm, softmax and GELU use it.
* :func:`keep_freed_memory` lets the C library reuse freed activations instead of asking the
  kernel for fresh pages every training step (glibc's ``mallopt``).
* :func:`to_device_async` sends small host arrays (drop-path and dropout masks) to the GPU
  through a ring of pinned staging buffers, so the host never waits for the GPU.
* :func:`gpu_memory_peak_mib` reads CuPy's memory pool.

The number of threads defaults to the number of CPUs (at most 4); set the environment variable
``MINI_IFORMER_NUM_THREADS`` to change it (1 turns threading off). ``with blocks(elements=...,
threads=...)`` overrides both for a block of code: the tests use it to run every blocked loop
through many small blocks.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import backend

__all__ = [
    "BLOCK_ELEMENTS",
    "threads",
    "block_elements",
    "blocks",
    "block_rows",
    "tile_rows",
    "for_each_block",
    "keep_freed_memory",
    "to_device_async",
    "gpu_memory_peak_mib",
]

# =============================================================================================
# Blocks of rows on every core
# =============================================================================================
#: Elements per block unless an operation says otherwise: a block and the few scratch arrays
#: of one step stay in the L2 cache, and a block is still long enough to hide the ~1 us cost
#: of a NumPy call.
BLOCK_ELEMENTS = 1 << 16


def _threads_from_environment() -> int:
    value = os.environ.get("MINI_IFORMER_NUM_THREADS", "")
    if value.strip():
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(
                f"MINI_IFORMER_NUM_THREADS={value!r} is not a whole number of threads"
            ) from None
    return max(1, min(4, os.cpu_count() or 1))


_THREADS = _threads_from_environment()
_forced: dict[str, int] = {}  # set by blocks()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def threads() -> int:
    """How many threads a blocked loop uses."""
    return _forced.get("threads", _THREADS)


def block_elements(default: int = BLOCK_ELEMENTS) -> int:
    """Elements per block: an operation's own ``default``, unless :func:`blocks` forces one."""
    return _forced.get("elements", default)


@contextlib.contextmanager
def blocks(elements: int | None = None, threads: int | None = None) -> Iterator[None]:
    """Within the block, every blocked loop uses ``elements`` per block and ``threads``
    threads (each left as it is when None). Results do not depend on either."""
    for name, value in (("elements", elements), ("threads", threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"blocks: {name} must be a positive int, got {value!r}")
    previous = dict(_forced)
    _forced.update({k: v for k, v in (("elements", elements), ("threads", threads)) if v})
    try:
        yield
    finally:
        _forced.clear()
        _forced.update(previous)


def block_rows(row_size: int, elements: int = BLOCK_ELEMENTS) -> int:
    """How many rows of ``row_size`` elements one block of ``elements`` holds (at least 1)."""
    return max(1, block_elements(elements) // max(row_size, 1))


def tile_rows(v: Any, n_rows: int, n_total: int) -> Any:
    """``v`` (one row) repeated for the rows of one block, as a contiguous array on NumPy.

    Multiplying a block by a pre-tiled row is a plain elementwise loop, about twice as fast as
    NumPy's broadcasting of a short row over many rows; on CuPy a broadcast view is as good.
    """
    xp = backend.array_module(v)
    shape = (min(n_rows, n_total), v.shape[-1])
    if xp is not np:
        return xp.broadcast_to(v, shape)
    return np.ascontiguousarray(np.broadcast_to(v, shape))


def for_each_block(
    n_rows: int,
    row_size: int,
    fn: Callable[[int, int], Any],
    like: Any,
    elements: int = BLOCK_ELEMENTS,
) -> list[Any]:
    """Call ``fn(start, stop)`` over consecutive row ranges that together cover ``n_rows``,
    each of about ``elements`` elements.

    Why it is faster. NumPy runs each call on one core, and each call is a full pass over its
    operands: a chain of k calls over a large array reads and writes it k times from main
    memory. Running the whole chain on one cache-sized block before moving to the next turns k
    trips to memory into about one. NumPy releases the GIL inside its loops, so threads working
    on different blocks run in parallel on separate cores.

    ``like`` is any array of the computation; on CuPy (no cache to fit, one kernel per call is
    best) ``fn`` is called once for all rows. Blocks are dealt to the threads in contiguous
    runs. ``fn`` must only write to its own rows; whatever it returns is collected in row
    order (e.g. partial sums to add up).
    """
    global _pool, _pool_size
    if backend.array_module(like) is not np or n_rows == 0:
        return [fn(0, n_rows)]
    rows = block_rows(row_size, elements)
    bounds = [(s, min(s + rows, n_rows)) for s in range(0, n_rows, rows)]
    workers = min(threads(), len(bounds))
    if workers <= 1:
        return [fn(s, e) for s, e in bounds]

    def run(group: list[tuple[int, int]]) -> list[Any]:
        return [fn(s, e) for s, e in group]

    cuts = [len(bounds) * i // workers for i in range(workers + 1)]
    groups = [bounds[cuts[i] : cuts[i + 1]] for i in range(workers)]
    if _pool is None or _pool_size < workers:
        _pool_size = max(workers, _THREADS)
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="mini_iformer")
    return [r for part in _pool.map(run, groups) for r in part]


# =============================================================================================
# Memory
# =============================================================================================
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
    if not backend.cupy_loaded():
        return None
    return backend.module_of("cupy").get_default_memory_pool().total_bytes() / 2**20


# Host -> GPU copies that do not wait: staging buffers in pinned (page-locked) host memory,
# each with the CUDA event recorded after its copy; a buffer is reused once its event is done.
_staging: list[tuple[Any, Any, int]] = []  # (pinned memory, event, bytes)
_STAGING_KEEP = 32


def _staging_buffer(cupy: Any, nbytes: int) -> tuple[Any, int]:
    for i, (mem, event, size) in enumerate(_staging):
        if size >= nbytes and event.done:
            del _staging[i]
            return mem, size
    return cupy.cuda.alloc_pinned_memory(max(nbytes, 1)), max(nbytes, 1)


def to_device_async(data: Any) -> Any:
    """Host data as an array of the current backend, like :func:`backend.asarray`, but on
    the GPU without making the host wait.

    A plain copy from ordinary (pageable) host memory waits for every kernel already queued
    on the GPU before it starts, so each small array sent during a training step (a drop-path
    mask, say) would stall the step. Here the data is first copied into pinned host memory,
    from which the GPU copies it asynchronously, in order with the work already queued. On
    NumPy this is ``np.asarray``.
    """
    if backend.get_backend() != "cupy" or backend.array_backend(data) == "cupy":
        return backend.asarray(data)
    cupy = backend.module_of("cupy")
    host = np.require(data, requirements="C")  # (not ascontiguousarray: it makes 0-d 1-d)
    mem, size = _staging_buffer(cupy, host.nbytes)
    staged = np.frombuffer(mem, np.uint8, host.nbytes).view(host.dtype).reshape(host.shape)
    staged[...] = host
    out = cupy.empty(host.shape, host.dtype)
    stream = cupy.cuda.get_current_stream()
    out.set(staged, stream=stream)
    _staging.append((mem, stream.record(), size))
    if len(_staging) > _STAGING_KEEP:
        for i, (_, event, _) in enumerate(_staging):
            if event.done:
                del _staging[i]
                break
    return out
