"""Whole-model speed and memory on the CPU: ours (NumPy backend) against PyTorch eager.

    python benchmarks/model.py                 # the table; writes benchmarks/model_cpu.json
    python benchmarks/model.py --only cifar    # rows whose name contains "cifar"
    python benchmarks/model.py --no-profile    # skip the per-op-family profile
    python benchmarks/model.py --no-reference  # skip the reference-mode training steps

Rows (float32, the same weights and inputs for both frameworks):

* iformer_small, 224x224, batch 8: a training step (forward, cross-entropy with label
  smoothing, backward, AdamW) and inference (forward in evaluation mode, no graph);
* iformer_cifar, 32x32, batch 128: the same two.

Each measurement runs in a fresh Python process, so that its memory figure is its own: the
process builds the model, allocates the inputs, reads its resident memory, then runs
``--warmup`` untimed and ``--repeats`` timed iterations. Each row takes ``--rounds`` such
processes per framework, alternating ours and PyTorch's, so that a change in the machine's
load during the run reaches both. Reported: the median time per iteration over all rounds,
images/s, the largest peak resident memory *added* by the iterations (the process's peak RSS
minus its RSS before the first one), and GFLOP/s from the model's multiply-add count (2 FLOPs
per multiply-add; a training step counted as 3 forward passes). The machine's
single-precision matrix-product rate, measured with each framework's own BLAS, puts those
GFLOP/s in proportion. On a shared machine compare the ratios (ours / PyTorch), not the
absolute times.

The profile runs one more training step of ours under :mod:`mini_iformer.profiler` and splits
its time by op family (1x1 convolutions, depthwise, other convolutions, pooling, attention,
norms, GELU, linear layers, elementwise and shape ops, the optimiser) and the rest (Python in
the modules, building and walking the graph): the next bottleneck is at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (row name, model, image side, batch, training step?)
ROWS = [
    ("iformer_small train step", "iformer_small", 224, 8, True),
    ("iformer_small inference", "iformer_small", 224, 8, False),
    ("iformer_cifar train step", "iformer_cifar", 32, 128, True),
    ("iformer_cifar inference", "iformer_cifar", 32, 128, False),
]

#: Profile keys (mini_iformer.profiler.key_of) -> op family.
FAMILIES = {
    "conv2d:pointwise": "conv 1x1",
    "conv2d:depthwise": "conv depthwise",
    "conv2d:general": "conv other",
    "max_pool2d": "pooling",
    "avg_pool2d": "pooling",
    "interpolate": "pooling",
    "scaled_dot_product_attention": "attention",
    "softmax": "attention",
    "layer_norm": "norms",
    "batch_norm": "norms",
    "gelu": "GELU",
    "linear": "linear",
    "cross_entropy": "loss",
}


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- one measurement, in its own process -------------------------------------------------------
def _inputs(side: int, batch: int, classes: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, side, side)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    return x, y


def worker_ours(name, side, batch, train, warmup, repeats, weights, profile):
    import mini_iformer as mi
    import mini_iformer.functional as F
    from mini_iformer.models import create_model
    from mini_iformer.optim import AdamW

    mi.runtime.keep_freed_memory()  # as train_cifar.py does
    model = create_model(name)
    model.load_state_dict(dict(np.load(weights)))
    x, y = _inputs(side, batch, model.num_classes)
    xt, yt = mi.tensor(x), mi.tensor(y)
    optimizer = AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    timings: dict[str, float] = {}

    def step():
        if train:
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(xt), yt, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            t1 = time.perf_counter()
            optimizer.step()
            timings["optimizer"] = time.perf_counter() - t1
            timings["model"] = t1 - t0
        else:
            with mi.no_grad():
                model(xt)

    model.train(train)
    before = _rss_mib()
    times = _timed(step, warmup, repeats)
    result = {"times": times, "rss_before_mib": before, "peak_added_mib": _peak_rss_mib() - before}
    if profile and train:
        from mini_iformer import profiler

        with profiler.profile() as prof:
            start = time.perf_counter()
            step()
            total = time.perf_counter() - start
        families: dict[str, float] = {}
        for key, row in prof.by_key().items():
            family = FAMILIES.get(key, "elementwise & shape")
            families[family] = families.get(family, 0.0) + row["forward"] + row["backward"]
        families["optimizer"] = timings["optimizer"]
        families["rest (Python, graph)"] = max(total - prof.total - timings["optimizer"], 0.0)
        result["profile"] = {
            "total": total,
            "families": families,
            "ops": dict(list(prof.by_key().items())[:12]),
        }
    return result


def worker_torch(name, side, batch, train, warmup, repeats, weights):
    import torch
    import torch.nn.functional as TF

    sys.path.insert(0, str(HERE))
    from gpu import torch_model  # the reference model for each of our configurations

    torch.manual_seed(0)
    model = torch_model(name)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(weights).items()})
    x, y = _inputs(side, batch, model.num_classes)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def step():
        if train:
            loss = TF.cross_entropy(model(xt), yt, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(xt)

    model.train(train)
    before = _rss_mib()
    times = _timed(step, warmup, repeats)
    return {
        "times": times,
        "rss_before_mib": before,
        "peak_added_mib": _peak_rss_mib() - before,
        "threads": torch.get_num_threads(),
    }


def _timed(step, warmup, repeats) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


# -- the machine -------------------------------------------------------------------------------
def matmul_gflops(n: int = 1024, repeats: int = 7) -> dict[str, float]:
    """float32 (n x n) @ (n x n) rate, best of ``repeats``, with NumPy's and PyTorch's BLAS."""
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    out = {}
    for label, fn in (("numpy", lambda: a @ b), ("torch", lambda: ta @ tb)):
        fn()
        best = min(_timed(fn, 0, repeats))
        out[label] = 2 * n**3 / best / 1e9
    return out


def forward_macs(name: str, side: int) -> int:
    from mini_iformer.models import create_model
    from mini_iformer.summary import summary

    return summary(create_model(name), (3, side, side)).total_macs


# -- the driver --------------------------------------------------------------------------------
def _run_worker(args: list[str], **extra_env: str) -> dict[str, Any]:
    env = dict(os.environ, **extra_env)
    env.setdefault("PYTHONPATH", str(ROOT))
    result = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env
    )
    if result.returncode:
        raise RuntimeError(f"worker {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One framework's rounds as one result: every timed iteration, the largest peak."""
    merged = dict(rounds[0])
    merged["times"] = [t for r in rounds for t in r["times"]]
    merged["peak_added_mib"] = max(r["peak_added_mib"] for r in rounds)
    return merged


