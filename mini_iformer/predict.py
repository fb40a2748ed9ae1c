"""Classify images with an ImageNet-1k iFormer and print the top classes.

Usage::

    python -m mini_iformer.predict --model iformer_small --checkpoint iformer_small.pth photo.jpg

For each image this prints its path, then the ``--top-k`` most probable classes::

    photo.jpg
       91.27%  golden retriever (207)
        2.04%  Labrador retriever (208)
      ...

Mistakes in the arguments or the inputs (a missing or unreadable image, an unknown model, a
checkpoint that does not load, an ``--img-size`` the model cannot take) are reported on one
``error: ...`` line on stderr, with exit status 2, and no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

import mini_iformer as mi
from mini_iformer import imagenet
from mini_iformer.cli import Parser, UsageError, fraction, message_of, positive_int, report_error

__all__ = ["build_parser", "main", "predict", "softmax", "top_k", "format_predictions"]

DEFAULT_MODEL = "iformer_small"


def _model_names() -> list[str] | None:
    """The registered model names, or None where the registry is not available."""
    list_models = getattr(mi, "list_models", None)
    return list(list_models()) if list_models is not None else None


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m mini_iformer.predict``."""
    parser = Parser(
        prog="python -m mini_iformer.predict",
        description="Print the top ImageNet-1k classes, with probabilities, for each image.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to classify")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        choices=_model_names(),
        help=f"model architecture (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="weights: the authors' .pth or a mini-iformer .npz "
        "(without it the weights are random)",
    )
    parser.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        metavar="K",
        help="how many classes to print per image (default: 5)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        metavar="N",
        help="images per forward pass (default: 8)",
    )
    parser.add_argument(
        "--backend",
        choices=mi.backend.BACKENDS,
        default="numpy",
        help="array backend (default: numpy)",
    )
    parser.add_argument(
        "--img-size",
        type=positive_int,
        default=None,
        metavar="PIXELS",
        help="input resolution (default: the model's, else 224)",
    )
    parser.add_argument(
        "--crop-pct",
        type=fraction,
        default=None,
        metavar="FRACTION",
        help="centre-crop fraction: the short side is resized to "
        "img-size / crop-pct (default: the model's, else 0.9)",
    )
    return parser


# --- the numerical part ------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (N, C) array, in float64, without overflow."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries of each row: (indices, values), in descending order.

    Ties keep the lower class index first. ``k`` is capped at the number of classes.
    """
    k = min(k, probs.shape[-1])
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=-1)


def format_predictions(
    path: str, indices: np.ndarray, probs: np.ndarray, names: Sequence[str]
) -> str:
    """The block printed for one image: its path, then one line per class."""
    lines = [path]
    for index, prob in zip(indices.tolist(), probs.tolist()):
        lines.append(f"  {100.0 * prob:6.2f}%  {names[index]} ({index})")
    return "\n".join(lines)


def predict(model: Any, batch: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C) of ``model`` for a (N, 3, H, W) float32 batch."""
    with mi.no_grad():
        logits = model(mi.tensor(batch))
    return softmax(mi.backend.to_numpy(logits.data))


# --- the command -------------------------------------------------------------------------------


def _check_images(paths: Sequence[str]) -> None:
    """Fail early, before the model is built, on a path that is not an image file.

    Only the file's header is read here; an image damaged further in is reported when it is
    decoded.
    """
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f"no such image file: {path!r}")
        if not os.path.isfile(path):
            raise UsageError(f"not a file: {path!r}")
        try:
            with Image.open(path):
                pass
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise UsageError(f"cannot read image {path!r}: {message_of(exc)}") from None


def _build_model(name: str, checkpoint: str | None) -> Any:
    """Create the model in evaluation mode, turning loading failures into a UsageError."""
    if checkpoint is None:
        print(
            f"warning: no --checkpoint given: {name} has random weights, "
            "so its predictions are meaningless",
            file=sys.stderr,
        )
    elif not os.path.isfile(checkpoint):
        raise UsageError(f"no such checkpoint file: {checkpoint!r}")
    try:
        model = mi.create_model(name, num_classes=imagenet.NUM_CLASSES, checkpoint=checkpoint)
    except (ValueError, KeyError, OSError) as exc:
        message = message_of(exc)
        where = f" from {checkpoint!r}" if checkpoint and checkpoint not in message else ""
        raise UsageError(f"cannot build {name}{where}: {message}") from None
    model.eval()
    return model


def _progress(done: int, total: int) -> None:
    """Show ``done/total images`` on stderr, only when it is a terminal."""
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        print(f"\r{done}/{total} images", end=end, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> None:
    """Classify every image and print the results; raise UsageError on a user mistake."""
    _check_images(args.images)
    model = _build_model(args.model, args.checkpoint)
    size = args.img_size or int(getattr(model, "default_img_size", None) or 224)
    check_size = getattr(model, "check_image_size", None)
    if check_size is not None:  # refuse a size the network cannot take before any image loads
        try:
            check_size(size, size)
        except ValueError as exc:
            raise UsageError(
                f"--img-size {size} does not fit {args.model}: {message_of(exc)}"
            ) from None
    crop_pct = args.crop_pct or float(getattr(model, "default_crop_pct", None) or 0.9)
    names = imagenet.class_names()
    blocks_printed = 0
    for start in range(0, len(args.images), args.batch_size):
        paths = args.images[start : start + args.batch_size]
        try:
            batch = imagenet.load_images(paths, size=size, crop_pct=crop_pct)
        except ValueError as exc:
            raise UsageError(message_of(exc)) from None
        probs = predict(model, batch)
        if probs.shape != (len(paths), len(names)):
            raise UsageError(
                f"{args.model} gave outputs of shape {probs.shape}, "
                f"expected ({len(paths)}, {len(names)})"
            )
        indices, values = top_k(probs, args.top_k)
        for row, path in enumerate(paths):
            separator = "\n" if blocks_printed else ""
            print(
                separator + format_predictions(path, indices[row], values[row], names), flush=True
            )
            blocks_printed += 1
        _progress(start + len(paths), len(args.images))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    previous_backend = mi.get_backend()
    try:
        args = build_parser().parse_args(argv)
        mi.set_backend(args.backend)
        _run(args)
    except (UsageError, mi.BackendUnavailableError) as exc:
        return report_error(message_of(exc))
    finally:
        mi.set_backend(previous_backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
