"""Datasets written in the official formats, for tests and lessons.

:func:`write_cifar_batches` writes images and labels as a CIFAR-10 or CIFAR-100 folder (and,
optionally, its ``.tar.gz`` archive) byte-compatible with the official release, so that
:class:`~mini_iformer.data.CIFAR10` reads it exactly as it reads the real data: synthetic
datasets for the tests and the lessons, or a re-export of your own 32x32 images. The batch
files are protocol-2 pickles in the style Python 2 wrote them (:func:`write_p2`).
"""

from __future__ import annotations

import io
import shutil
import struct
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import PathLike
from .cifar import CIFAR10_CLASSES, CIFAR_PIXELS

__all__ = ["write_cifar_batches", "write_p2"]


def write_cifar_batches(
    root: PathLike,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    name: str = "cifar-10-batches-py",
    batches: int = 5,
    meta: Sequence[str] | None = None,
    *,
    test_size: int | None = None,
    archive: bool = False,
    keep_folder: bool = True,
) -> Path:
    """Write ``images`` and ``labels`` as a CIFAR dataset in the official python format.

    ``images`` is (N, 32, 32, 3) uint8 (height, width, RGB), ``labels`` N class indices. The
    last ``test_size`` samples (default ``N // 6``, the official 10,000 of 60,000) form the test
    split, the others the training split.

    ``name`` is the folder written under ``root``. ``"cifar-100-python"`` gives the CIFAR-100
    layout (``train``, ``test`` and ``meta`` with ``fine_labels``/``fine_label_names``; the
    coarse labels are written as ``label // 5``, placeholders); any other name the CIFAR-10
    layout: ``data_batch_1`` .. ``data_batch_<batches>`` (the training split in ``batches``
    near-equal parts), ``test_batch`` and ``batches.meta`` (``label_names``). Each file is a
    protocol-2 pickle with Python 2 byte-string keys, ``b"data"`` a uint8 (n, 3072) array of
    the R, G and B planes, exactly as the release. ``meta`` gives the class names (default: the
    CIFAR-10 names, or ``class_000`` ... for CIFAR-100).

    With ``archive=True`` the folder is also packed as ``root/<archive>.tar.gz``
    (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``, else ``<name>.tar.gz``), and with
    ``keep_folder=False`` only the archive is left. Returns the folder, or the archive when the
    folder is not kept.
    """
    images = np.asarray(images)
    y = np.asarray(labels).reshape(-1)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must be (N, 32, 32, 3) uint8, got {images.dtype} {images.shape}")
    if y.shape[0] != images.shape[0] or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(
            f"need one integer label per image: {y.shape[0]} labels, {images.shape[0]} images"
        )
    n = images.shape[0]
    test_size = n // 6 if test_size is None else int(test_size)
    if not 0 <= test_size <= n:
        raise ValueError(f"test_size {test_size} outside 0..{n}")
    cifar100 = name == "cifar-100-python"
    if meta is None:
        meta = [f"class_{i:03d}" for i in range(100)] if cifar100 else list(CIFAR10_CLASSES)
    names = [str(m) for m in meta]
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise ValueError(f"labels must lie in 0..{len(names) - 1}")
    if not cifar100 and batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")

    root = Path(root)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    planes = images.transpose(0, 3, 1, 2).reshape(n, CIFAR_PIXELS)
    split = n - test_size

    def batch(label: str, idx: np.ndarray) -> dict[bytes, Any]:
        out: dict[bytes, Any] = {b"batch_label": label.encode()}
        if cifar100:
            out[b"fine_labels"] = [int(v) for v in y[idx]]
            out[b"coarse_labels"] = [int(v) // 5 for v in y[idx]]
        else:
            out[b"labels"] = [int(v) for v in y[idx]]
        out[b"data"] = np.ascontiguousarray(planes[idx])
        out[b"filenames"] = [f"image_{int(i):05d}.png".encode() for i in idx]
        return out

    train_idx, test_idx = np.arange(split), np.arange(split, n)
    if cifar100:
        write_p2(folder / "train", batch("training batch 1 of 1", train_idx))
        write_p2(folder / "test", batch("testing batch 1 of 1", test_idx))
        write_p2(
            folder / "meta",
            {
                b"fine_label_names": [s.encode() for s in names],
                b"coarse_label_names": [
                    f"superclass_{i:02d}".encode() for i in range((len(names) + 4) // 5)
                ],
            },
        )
    else:
        for b, part in enumerate(np.array_split(train_idx, batches), start=1):
            write_p2(folder / f"data_batch_{b}", batch(f"training batch {b} of {batches}", part))
        write_p2(folder / "test_batch", batch("testing batch 1 of 1", test_idx))
        write_p2(
            folder / "batches.meta",
            {
                b"num_cases_per_batch": int(np.ceil(split / batches)) if split else 0,
                b"label_names": [s.encode() for s in names],
                b"num_vis": CIFAR_PIXELS,
            },
        )
    if not archive:
        return folder
    archive_name = {
        "cifar-10-batches-py": "cifar-10-python.tar.gz",
        "cifar-100-python": "cifar-100-python.tar.gz",
    }.get(name, f"{name}.tar.gz")
    target = root / archive_name
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=name)
    target.write_bytes(buffer.getvalue())
    if keep_folder:
        return folder
    shutil.rmtree(folder)
    return target


def _p2(obj: Any) -> bytes:
    """``obj`` as the body of a protocol-2 pickle, in the style Python 2 wrote CIFAR.

    Supports dicts, lists, tuples, ``bytes``/``str`` (written as Python 2 byte strings),
    ints, bools, None and 2-D uint8 NumPy arrays (as ``numpy.core.multiarray._reconstruct``).
    """
    if obj is None:
        return b"N"
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, (int, np.integer)):
        v = int(obj)
        if 0 <= v < 256:
            return b"K" + bytes([v])
        if 0 <= v < 65536:
            return b"M" + struct.pack("<H", v)
        if -(2**31) <= v < 2**31:
            return b"J" + struct.pack("<i", v)
        raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw
    if isinstance(obj, str):
        obj = obj.encode("utf-8")
    if isinstance(obj, bytes):
        if len(obj) < 256:
            return b"U" + bytes([len(obj)]) + obj
        return b"T" + struct.pack("<i", len(obj)) + obj
    if isinstance(obj, dict):
        items = [_p2(k) + _p2(v) for k, v in obj.items()]
        return b"}" + (b"(" + b"".join(items) + b"u" if items else b"")
    if isinstance(obj, list):
        out = [b"]"]
        for k in range(0, len(obj), 1000):
            out.append(b"(" + b"".join(_p2(v) for v in obj[k : k + 1000]) + b"e")
        return b"".join(out)
    if isinstance(obj, tuple):
        return b"(" + b"".join(_p2(v) for v in obj) + b"t"
    if isinstance(obj, np.ndarray) and obj.dtype == np.uint8:
        dtype = (
            b"cnumpy\ndtype\n"
            + _p2((b"u1", 0, 1))
            + b"R"
            + _p2((3, b"|", None, None, None, -1, -1, 0))
            + b"b"
        )
        state = (
            b"(" + _p2(1) + _p2(tuple(obj.shape)) + dtype + _p2(False) + _p2(obj.tobytes()) + b"t"
        )
        return (
            b"cnumpy.core.multiarray\n_reconstruct\n"
            + b"cnumpy\nndarray\n"
            + _p2((0,))
            + _p2(b"b")
            + b"\x87R"
            + state
            + b"b"
        )
    raise TypeError(f"cannot write a {type(obj).__name__} in a CIFAR pickle")


def write_p2(path: Path, obj: Any) -> None:
    with open(path, "wb") as f:
        f.write(b"\x80\x02" + _p2(obj) + b".")
