"""CIFAR-10 and CIFAR-100 in the official python format: reading and downloading.

:class:`CIFAR10` and :class:`CIFAR100` read the official "python version" of the datasets from
``root``: the extracted folder (``cifar-10-batches-py/`` or ``cifar-100-python/``) if it is
there, otherwise the official archive beside it (``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz``), which is extracted safely first, otherwise, with
``download=True``, the archive fetched from the official address. Files are checked against
their published MD5 checksums unless ``verify=False`` (for a local re-export of the data, whose
bytes differ from the release). A download is always checked. The batch files are read by the
restricted unpickler of :mod:`mini_iformer.data.cifar_pickle`.

Anything wrong with the data on disk raises :class:`~mini_iformer.data.base.DatasetError`, a
``ValueError`` whose one-line message names the file and the reason: a missing folder, file or
batch; a checksum that does not match; an empty, truncated, corrupt or unreadable file; a file
that is not a dict; a batch without its ``data`` or label entry, with ``data`` that is not an
(N, 3072) uint8 array, or with labels that are not integers, not one per image, or outside the
classes.

:func:`mini_iformer.data.testing.write_cifar_batches` writes images and labels in this format,
for tests and lessons.

Example::

    from mini_iformer.data import CIFAR10
    train = CIFAR10("data", train=True, download=True)
    image, label = train[0]                 # (32, 32, 3) uint8, int
    train.classes[label]                    # 'frog'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .base import Dataset, DatasetError, PathLike, Transform, os_reason
from .cifar_pickle import as_text, load_pickle
from .download import check_md5, download_file, safe_extract

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CIFAR10_URL",
    "CIFAR10_ARCHIVE_MD5",
    "CIFAR10_MD5",
    "CIFAR100_URL",
    "CIFAR100_ARCHIVE_MD5",
    "CIFAR100_MD5",
]

# --- the published facts -------------------------------------------------------------------------
# Module-level so that they can be replaced (tests serve their own archive from a file:// URL).

#: Where the official CIFAR-10 python archive is downloaded from.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: MD5 of the official ``cifar-10-python.tar.gz``.
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
#: MD5 of each file of the official ``cifar-10-batches-py/`` folder.
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
#: Where the official CIFAR-100 python archive is downloaded from.
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
#: MD5 of the official ``cifar-100-python.tar.gz``.
CIFAR100_ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
#: MD5 of each file of the official ``cifar-100-python/`` folder.
CIFAR100_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}

#: The CIFAR-10 class names, in label order.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE  # 3072 bytes per image: the R, G and B planes


class _CifarSpec(NamedTuple):
    name: str
    folder: str
    archive: str
    url: str
    archive_md5: str
    md5: Mapping[str, str]
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int


def _cifar10_spec() -> _CifarSpec:
    # Read the module constants at call time, so that replacing them takes effect.
    return _CifarSpec(
        "CIFAR-10",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        CIFAR10_URL,
        CIFAR10_ARCHIVE_MD5,
        CIFAR10_MD5,
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
        10,
    )


def _cifar100_spec() -> _CifarSpec:
    return _CifarSpec(
        "CIFAR-100",
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        CIFAR100_URL,
        CIFAR100_ARCHIVE_MD5,
        CIFAR100_MD5,
        ("train",),
        ("test",),
        "meta",
        "fine_labels",
        "fine_label_names",
        100,
    )


class _CIFAR(Dataset):
    """CIFAR in the official python format; see :class:`CIFAR10`."""

    _spec: Callable[[], _CifarSpec]

    def __init__(
        self,
        root: PathLike,
        train: bool = True,
        transform: Transform | None = None,
        download: bool = False,
        verify: bool = True,
    ):
        spec = type(self)._spec()
        self.root = Path(root)
        self.train = bool(train)
        self.transform = transform
        folder = self._prepare(spec, download, verify)
        redo = (
            f"delete {folder} to extract it again from {spec.archive}, or pass the folder of "
            f"a complete copy"
        )
        files = spec.train_files if self.train else spec.test_files
        if verify:
            for name in (spec.meta_file, *files):
                path = folder / name
                if not path.exists():
                    raise DatasetError(f"{path}: file missing; {redo}")
                if not path.is_file():
                    raise DatasetError(f"{path}: not a file; {redo}")
                if name in spec.md5:
                    check_md5(path, spec.md5[name], f"{spec.name} {name}")

        meta = load_pickle(folder / spec.meta_file, redo)
        names = meta.get(spec.names_key)
        if not isinstance(names, list) or not names:
            raise DatasetError(f"{folder / spec.meta_file}: no {spec.names_key!r} list; {redo}")
        self.classes = [as_text(n) for n in names]
        self.class_to_idx = {n: i for i, n in enumerate(self.classes)}

        images, labels = [], []
        for name in files:
            x, y = self._read_batch(folder / name, spec.label_key, len(self.classes), redo)
            images.append(x)
            labels.append(y)
        data = np.concatenate(images) if len(images) > 1 else images[0]
        #: All images, (N, 32, 32, 3) uint8 in height-width-channel (RGB) order.
        self.data = np.ascontiguousarray(
            data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)
        )
        self.targets = np.concatenate(labels).astype(np.int64)

    def _prepare(self, spec: _CifarSpec, download: bool, verify: bool) -> Path:
        """The extracted folder, extracting or downloading the archive first when needed."""
        folder = self.root / spec.folder
        if folder.is_dir():
            return folder
        archive = self.root / spec.archive
        if not archive.is_file():
            if not download:
                raise DatasetError(
                    f"no {spec.name} data in {self.root}: expected {folder} or {archive}; put "
                    f"one of them there, or allow the download (download=True; command line: "
                    f"leave out --no-download)"
                )
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatasetError(
                    f"{self.root}: cannot create the folder to download "
                    f"{spec.name} into ({os_reason(exc)})"
                ) from exc
            download_file(spec.url, archive, spec.archive_md5, spec.folder)
        elif verify:
            check_md5(archive, spec.archive_md5, f"{spec.name} archive")
        safe_extract(archive, self.root, spec.folder)
        return folder

    @staticmethod
    def _read_batch(
        path: Path, label_key: str, num_classes: int, redo: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """The images (N, 3072) uint8 and labels (N,) int64 of one batch file, checked."""
        batch = load_pickle(path, redo)
        for key in ("data", label_key):
            if key not in batch:
                keys = ", ".join(repr(k) for k in sorted(batch)) or "none"
                raise DatasetError(f"{path}: no {key!r} entry (keys: {keys}); {redo}")
        data = batch["data"]
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != CIFAR_PIXELS:
            shape = getattr(data, "shape", type(data).__name__)
            raise DatasetError(
                f"{path}: 'data' is {shape}, expected an (N, {CIFAR_PIXELS}) array; {redo}"
            )
        if data.dtype != np.uint8:
            raise DatasetError(f"{path}: 'data' has dtype {data.dtype}, expected uint8; {redo}")
        labels = batch[label_key]
        if not isinstance(labels, (list, np.ndarray)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in labels
        ):
            raise DatasetError(f"{path}: {label_key!r} is not a list of integers; {redo}")
        if len(labels) != data.shape[0]:
            raise DatasetError(f"{path}: {len(labels)} labels for {data.shape[0]} images; {redo}")
        # Checked as Python integers, so that no value can overflow the conversion below.
        bad = [int(v) for v in labels if not 0 <= int(v) < num_classes]
        if bad:
            raise DatasetError(
                f"{path}: labels outside 0..{num_classes - 1} "
                f"(min {min(bad)}, max {max(bad)}, {len(bad)} in all); {redo}"
            )
        return data, np.asarray(labels, dtype=np.int64).reshape(-1)

    def _raw(self, i: int) -> np.ndarray:
        return self.data[i].copy()

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, {split}, {len(self)} images, "
            f"{len(self.classes)} classes, transform={self.transform!r})"
        )


class CIFAR10(_CIFAR):
    """CIFAR-10 (10 classes; 50,000 training and 10,000 test images of 32x32).

    ``root`` holds ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
    ``test_batch``, ``batches.meta``) or ``cifar-10-python.tar.gz``, which is then extracted
    into ``root``. With ``download=True`` and neither there, the archive is downloaded from
    :data:`CIFAR10_URL` first (with a progress bar, its MD5 checked before it is kept).

    ``train`` picks the split; ``transform(image, rng)`` is applied by :meth:`get`. With
    ``verify=True`` the archive and the files read are checked against :data:`CIFAR10_ARCHIVE_MD5`
    and :data:`CIFAR10_MD5`; pass ``verify=False`` for a local re-export whose checksums differ.

    Attributes: ``data`` (N, 32, 32, 3) uint8, ``targets`` (N,) int64, ``classes`` (the 10
    names from ``batches.meta``), ``class_to_idx``. Problems raise :class:`DatasetError`.
    """

    _spec = staticmethod(_cifar10_spec)


class CIFAR100(_CIFAR):
    """CIFAR-100 with its 100 fine labels; otherwise as :class:`CIFAR10`.

    ``root`` holds ``cifar-100-python/`` (``train``, ``test``, ``meta``) or
    ``cifar-100-python.tar.gz``; downloads come from :data:`CIFAR100_URL`. ``classes`` are the
    ``fine_label_names`` of ``meta``; checksums are :data:`CIFAR100_ARCHIVE_MD5` and
    :data:`CIFAR100_MD5`.
    """

    _spec = staticmethod(_cifar100_spec)
