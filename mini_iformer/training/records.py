"""What a run writes besides its checkpoints: ``config.json``, ``metrics.csv`` and
``curves.png`` in its folder, each written atomically."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_atomic", "write_metrics", "plot_curves", "METRIC_FIELDS"]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary beside it and a rename: an interrupted
    write leaves the previous file whole (and the temporary, which the next run removes)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


METRIC_FIELDS = [
    "epoch",
    "train_loss",
    "train_acc1",
    "test_loss",
    "test_acc1",
    "test_acc5",
    "lr",
    "epoch_seconds",
    "images_per_second",
    "gpu_memory_mib",
]


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.csv`` (one row per epoch) and ``curves.png`` from a run's history."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
    write_atomic(out / "metrics.csv", buf.getvalue().encode())
    plot_curves(out / "curves.png", history)


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """Loss and accuracy against epochs, as a PNG."""
    import matplotlib  # noqa: PLC0415 - slow to import; only the figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax1.plot(epochs, [r["test_loss"] for r in history], "o-", label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(epochs, [r["test_acc1"] for r in history], "o-", label="test Acc@1")
    ax2.plot(epochs, [r["test_acc5"] for r in history], "o-", label="test Acc@5")
    if any(r.get("train_acc1") not in (None, "") for r in history):
        ax2.plot(epochs, [r.get("train_acc1") for r in history], "o-", label="train Acc@1")
    ax2.set(xlabel="epoch", ylabel="%", title="accuracy")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
