"""Whole-model speed on a GPU: ours (CuPy backend) against PyTorch eager, same GPU, same run.

    python benchmarks/gpu.py                # the table; writes benchmarks/gpu_<gpu name>.json
    python benchmarks/gpu.py --smoke        # tiny sizes on the CPU (NumPy, PyTorch CPU): checks
                                            # that the script works, measures nothing useful

Rows (float32):

* iformer_small, 224x224, batch 64: a training step (forward, cross-entropy, backward, AdamW)
  and inference (forward only, evaluation mode);
* iformer_cifar, 32x32, batch 256: a training step.

Each row runs a few warm-up iterations (CuPy compiles our kernels, cuBLAS picks its
algorithms), then times ``--repeats`` iterations between two device synchronisations and
reports the mean time per iteration, images/s and the most memory the framework's allocator
held (CuPy's memory pool; PyTorch's ``max_memory_reserved``). The two frameworks alternate
row by row in one process, so the ratio (ours / PyTorch) compares them under the same
conditions. The PyTorch model is the reference implementation the tests use
(``tests/iformer_reference.py``), with the same architecture and initialisation.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("benchmarks/gpu.py compares against PyTorch: install torch with CUDA support")

import iformer_reference as ref  # noqa: E402

import mini_iformer as mi  # noqa: E402
import mini_iformer.functional as F  # noqa: E402
from mini_iformer import backend, runtime  # noqa: E402
from mini_iformer.models import create_model, model_config  # noqa: E402
from mini_iformer.optim import AdamW  # noqa: E402

#: (row name, model, image side, batch, training step?)
ROWS = [
    ("iformer_small train step", "iformer_small", 224, 64, True),
    ("iformer_small inference", "iformer_small", 224, 64, False),
    ("iformer_cifar train step", "iformer_cifar", 32, 256, True),
]
SMOKE_ROWS = [
    ("iformer_small train step", "iformer_small", 64, 2, True),
    ("iformer_small inference", "iformer_small", 64, 2, False),
    ("iformer_cifar train step", "iformer_cifar", 32, 4, True),
]


def torch_model(name: str) -> torch.nn.Module:
    """The PyTorch reference for one of our configurations. ``iformer_cifar``'s stem keeps
    the resolution in its first convolution; the reference is built for a twice larger image
    (so its position embeddings have the sizes of the stage maps) and its first stride set
    to 1."""
    config = {k: v for k, v in model_config(name).items() if k in _REF_ARGS}
    strides = model_config(name).get("stem_strides", (2, 2))
    if tuple(strides) == (1, 2):
        config["img_size"] = config["img_size"] * 2
        model = ref.InceptionTransformer(**config)
        model.patch_embed.proj1.stride = (1, 1)
        return model
    if tuple(strides) != (2, 2):
        raise ValueError(f"{name}: no PyTorch counterpart for stem strides {strides}")
    return ref.InceptionTransformer(**config)


_REF_ARGS = {
    "img_size",
    "in_chans",
    "num_classes",
    "embed_dims",
    "depths",
    "num_heads",
    "attention_heads",
    "mlp_ratio",
    "qkv_bias",
    "use_layer_scale",
    "layer_scale_init_value",
    "pool_sizes",
}


class Timer:
    def __init__(self, sync: Callable[[], None]):
        self.sync = sync

    def per_iteration(self, step: Callable[[], None], warmup: int, repeats: int) -> float:
        for _ in range(warmup):
            step()
        self.sync()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        self.sync()
        return (time.perf_counter() - start) / repeats


def ours(
    name: str, side: int, batch: int, train: bool, smoke: bool, warmup: int, repeats: int
) -> dict[str, float]:
    mi.random.manual_seed(0)
    model = create_model(name)
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal((batch, 3, side, side)).astype(np.float32))
    y = backend.asarray(rng.integers(0, model.num_classes, batch))
    optimizer = AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def train_step():
        loss = F.cross_entropy(model(mi.Tensor(x)), mi.Tensor(y), label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def infer():
        with mi.no_grad():
            model(mi.Tensor(x))

    model.train(train)
    if smoke:
        sync = lambda: None  # noqa: E731
    else:
        cupy = backend.module_of("cupy")
        pool = cupy.get_default_memory_pool()
        pool.free_all_blocks()
        sync = cupy.cuda.Device().synchronize
    seconds = Timer(sync).per_iteration(train_step if train else infer, warmup, repeats)
    memory = 0.0 if smoke else runtime.gpu_memory_peak_mib()
    return {"ms": 1e3 * seconds, "images_per_s": batch / seconds, "memory_mib": memory}


def theirs(
    name: str, side: int, batch: int, train: bool, device: str, warmup: int, repeats: int
) -> dict[str, float]:
    torch.manual_seed(0)
    model = torch_model(name).to(device)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((batch, 3, side, side)).astype(np.float32), device=device)
    y = torch.tensor(rng.integers(0, model.num_classes, batch), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def train_step():
        loss = TF.cross_entropy(model(x), y, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def infer():
        with torch.no_grad():
            model(x)

    model.train(train)
    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    seconds = Timer(sync).per_iteration(train_step if train else infer, warmup, repeats)
    memory = torch.cuda.max_memory_reserved() / 2**20 if cuda else 0.0
    if cuda:
        torch.cuda.empty_cache()
    return {"ms": 1e3 * seconds, "images_per_s": batch / seconds, "memory_mib": memory}


def gpu_name() -> str:
    cupy = backend.module_of("cupy")
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes on the CPU, to check the script (no GPU needed)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed iterations per row (default 20; 1 with --smoke)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed iterations first (default 3; 1 with --smoke)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file, or a folder to write gpu_<gpu name>.json into (default: "
        "benchmarks/gpu_<gpu name>.json; none with --smoke)",
    )
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.smoke else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)

    if args.smoke:
        device, name = "cpu", "cpu (smoke run)"
    else:
        try:
            mi.set_backend("cupy")
        except backend.BackendUnavailableError as exc:
            sys.exit(f"benchmarks/gpu.py needs a GPU: {exc} (try --smoke to check the script)")
        if not torch.cuda.is_available():
            sys.exit("benchmarks/gpu.py: this PyTorch has no CUDA; install a CUDA build")
        device, name = "cuda", gpu_name()

    rows = []
    header = (
        f"{'row':<26} {'batch':>5} {'ours ms':>9} {'torch ms':>9} {'ratio':>6} "
        f"{'ours img/s':>10} {'torch img/s':>11} {'ours MiB':>9} {'torch MiB':>9}"
    )
    print(f"{name}, float32, {warmup} warm-up + {repeats} timed iterations per row")
    print(header)
    print("-" * len(header))
    for row, model, side, batch, train in SMOKE_ROWS if args.smoke else ROWS:
        a = ours(model, side, batch, train, args.smoke, warmup, repeats)
        b = theirs(model, side, batch, train, device, warmup, repeats)
        ratio = a["ms"] / b["ms"]
        rows.append(
            {
                "row": row,
                "model": model,
                "image": side,
                "batch": batch,
                "ours": a,
                "torch": b,
                "ratio": ratio,
            }
        )
        print(
            f"{row:<26} {batch:>5} {a['ms']:>9.1f} {b['ms']:>9.1f} {ratio:>6.2f} "
            f"{a['images_per_s']:>10.0f} {b['images_per_s']:>11.0f} "
            f"{a['memory_mib']:>9.0f} {b['memory_mib']:>9.0f}",
            flush=True,
        )

    result = {
        "device": name,
        "dtype": "float32",
        "warmup": warmup,
        "repeats": repeats,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "rows": rows,
    }
    if not args.smoke:
        import cupy

        result["cupy"] = cupy.__version__
    out = args.out
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if out is None and not args.smoke:
        out = HERE / f"gpu_{slug}.json"
    elif out is not None and out.is_dir():  # a folder: the file named for the GPU, in it
        out = out / f"gpu_{slug}.json"
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
