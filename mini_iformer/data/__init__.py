"""Data: datasets (CIFAR-10/100 in the official format, ImageNet-style folders), seeded
transforms and augmentation, and a resumable, prefetching ``DataLoader``.

Every random choice of the input pipeline comes from a generator seeded by (seed, epoch,
sample index), so a batch is the same whatever the number of worker threads and whenever it
is drawn: the property that makes an interrupted training run resumable exactly.

The modules:

* :mod:`~mini_iformer.data.base` - the dataset protocol, :class:`Subset` and :class:`DatasetError`;
* :mod:`~mini_iformer.data.cifar` - CIFAR-10/100: reading and downloading;
* :mod:`~mini_iformer.data.cifar_pickle` - the restricted reader of CIFAR's pickles;
* :mod:`~mini_iformer.data.download` - safe download and extraction of archives;
* :mod:`~mini_iformer.data.images` - reading one image file as 8-bit RGB (``read_image``);
* :mod:`~mini_iformer.data.image_folder` - ``ImageFolder`` and the ImageNet class mapping;
* :mod:`~mini_iformer.data.transforms` - the transforms, augmentation and ready-made pipelines;
* :mod:`~mini_iformer.data.loader` - the ``DataLoader``;
* :mod:`~mini_iformer.data.testing` - datasets written in the official formats, for tests and
  lessons (``write_cifar_batches``).
"""

from . import transforms
from .base import Dataset, DatasetError, Subset
from .cifar import CIFAR10, CIFAR100
from .image_folder import ImageFolder, imagenet_class_to_idx
from .loader import DataLoader, SampleLoadError

__all__ = [
    "transforms",
    "Dataset",
    "Subset",
    "CIFAR10",
    "CIFAR100",
    "ImageFolder",
    "DatasetError",
    "imagenet_class_to_idx",
    "DataLoader",
    "SampleLoadError",
]
