"""Folders of images: :class:`ImageFolder` and the ImageNet class mapping.

:class:`ImageFolder` reads the usual ``root/<class>/<image>`` layout (ImageNet's ``train/`` and
``val/`` as prepared for PyTorch): classes are the sorted sub-folder names, samples the image
files under each, and :func:`imagenet_class_to_idx` maps WordNet-id folder names to the
ImageNet-1k class indices so that a 1000-class head can be evaluated on any subset of classes.

Files are chosen by extension (:data:`IMG_EXTENSIONS`); other files and hidden ones are
skipped, and a class folder without images is an error. Each image is read when its sample is
asked for, by :func:`~mini_iformer.data.images.read_image`.

Example::

    from mini_iformer.data import ImageFolder, imagenet_class_to_idx
    val = ImageFolder("imagenet/val", class_to_idx=imagenet_class_to_idx("imagenet/val"))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from . import imagenet_classes
from .base import Dataset, DatasetError, PathLike, Transform, os_reason
from .images import read_image

__all__ = ["ImageFolder", "IMG_EXTENSIONS", "imagenet_class_to_idx"]

#: File extensions :class:`ImageFolder` takes for images (compared case-insensitively).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp")


class ImageFolder(Dataset):
    """Images in ``root/<class folder>/...``, read with Pillow and returned as RGB PIL images.

    * ``classes``: the sorted names of the sub-folders of ``root`` (hidden ones, starting with
      ``.``, are ignored); ``class_to_idx`` maps each to its label.
    * samples: the files under each class folder (sub-folders included, links followed, a
      folder reached twice through links listed once) whose extension is in ``extensions``,
      compared case-insensitively, sorted by path. Other files (``.txt``, ``.csv``,
      ``Thumbs.db``, ``desktop.ini``) and hidden files and folders (``.DS_Store``,
      ``._x.jpg``, ``.git/``) are skipped. ``samples`` is the list of ``(path, label)``,
      ``targets`` the labels.
    * ``class_to_idx``: optional mapping from folder name to label, for labels that are not
      the folders' sorted order, e.g. :func:`imagenet_class_to_idx` to evaluate a 1000-class
      ImageNet head on a subset of its classes. Every class folder must be in it; names in
      the mapping without a folder are allowed (the subset case). ``num_classes`` is
      ``max(label) + 1``.

    Construction lists the files only; it raises :class:`DatasetError` for a ``root`` that is
    missing or a file, a ``root`` without class folders, a class folder without images (an
    empty class is taken for a mistake, not kept with 0 samples), a folder that cannot be
    listed, and a folder absent from ``class_to_idx``.

    :meth:`get` reads the file, applies its EXIF orientation and converts it to 8-bit RGB as
    described in :func:`read_image`; a file that cannot be read (empty, truncated, corrupt, not
    an image, not a regular file, unreadable, larger than ``PIL.Image.MAX_IMAGE_PIXELS``)
    raises :class:`DatasetError` naming its path, at that moment, for that sample only.
    """

    def __init__(
        self,
        root: PathLike,
        transform: Transform | None = None,
        class_to_idx: Mapping[str, int] | None = None,
        extensions: Iterable[str] = IMG_EXTENSIONS,
    ):
        self.root = Path(root)
        self.transform = transform
        self.extensions = tuple(
            e.lower() if e.startswith(".") else "." + e.lower() for e in extensions
        )
        if not self.extensions:
            raise ValueError("ImageFolder: extensions is empty")
        layout = "pass the folder that holds one sub-folder of images per class"
        if self.root.is_file():
            raise DatasetError(f"{self.root}: is a file, not a folder; {layout}")
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such folder; {layout}")
        self.classes = _class_folders(self.root)
        if not self.classes:
            raise DatasetError(
                f"{self.root}: holds no class sub-folders; expected "
                f"{self.root}/<class>/<image files>"
            )
        if class_to_idx is None:
            self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        else:
            self.class_to_idx = _check_mapping(self.root, self.classes, class_to_idx)
        self.num_classes = max(self.class_to_idx.values()) + 1

        self.samples: list[tuple[str, int]] = []
        for name in self.classes:
            files = _image_files(self.root / name, self.extensions)
            if not files:
                raise DatasetError(
                    f"{self.root / name}: class folder without images (extensions "
                    f"{', '.join(self.extensions)}); add images or remove the folder"
                )
            label = self.class_to_idx[name]
            self.samples.extend((path, label) for path in files)
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)

    def _raw(self, i: int) -> Image.Image:
        return read_image(self.samples[i][0])

    def __repr__(self) -> str:
        return (
            f"ImageFolder(root={str(self.root)!r}, {len(self)} images, "
            f"{len(self.classes)} classes, transform={self.transform!r})"
        )


def _class_folders(root: Path) -> list[str]:
    try:
        with os.scandir(root) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise DatasetError(
            f"{root}: cannot list this folder ({os_reason(exc)}); make it readable"
        ) from exc


def _image_files(folder: Path, extensions: tuple[str, ...]) -> list[str]:
    """The non-hidden files under ``folder`` whose name ends with one of ``extensions``, sorted.

    Links are followed; each real folder is listed once, under the first of its paths in
    sorted order, so a link back to a parent folder cannot make the walk endless.
    """
    found: list[str] = []
    visited: set[tuple[int, int]] = set()
    pending = [str(folder)]
    while pending:
        current = pending.pop()
        try:
            info = os.stat(current)
            if (info.st_dev, info.st_ino) in visited:
                continue
            visited.add((info.st_dev, info.st_ino))
            subfolders = []
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        subfolders.append(entry.path)
                    elif entry.name.lower().endswith(extensions):
                        found.append(entry.path)
            pending.extend(sorted(subfolders, reverse=True))  # visited in sorted order
        except OSError as exc:
            raise DatasetError(
                f"{current}: cannot list this folder ({os_reason(exc)}); make "
                f"it readable or remove it"
            ) from exc
    return sorted(found)


def _check_mapping(
    root: Path, classes: Sequence[str], mapping: Mapping[str, int]
) -> dict[str, int]:
    missing = [name for name in classes if name not in mapping]
    if missing:
        shown = ", ".join(missing[:20]) + (
            f", ... ({len(missing)} in all)" if len(missing) > 20 else ""
        )
        raise DatasetError(
            f"{root}: class folders not in class_to_idx: {shown}; remove them or "
            f"add them to the mapping"
        )
    out = {}
    for name, label in mapping.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise ValueError(f"class_to_idx[{name!r}] = {label!r}: labels must be integers >= 0")
        out[str(name)] = int(label)
    return out


def imagenet_class_to_idx(root: PathLike) -> dict[str, int]:
    """Map the WordNet-id class folders of ``root`` to their ImageNet-1k class indices.

    ``root`` holds folders named like ``n01440764`` (as ImageNet's ``train/`` and ``val/``
    prepared for PyTorch); the result, e.g. ``{"n01440764": 0, "n03888257": 701}``, is meant
    for ``ImageFolder(root, class_to_idx=...)``. Folders that are not ImageNet-1k WordNet ids
    raise :class:`DatasetError` listing them.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; pass a folder of WordNet-id class folders")
    index = {wnid: i for i, wnid in enumerate(imagenet_classes.wordnet_ids())}
    folders = _class_folders(root)
    unknown = [f for f in folders if f not in index]
    if unknown:
        shown = ", ".join(unknown[:20]) + (
            f", ... ({len(unknown)} in all)" if len(unknown) > 20 else ""
        )
        raise DatasetError(f"{root}: folders that are not ImageNet-1k WordNet ids: {shown}")
    return {f: index[f] for f in folders}
