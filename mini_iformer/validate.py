"""Accuracy of a checkpoint on a labelled dataset, reported like the authors' evaluation.

    python -m mini_iformer.validate --model iformer_small --checkpoint iformer_small.pth \\
        --data-dir imagenette/val --imagenet-classes
    python -m mini_iformer.validate --model iformer_cifar --checkpoint runs/c10/best.npz \\
        --dataset cifar10 --data-dir data

Folders of class sub-folders (``--dataset folder``, the default) use the authors' evaluation
transform: short side to size/crop_pct (248 for 224) with bicubic resampling, centre crop,
ImageNet mean/std. ``--imagenet-classes`` maps sub-folders named by WordNet id (n01440764,
...) to ImageNet-1k indices, so a 1000-class head is scored on a subset of ImageNet.

Mistakes in the arguments (a batch size below 1, an unknown model, a missing or damaged
checkpoint, a checkpoint for another model, missing data, an ``--img-size`` the model cannot
take) are reported on one ``error: ...`` line on stderr, with exit status 2, and no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from . import backend, data, imagenet
from .checkpoint import CheckpointError
from .cli import Parser, UsageError, fraction, int_at_least, message_of, positive_int, report_error
from .data import transforms as T
from .models import create_model, list_models, model_config
from .training.engine import evaluate

__all__ = ["main"]


_non_negative_int = int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser; its errors raise :class:`UsageError` instead of exiting."""
    p = Parser(
        prog="python -m mini_iformer.validate",
        description="Acc@1 and Acc@5 of a checkpoint on a dataset.",
    )
    p.add_argument("--model", required=True, choices=list_models())
    p.add_argument("--checkpoint", required=True, help="our .npz, a training checkpoint or a .pth")
    p.add_argument(
        "--data-dir",
        required=True,
        help="a folder of class folders (or one holding val/), or the CIFAR folder",
    )
    p.add_argument("--dataset", default="folder", choices=["folder", "cifar10", "cifar100"])
    p.add_argument(
        "--imagenet-classes",
        action="store_true",
        help="class folders are WordNet ids scored against a 1000-class head",
    )
    p.add_argument(
        "--img-size",
        type=positive_int,
        default=None,
        help="input resolution for --dataset folder (default: the model's)",
    )
    p.add_argument("--crop-pct", type=fraction, default=0.9)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--workers", type=_non_negative_int, default=2)
    p.add_argument("--no-verify", action="store_true", help="skip the CIFAR checksum check")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    return p


class _EvalTransform:
    def __init__(self, size: int, crop_pct: float) -> None:
        self.size, self.crop_pct = size, crop_pct

    def __call__(self, image: Any, rng: Any = None) -> Any:
        return imagenet.eval_transform(image, self.size, self.crop_pct)


def evaluation_dataset(args: argparse.Namespace, size: int) -> tuple[Any, int]:
    """The labelled evaluation images ``args`` name (dataset, data_dir, no_verify, crop_pct,
    imagenet_classes) at ``size``, and the number of classes."""
    if args.dataset != "folder":
        cls = data.CIFAR10 if args.dataset == "cifar10" else data.CIFAR100
        mean, std = (
            (T.CIFAR10_MEAN, T.CIFAR10_STD)
            if args.dataset == "cifar10"
            else (T.CIFAR100_MEAN, T.CIFAR100_STD)
        )
        ds = cls(
            args.data_dir,
            train=False,
            download=False,
            verify=not args.no_verify,
            transform=T.Compose([T.ToArray(), T.Normalize(mean, std)]),
        )
        return ds, len(ds.classes)
    root = Path(args.data_dir)
    if (root / "val").is_dir():
        root = root / "val"
    transform = _EvalTransform(size, args.crop_pct)
    if args.imagenet_classes:
        folder = data.ImageFolder(root, transform, class_to_idx=data.imagenet_class_to_idx(root))
        return folder, imagenet.NUM_CLASSES
    folder = data.ImageFolder(root, transform)
    return folder, len(folder.classes)


def _check_arguments(args: argparse.Namespace) -> None:
    """The checks that need no data and no model: fail before anything slow starts."""
    if not os.path.exists(args.checkpoint):
        raise UsageError(f"no such checkpoint file: {args.checkpoint!r}")
    if not os.path.isfile(args.checkpoint):
        raise UsageError(f"not a file: {args.checkpoint!r} (--checkpoint names a weights file)")
    if args.img_size is not None and args.dataset != "folder":
        raise UsageError(
            f"--img-size applies to --dataset folder only ({args.dataset} images are 32x32)"
        )


def _run(args: argparse.Namespace) -> tuple[dict[str, float], int]:
    """Evaluate as ``args`` say: (the metrics, the number of images)."""
    _check_arguments(args)
    backend.set_backend(args.backend)
    size = args.img_size or model_config(args.model)["img_size"]
    ds, num_classes = evaluation_dataset(args, size)
    model = create_model(args.model, num_classes=num_classes, checkpoint=args.checkpoint)
    if args.dataset == "folder":
        try:
            model.check_image_size(size, size)
        except ValueError as exc:
            raise UsageError(
                f"--img-size {size} does not fit {args.model}: {message_of(exc)}"
            ) from None
    loader = data.DataLoader(ds, args.batch_size, num_workers=args.workers)
    return evaluate(model, loader, num_classes), len(ds)


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status:
    0, or 2 after one ``error: ...`` line on stderr for a user error."""
    previous_backend = backend.get_backend()
    try:
        args = build_parser().parse_args(argv)
        result, images = _run(args)
    except (
        UsageError,
        CheckpointError,
        data.DatasetError,
        backend.BackendUnavailableError,
        ValueError,
        OSError,
    ) as exc:
        return report_error(message_of(exc))
    finally:
        backend.set_backend(previous_backend)
    print(
        f" * Acc@1 {result['acc1']:.3f} Acc@5 {result['acc5']:.3f} "
        f"(loss {result['loss']:.4f}, {images} images, {args.model}, {args.checkpoint})"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