def _print_reference_table(entry: dict[str, Any]) -> None:
    """One training step, fast mode against reference mode, by op family (profiled steps)."""
    fast, ref = entry["profile"], entry["reference_mode"]["profile"]
    print(
        f"\nwhat the fast forms buy, {entry['row']} (one profiled step each; "
        f"reference mode {ref['total'] * 1e3:.0f} ms, fast mode {fast['total'] * 1e3:.0f} ms, "
        f"{ref['total'] / fast['total']:.2f}x):"
    )
    print(f"  {'op family':<22} {'fast ms':>9} {'reference ms':>13} {'reference / fast':>17}")
    families = sorted(
        set(fast["families"]) | set(ref["families"]), key=lambda f: -ref["families"].get(f, 0.0)
    )
    for family in families:
        a, b = fast["families"].get(family, 0.0), ref["families"].get(family, 0.0)
        ratio = f"{b / a:>17.2f}" if a > 0 else f"{'':>17}"
        print(f"  {family:<22} {1e3 * a:>9.1f} {1e3 * b:>13.1f} {ratio}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="run rows whose name contains this text")
    p.add_argument("--repeats", type=int, default=3, help="timed iterations per process")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="processes per framework and row, alternating between the frameworks",
    )
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-profile", action="store_true")
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the training steps with every operation in its reference form",
    )
    p.add_argument("--out", type=Path, default=HERE / "model_cpu.json")
    p.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker == ["matmul"]:
        print(json.dumps(matmul_gflops()))
        return 0
    if args.worker:
        framework, name, side, batch, train, warmup, repeats, weights, profile = args.worker
        common = (name, int(side), int(batch), train == "1", int(warmup), int(repeats), weights)
        if framework == "ours":
            out = worker_ours(*common, profile == "1")
        else:
            out = worker_torch(*common)
        print(json.dumps(out))
        return 0

    rows = [r for r in ROWS if args.only in r[0]]
    if not rows:
        sys.exit(f"no row matches --only {args.only!r}; rows: {[r[0] for r in ROWS]}")
    sys.path.insert(0, str(ROOT))
    import mini_iformer as mi
    from mini_iformer.models import create_model

    # Measured in a child too: this process never imports PyTorch, whose loaded libraries
    # were seen to change the memory figures of the processes started after it.
    peak = _run_worker(["matmul"])
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, float32; median of {args.rounds} rounds "
        f"x {args.repeats} iterations, each process after {args.warmup} warm-up; matmul peak: "
        f"NumPy {peak['numpy']:.0f} GFLOP/s, "
        f"PyTorch {peak['torch']:.0f} GFLOP/s"
    )
    header = (
        f"{'row':<26} {'batch':>5} {'ours ms':>9} {'torch ms':>9} {'ratio':>6} "
        f"{'ours img/s':>10} {'torch img/s':>11} {'ours GF/s':>9} {'torch GF/s':>10} "
        f"{'ours MiB':>8} {'torch MiB':>9} {'mem ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    results = []
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row, name, side, batch, train in rows:
            weights = Path(tmp) / f"{name}.npz"
            if not weights.exists():
                mi.random.manual_seed(0)
                state = {k: v.numpy() for k, v in create_model(name).state_dict().items()}
                np.savez(weights, **state)
            common = [
                name,
                str(side),
                str(batch),
                "1" if train else "0",
                str(args.warmup),
                str(args.repeats),
                str(weights),
            ]
            # alternate the frameworks, one process each per round, so that a change in the
            # machine's load during the run reaches both sides
            rounds_ours, rounds_torch = [], []
            for r in range(args.rounds):
                profile = "1" if r == 0 and not args.no_profile else "0"
                rounds_ours.append(_run_worker(["ours", *common, profile]))
                rounds_torch.append(_run_worker(["torch", *common, "0"]))
            ours, theirs = _merge(rounds_ours), _merge(rounds_torch)
            flops = 2 * forward_macs(name, side) * batch * (3 if train else 1)
            entry = {"row": row, "model": name, "image": side, "batch": batch}
            for label, r in (("ours", ours), ("torch", theirs)):
                med = statistics.median(r["times"])
                entry[label] = {
                    "median_ms": 1e3 * med,
                    "times_ms": [1e3 * t for t in r["times"]],
                    "images_per_s": batch / med,
                    "gflops": flops / med / 1e9,
                    "peak_added_mib": r["peak_added_mib"],
                }
            entry["ratio"] = entry["ours"]["median_ms"] / entry["torch"]["median_ms"]
            entry["memory_ratio"] = entry["ours"]["peak_added_mib"] / max(
                entry["torch"]["peak_added_mib"], 1e-9
            )
            if "profile" in ours:
                profiles[row] = ours["profile"]
                entry["profile"] = ours["profile"]
            if train and not args.no_reference and not args.no_profile:
                ref_args = common[:4] + ["1", "1", common[6], "1"]  # 1 warm-up, 1 timed, profiled
                reference = _run_worker(["ours", *ref_args], MINI_IFORMER_IMPL="reference")
                entry["reference_mode"] = {
                    "ms": 1e3 * reference["times"][0],
                    "profile": reference.get("profile"),
                }
            results.append(entry)
            a, b = entry["ours"], entry["torch"]
            print(
                f"{row:<26} {batch:>5} {a['median_ms']:>9.1f} {b['median_ms']:>9.1f} "
                f"{entry['ratio']:>6.2f} {a['images_per_s']:>10.1f} {b['images_per_s']:>11.1f} "
                f"{a['gflops']:>9.1f} {b['gflops']:>10.1f} {a['peak_added_mib']:>8.0f} "
                f"{b['peak_added_mib']:>9.0f} {entry['memory_ratio']:>9.2f}",
                flush=True,
            )

    for row, prof in profiles.items():
        print(f"\nprofile of our {row} ({1e3 * prof['total']:.0f} ms):")
        for family, s in sorted(prof["families"].items(), key=lambda kv: -kv[1]):
            print(f"  {family:<22} {1e3 * s:>8.1f} ms  {100 * s / prof['total']:>5.1f}%")

    for entry in results:
        if "reference_mode" in entry and "profile" in entry:
            _print_reference_table(entry)

    args.out.write_text(
        json.dumps(
            {
                "machine": platform.machine(),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "numpy": np.__version__,
                "torch": __import__("torch").__version__,
                "matmul_gflops": peak,
                "rounds": args.rounds,
                "repeats": args.repeats,
                "warmup": args.warmup,
                "rows": results,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
