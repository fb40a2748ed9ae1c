"""Run a row-wise computation in cache-sized blocks, on every core (NumPy backend).

Why this is faster. NumPy runs each call on one core, and each call is a full pass over its
operands: a chain of k calls over a large array reads and writes it k times from main memory.
Cutting the rows into blocks that fit in the CPU cache and running the whole chain on one
block before moving to the next turns k trips to memory into about one. NumPy releases the GIL
inside its loops, so threads working on different blocks run in parallel on separate cores.

Ops use it for computations that are a few passes over short rows (layer norm over channels,
softmax over keys, GELU). CuPy needs neither trick: there the whole array is one block.

The number of threads defaults to the number of CPUs (at most 4); set the environment variable
``MINI_IFORMER_NUM_THREADS`` to change it (1 turns threading off).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .. import backend

#: Elements per block: a block and the few scratch arrays of one step stay in the L2 cache,
#: and a block is still long enough to hide the ~1 us cost of a NumPy call.
BLOCK_ELEMENTS = 1 << 16


def _threads() -> int:
    value = os.environ.get("MINI_IFORMER_NUM_THREADS", "")
    if value.strip():
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(
                f"MINI_IFORMER_NUM_THREADS={value!r} is not a whole number of threads"
            ) from None
    return max(1, min(4, os.cpu_count() or 1))


THREADS = _threads()
_pool: ThreadPoolExecutor | None = None


def block_rows(row_size: int, elements: int = 0) -> int:
    """How many rows of ``row_size`` elements one block of ``elements`` (default
    :data:`BLOCK_ELEMENTS`) holds."""
    return max(1, (elements or BLOCK_ELEMENTS) // max(row_size, 1))


def tile_rows(v: Any, n_rows: int, n_total: int) -> Any:
    """``v`` (one row) repeated for the rows of one block, as a contiguous array on NumPy.

    Multiplying a block by a pre-tiled row is a plain elementwise loop, about twice as fast as
    NumPy's broadcasting of a short row over many rows; on CuPy a broadcast view is as good.
    """
    xp = backend.get_xp()
    shape = (min(n_rows, n_total), v.shape[-1])
    if backend.array_backend(v) != "numpy":
        return xp.broadcast_to(v, shape)
    return xp.ascontiguousarray(xp.broadcast_to(v, shape))


def for_each_block(
    n_rows: int, row_size: int, fn: Callable[[int, int], Any], like: Any, elements: int = 0
) -> list[Any]:
    """Call ``fn(start, stop)`` over consecutive row ranges that together cover ``n_rows``,
    each of about ``elements`` elements (default :data:`BLOCK_ELEMENTS`).

    ``like`` is any array of the computation; on CuPy, ``fn`` is called once for all rows.
    Blocks are dealt to the threads in contiguous runs. ``fn`` must only write to its own rows;
    whatever it returns is collected in row order (e.g. partial sums to add up).
    """
    global _pool
    if backend.array_backend(like) != "numpy" or n_rows == 0:
        return [fn(0, n_rows)]
    rows = block_rows(row_size, elements)
    bounds = [(s, min(s + rows, n_rows)) for s in range(0, n_rows, rows)]
    workers = min(THREADS, len(bounds))
    if workers <= 1:
        return [fn(s, e) for s, e in bounds]

    def run(group: list[tuple[int, int]]) -> list[Any]:
        return [fn(s, e) for s, e in group]

    cuts = [len(bounds) * i // workers for i in range(workers + 1)]
    groups = [bounds[cuts[i] : cuts[i + 1]] for i in range(workers)]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="mini_iformer")
    return [r for part in _pool.map(run, groups) for r in part]
