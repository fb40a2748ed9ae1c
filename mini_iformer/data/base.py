"""What every dataset shares: the sample protocol, and :class:`DatasetError`.

Every dataset of this package follows one small protocol, the one
:class:`~mini_iformer.data.loader.DataLoader` expects:

* ``len(ds)``: the number of samples;
* ``ds.get(i, rng=None) -> (image, label)``: sample ``i``. When ``ds.transform`` is set the
  image is ``ds.transform(image, rng)`` (``rng`` a ``numpy.random.Generator``; with ``None`` a
  fresh ``np.random.default_rng()`` is passed), otherwise the raw image: an ``(H, W, 3)``
  uint8 NumPy array for CIFAR, an RGB ``PIL.Image.Image`` for
  :class:`~mini_iformer.data.image_folder.ImageFolder`. The label is a Python ``int``. ``get``
  changes nothing in the dataset, so threads may call it at once;
* ``ds[i]`` is ``ds.get(i)``;
* ``ds.targets``: the labels of all samples, an int64 array; ``ds.classes``: the class names.

Anything wrong with the data on disk raises :class:`DatasetError`, a ``ValueError`` whose
one-line message names the file and the reason.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from ..cli import message_of

__all__ = ["DatasetError", "Dataset", "Subset", "PathLike", "Transform", "os_reason"]

PathLike = Union[str, "os.PathLike[str]"]
Transform = Callable[[Any, np.random.Generator], Any]


class DatasetError(ValueError):
    """The data on disk is missing, incomplete, corrupt or not what it claims to be.

    The message is one line naming the file or folder and what to do about it.
    """


def _index(i: Any, n: int) -> int:
    """``i`` as an index into ``n`` samples (negative counts from the end)."""
    try:
        k = operator.index(i)
    except TypeError:
        raise TypeError(f"dataset indices must be integers, got {type(i).__name__}") from None
    if not -n <= k < n:
        raise IndexError(f"index {k} out of range for a dataset of {n} samples")
    return k + n if k < 0 else k


def os_reason(exc: OSError) -> str:
    """Why an operating-system call failed, in a few words ("No such file or directory")."""
    return exc.strerror or message_of(exc)


class Dataset:
    """The shared part of the protocol: ``len``, ``get``, ``[]``, ``targets``, ``classes``."""

    transform: Transform | None
    targets: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def _raw(self, i: int) -> Any:  # pragma: no cover - every dataset defines it
        raise NotImplementedError

    def get(self, i: int, rng: np.random.Generator | None = None) -> tuple[Any, int]:
        """Sample ``i`` as ``(image, label)``, through ``transform(image, rng)`` when set."""
        k = _index(i, len(self))
        image = self._raw(k)
        if self.transform is not None:
            image = self.transform(image, np.random.default_rng() if rng is None else rng)
        return image, int(self.targets[k])

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.get(i)


class Subset(Dataset):
    """The first ``n`` samples of ``dataset`` (all of them when it has fewer)."""

    def __init__(self, dataset: Dataset, n: int) -> None:
        self.dataset, self.n = dataset, min(n, len(dataset))
        self.targets = np.asarray(dataset.targets)[: self.n]
        self.classes = dataset.classes
        self.transform = None  # the dataset's own transform applies

    def __len__(self) -> int:
        return self.n

    def get(self, i: int, rng: np.random.Generator | None = None) -> tuple[Any, int]:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} outside a subset of {self.n}")
        return self.dataset.get(i, rng)
