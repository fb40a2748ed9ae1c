"""Accuracy of a checkpoint on a labelled dataset, reported like the authors' evaluation.

    python -m mini_iformer.validate --model iformer_small --checkpoint iformer_small.pth \\
        --data-dir imagenette/val --imagenet-classes
    python -m mini_iformer.validate --model iformer_cifar --checkpoint runs/c10/best.npz \\
        --dataset cifar10 --data-dir data

Folders of class sub-folders (``--dataset folder``, the default) use the authors' evaluation
transform: short side to size/crop_pct (248 for 224) with bicubic resampling, centre crop,
ImageNet mean/std. ``--imagenet-classes`` maps sub-folders named by WordNet id (n01440764,
...) to ImageNet-1k indices, so a 1000-class head is scored on a subset of ImageNet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import backend, imagenet
from .checkpoint import CheckpointError
from .models import create_model, list_models, model_config

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mini_iformer.validate",
                                description="Acc@1 and Acc@5 of a checkpoint on a dataset.")
    p.add_argument("--model", required=True, choices=list_models())
    p.add_argument("--checkpoint", required=True, help="our .npz, a training checkpoint or a .pth")
    p.add_argument("--data-dir", required=True,
                   help="a folder of class folders (or one holding val/), or the CIFAR folder")
    p.add_argument("--dataset", default="folder", choices=["folder", "cifar10", "cifar100"])
    p.add_argument("--imagenet-classes", action="store_true",
                   help="class folders are WordNet ids scored against a 1000-class head")
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--crop-pct", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
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
    from . import data
    from .data import transforms as T

    if args.dataset != "folder":
        cls = data.CIFAR10 if args.dataset == "cifar10" else data.CIFAR100
        mean, std = ((T.CIFAR10_MEAN, T.CIFAR10_STD) if args.dataset == "cifar10"
                     else (T.CIFAR100_MEAN, T.CIFAR100_STD))
        ds = cls(args.data_dir, train=False, download=False, verify=not args.no_verify,
                 transform=T.Compose([T.ToArray(), T.Normalize(mean, std)]))
        return ds, len(ds.classes)
    root = Path(args.data_dir)
    if (root / "val").is_dir():
        root = root / "val"
    transform = _EvalTransform(size, args.crop_pct)
    if args.imagenet_classes:
        ds = data.ImageFolder(root, transform, class_to_idx=data.imagenet_class_to_idx(root))
        return ds, imagenet.NUM_CLASSES
    ds = data.ImageFolder(root, transform)
    return ds, len(ds.classes)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import data
    from .training.engine import evaluate

    if args.batch_size < 1 or not 0 < args.crop_pct <= 1:
        print("error: --batch-size must be positive and --crop-pct in (0, 1]", file=sys.stderr)
        return 2
    try:
        backend.set_backend(args.backend)
        size = args.img_size or model_config(args.model)["img_size"]
        ds, num_classes = evaluation_dataset(args, size)
        model = create_model(args.model, num_classes=num_classes, checkpoint=args.checkpoint)
        loader = data.DataLoader(ds, args.batch_size, num_workers=args.workers)
        result = evaluate(model, loader, num_classes)
    except (CheckpointError, data.DatasetError, backend.BackendUnavailableError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f" * Acc@1 {result['acc1']:.3f} Acc@5 {result['acc5']:.3f} "
          f"(loss {result['loss']:.4f}, {len(ds)} images, {args.model}, {args.checkpoint})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
