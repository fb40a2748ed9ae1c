"""Forward + backward time of every iFormer operation, ours (NumPy) against PyTorch (CPU).

    python benchmarks/ops.py                 # the whole table, writes benchmarks/ops_cpu.json
    python benchmarks/ops.py --only conv     # rows whose name contains "conv"

The shapes are those iFormer-S meets at 224x224 with batch 8, in float32. Each row builds the
same inputs for both frameworks, runs forward and backward (with the same random upstream
gradient) several times, and reports the best time of each (on a shared machine, other work
only ever adds time, so the minimum is the most repeatable figure) and the median. Both
frameworks run in this one process, one block of repeats after the other, so the ratio compares
them under the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the message is the point
    sys.exit(
        "benchmarks/ops.py compares against PyTorch: pip install torch (a CPU build is enough)"
    )

import mini_iformer as mi
import mini_iformer.functional as F

HERE = Path(__file__).resolve().parent


@dataclass
class Row:
    name: str
    shape: str
    ours: Callable[[list[mi.Tensor]], mi.Tensor]
    theirs: Callable[[list[torch.Tensor]], torch.Tensor]
    inputs: list[tuple[tuple[int, ...], bool]]  # (shape, requires grad) per input


def _rows() -> list[Row]:
    rows = []

    def add(name, shape, ours, theirs, *inputs):
        rows.append(Row(name, shape, ours, theirs, list(inputs)))

    # convolution
    add(
        "conv2d depthwise 3x3",
        "(8,64,56,56)",
        lambda t: F.conv2d(t[0], t[1], None, 1, 1, 1, 64),
        lambda t: TF.conv2d(t[0], t[1], None, 1, 1, 1, 64),
        ((8, 64, 56, 56), True),
        ((64, 1, 3, 3), True),
    )
    add(
        "conv2d depthwise 3x3",
        "(8,192,56,56)",
        lambda t: F.conv2d(t[0], t[1], None, 1, 1, 1, 192),
        lambda t: TF.conv2d(t[0], t[1], None, 1, 1, 1, 192),
        ((8, 192, 56, 56), True),
        ((192, 1, 3, 3), True),
    )
    add(
        "conv2d 1x1",
        "(8,96,56,56)->192",
        lambda t: F.conv2d(t[0], t[1], t[2]),
        lambda t: TF.conv2d(t[0], t[1], t[2]),
        ((8, 96, 56, 56), True),
        ((192, 96, 1, 1), True),
        ((192,), True),
    )
    add(
        "conv2d 3x3/s2 stem 1",
        "(8,3,224,224)->48",
        lambda t: F.conv2d(t[0], t[1], t[2], 2, 1),
        lambda t: TF.conv2d(t[0], t[1], t[2], 2, 1),
        ((8, 3, 224, 224), False),
        ((48, 3, 3, 3), True),
        ((48,), True),
    )
    add(
        "conv2d 3x3/s2 stem 2",
        "(8,48,112,112)->96",
        lambda t: F.conv2d(t[0], t[1], t[2], 2, 1),
        lambda t: TF.conv2d(t[0], t[1], t[2], 2, 1),
        ((8, 48, 112, 112), True),
        ((96, 48, 3, 3), True),
        ((96,), True),
    )
    add(
        "conv2d 3x3/s2 patch embed",
        "(8,96,56,56)->192",
        lambda t: F.conv2d(t[0], t[1], t[2], 2, 1),
        lambda t: TF.conv2d(t[0], t[1], t[2], 2, 1),
        ((8, 96, 56, 56), True),
        ((192, 96, 3, 3), True),
        ((192,), True),
    )
    # pooling and resizing
    add(
        "max_pool2d 3x3/s1/p1",
        "(8,32,56,56)",
        lambda t: F.max_pool2d(t[0], 3, 1, 1),
        lambda t: TF.max_pool2d(t[0], 3, 1, 1),
        ((8, 32, 56, 56), True),
    )
    add(
        "max_pool2d 3x3/s1/p1",
        "(8,96,28,28)",
        lambda t: F.max_pool2d(t[0], 3, 1, 1),
        lambda t: TF.max_pool2d(t[0], 3, 1, 1),
        ((8, 96, 28, 28), True),
    )
    add(
        "avg_pool2d 2x2",
        "(8,32,56,56)",
        lambda t: F.avg_pool2d(t[0], 2),
        lambda t: TF.avg_pool2d(t[0], 2),
        ((8, 32, 56, 56), True),
    )
    add(
        "interpolate nearest x2",
        "(8,32,28,28)",
        lambda t: F.interpolate(t[0], scale_factor=2),
        lambda t: TF.interpolate(t[0], scale_factor=2),
        ((8, 32, 28, 28), True),
    )
    add(
        "interpolate bilinear",
        "(1,96,56,56)->64x64",
        lambda t: F.interpolate(t[0], size=(64, 64), mode="bilinear", align_corners=False),
        lambda t: TF.interpolate(t[0], size=(64, 64), mode="bilinear", align_corners=False),
        ((1, 96, 56, 56), True),
    )
    # the transformer parts
    add(
        "linear 96->384",
        "(8,56,56,96)",
        lambda t: F.linear(t[0], t[1], t[2]),
        lambda t: TF.linear(t[0], t[1], t[2]),
        ((8, 56, 56, 96), True),
        ((384, 96), True),
        ((384,), True),
    )
    add(
        "linear 384->96",
        "(8,56,56,384)",
        lambda t: F.linear(t[0], t[1], t[2]),
        lambda t: TF.linear(t[0], t[1], t[2]),
        ((8, 56, 56, 384), True),
        ((96, 384), True),
        ((96,), True),
    )
    add(
        "layer_norm",
        "(8,56,56,96)",
        lambda t: F.layer_norm(t[0], (96,), t[1], t[2], 1e-6),
        lambda t: TF.layer_norm(t[0], (96,), t[1], t[2], 1e-6),
        ((8, 56, 56, 96), True),
        ((96,), True),
        ((96,), True),
    )
    add(
        "gelu",
        "(8,56,56,384)",
        lambda t: F.gelu(t[0]),
        lambda t: TF.gelu(t[0]),
        ((8, 56, 56, 384), True),
    )
    add(
        "attention stage 1 (pooled)",
        "B8 h1 N784 d32",
        lambda t: F.scaled_dot_product_attention(t[0], t[1], t[2]),
        lambda t: TF.scaled_dot_product_attention(t[0], t[1], t[2]),
        ((8, 1, 784, 32), True),
        ((8, 1, 784, 32), True),
        ((8, 1, 784, 32), True),
    )
    add(
        "attention stage 3",
        "B8 h7 N196 d32",
        lambda t: F.scaled_dot_product_attention(t[0], t[1], t[2]),
        lambda t: TF.scaled_dot_product_attention(t[0], t[1], t[2]),
        ((8, 7, 196, 32), True),
        ((8, 7, 196, 32), True),
        ((8, 7, 196, 32), True),
    )
    add(
        "softmax",
        "(8,7,196,196)",
        lambda t: F.softmax(t[0], -1),
        lambda t: torch.softmax(t[0], -1),
        ((8, 7, 196, 196), True),
    )
    rows.append(_batch_norm_row())
    rows.append(_cross_entropy_row())
    return rows


def _batch_norm_row() -> Row:
    def ours(t):
        rm, rv = mi.zeros(48), mi.ones(48)
        return F.batch_norm(t[0], rm, rv, t[1], t[2], training=True)

    def theirs(t):
        return TF.batch_norm(t[0], torch.zeros(48), torch.ones(48), t[1], t[2], training=True)

    return Row(
        "batch_norm (train)",
        "(8,48,112,112)",
        ours,
        theirs,
        [((8, 48, 112, 112), True), ((48,), True), ((48,), True)],
    )


def _cross_entropy_row() -> Row:
    target = np.random.default_rng(1).integers(0, 1000, 64)
    return Row(
        "cross_entropy",
        "(64,1000)",
        lambda t: F.cross_entropy(t[0], mi.tensor(target), label_smoothing=0.1),
        lambda t: TF.cross_entropy(t[0], torch.tensor(target), label_smoothing=0.1),
        [((64, 1000), True)],
    )


def _time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(best, median) seconds over ``repeats`` runs after one warm-up run."""
    fn()  # warm-up: first-touch allocations, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def measure(row: Row, repeats: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(np.float32) for shape, _ in row.inputs]
    with mi.no_grad():
        out_shape = row.ours([mi.tensor(a) for a in arrays]).shape
    upstream = rng.standard_normal(out_shape).astype(np.float32)

    def ours():
        ts = [mi.tensor(a, requires_grad=g) for a, (_, g) in zip(arrays, row.inputs)]
        row.ours(ts).backward(upstream)

    t_up = torch.from_numpy(upstream)

    def theirs():
        ts = [torch.tensor(a, requires_grad=g) for a, (_, g) in zip(arrays, row.inputs)]
        row.theirs(ts).backward(t_up)

    (ours_s, ours_med), (torch_s, torch_med) = _time(ours, repeats), _time(theirs, repeats)
    return {
        "op": row.name,
        "shape": row.shape,
        "ours_ms": ours_s * 1e3,
        "torch_ms": torch_s * 1e3,
        "ratio": ours_s / torch_s,
        "ours_median_ms": ours_med * 1e3,
        "torch_median_ms": torch_med * 1e3,
        "median_ratio": ours_med / torch_med,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per row (default 9)")
    parser.add_argument("--only", default="", help="only rows whose name contains this text")
    parser.add_argument(
        "--json",
        type=Path,
        default=HERE / "ops_cpu.json",
        help="where to write the results (default benchmarks/ops_cpu.json)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    rows = [r for r in _rows() if args.only in r.name]
    if not rows:
        parser.error(f"no benchmark row matches --only {args.only!r}")

    print(
        f"float32, forward + backward, best of {args.repeats} (median ratio in the last column); "
        f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{os.cpu_count()} CPUs"
    )
    header = f"{'op':<28} {'shape':<20} {'ours ms':>9} {'torch ms':>9} {'ratio':>6} {'median':>7}"
    print(header)
    print("-" * len(header))
    results = []
    for row in rows:
        r = measure(row, args.repeats)
        results.append(r)
        print(
            f"{r['op']:<28} {r['shape']:<20} {r['ours_ms']:9.2f} {r['torch_ms']:9.2f} "
            f"{r['ratio']:6.2f} {r['median_ratio']:7.2f}",
            flush=True,
        )
    ours_total = sum(r["ours_ms"] for r in results)
    torch_total = sum(r["torch_ms"] for r in results)
    print("-" * len(header))
    median_ratio = sum(r["ours_median_ms"] for r in results) / sum(
        r["torch_median_ms"] for r in results
    )
    print(
        f"{'total':<49} {ours_total:9.2f} {torch_total:9.2f} {ours_total / torch_total:6.2f} "
        f"{median_ratio:7.2f}"
    )
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "repeats": args.repeats,
        "rows": results,
        "total": {
            "ours_ms": ours_total,
            "torch_ms": torch_total,
            "ratio": ours_total / torch_total,
            "median_ratio": median_ratio,
        },
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
