"""Data: datasets (CIFAR-10/100 in the official format, ImageNet-style folders), seeded
transforms and augmentation, and a resumable, prefetching ``DataLoader``.

Every random choice of the input pipeline comes from a generator seeded by (seed, epoch,
sample index), so a batch is the same whatever the number of worker threads and whenever it
is drawn: the property that makes an interrupted training run resumable exactly.
"""

from . import transforms
from .datasets import (
    CIFAR10, CIFAR100, DatasetError, ImageFolder, imagenet_class_to_idx, write_cifar_batches,
)
from .loader import DataLoader, SampleLoadError

__all__ = ["transforms", "CIFAR10", "CIFAR100", "ImageFolder", "DatasetError",
           "imagenet_class_to_idx", "write_cifar_batches", "DataLoader", "SampleLoadError"]
