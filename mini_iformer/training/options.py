"""The options of ``train_cifar.py`` (:func:`build_parser`), each with its default and help.

``python train_cifar.py --help`` prints them; :mod:`.cli` runs what they ask for. The argument
types (a positive number, a probability, ...) are those of :mod:`mini_iformer.cli`.
"""

from __future__ import annotations

import argparse

from ..cli import non_negative, positive, probability
from ..models import list_models
from .runs import DEFAULT_ROOT

__all__ = ["build_parser", "DATASETS"]

DATASETS = ("cifar10", "cifar100", "folder")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_cifar.py",
        description="Train iFormer (NumPy or CuPy) with exact resume.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="iformer_cifar", choices=list_models())
    p.add_argument("--dataset", default="cifar10", choices=DATASETS)
    p.add_argument(
        "--data-dir",
        default="data",
        help="dataset folder (CIFAR: holds "
        "cifar-10-batches-py or the .tar.gz; folder: holds train/ and val/)",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the CIFAR checksum check (for a local re-export)",
    )
    p.add_argument("--no-download", action="store_true", help="never try to download CIFAR")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--epochs", type=positive(int), default=30)
    p.add_argument("--batch-size", type=positive(int), default=128)
    p.add_argument("--eval-batch-size", type=positive(int), default=256)
    p.add_argument("--lr", type=positive(float), default=1e-3, help="peak learning rate (AdamW)")
    p.add_argument("--min-lr", type=non_negative, default=1e-5)
    p.add_argument("--warmup-lr", type=non_negative, default=1e-6)
    p.add_argument("--weight-decay", type=non_negative, default=0.05)
    p.add_argument("--warmup-epochs", type=non_negative, default=2.0)
    p.add_argument("--clip-grad", type=positive(float), default=None)
    p.add_argument("--drop-path", type=probability, default=0.1)
    p.add_argument("--label-smoothing", type=probability, default=0.1)
    p.add_argument("--mixup", type=non_negative, default=0.0, help="Mixup alpha (0: off)")
    p.add_argument("--cutmix", type=non_negative, default=0.0, help="CutMix alpha (0: off)")
    p.add_argument("--randaugment", action="store_true", help="RandAugment rand-m9-mstd0.5")
    p.add_argument(
        "--subset",
        type=positive(int),
        default=None,
        help="train on the first N training images only (quick runs)",
    )
    p.add_argument(
        "--test-subset",
        type=positive(int),
        default=None,
        help="evaluate on the first N test images only",
    )
    p.add_argument(
        "--img-size",
        type=positive(int),
        default=None,
        help="image size for folder datasets (default: the model's); the model's "
        "position embeddings are resized to it",
    )
    p.add_argument("--workers", type=int, default=2, help="threads decoding images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default=None,
        help=f"output folder (without it: a new {DEFAULT_ROOT}/"
        "exp, exp2, ... for each run); a folder holding another run is refused "
        "unless --resume or --overwrite is given",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --out holds: its files (and no others) are "
        "deleted when the new run starts",
    )
    p.add_argument(
        "--log-every",
        type=positive(int),
        default=10,
        help="with --backend cupy, read the loss back from the GPU (and update the "
        "progress bar, check for Ctrl-C) every N steps only, so that the GPU "
        "never waits for the host in between",
    )
    p.add_argument(
        "--save-every",
        type=positive(int),
        default=50,
        help="also save last.npz every N steps within an epoch",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="continue the run in --out, or without --out the latest run under "
        f"{DEFAULT_ROOT}; with PATH, continue from that checkpoint (without --out: "
        "a run's last.npz continues in its folder, another file in a new folder)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="start from these weights (a head of another size is re-initialised)",
    )
    p.add_argument("--eval-only", action="store_true", help="evaluate --checkpoint and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p
