"""Image transforms for training and evaluation, on NumPy and Pillow.

Every transform is a callable ``transform(img, rng)``:

* ``img`` is a PIL image or an ``(H, W, C)`` / ``(H, W)`` uint8 NumPy array (the image
  transforms), or a ``(C, H, W)`` float array (:class:`Normalize`, :class:`RandomErasing`);
* ``rng`` is a ``numpy.random.Generator``. Every random choice a transform makes is drawn from
  it, so a dataset that gives each sample its own generator (seeded from the run's seed, the
  epoch and the sample index) produces the same augmented sample however many threads load
  the data and in whatever order they finish. Deterministic transforms accept ``rng=None``.

Image transforms return the kind of image they were given: a PIL image for a PIL image, a
uint8 array of the same layout for an array. :class:`ToArray` turns either into the network's
``(C, H, W)`` float32 layout in [0, 1].

The pieces:

=========================  ================================================================
transform                  what it does
=========================  ================================================================
:class:`Compose`           apply transforms in order, passing the same generator along
:class:`RandomCrop`        pad by ``padding`` pixels, then crop ``size`` at a random offset
:class:`RandomResizedCrop` crop a random area/aspect box (torchvision's algorithm), resize it
:class:`RandomHorizontalFlip` mirror left-right with probability ``p``
:class:`Resize`            resize the short side (or to an exact ``(h, w)``)
:class:`CenterCrop`        the central ``size`` window
:class:`ColorJitter`       random brightness, contrast, saturation and hue, in random order
:class:`RandAugment`       ``num_ops`` random operations of the increasing-severity set
:class:`ToArray`           image -> ``(C, H, W)`` float32 in [0, 1]
:class:`Normalize`         ``(x - mean) / std`` per channel
:class:`RandomErasing`     replace one random rectangle of a normalised array with noise
:class:`MixupCutmix`       batch level: mixup or cutmix of a batch with its reverse, soft targets
=========================  ================================================================

Presets: :func:`cifar_train_transform`, :func:`cifar_eval_transform`,
:func:`train_transform_for` and :func:`eval_transform_for`.

Where they live: :mod:`.pil` (the image transforms), :mod:`.randaugment`, :mod:`.arrays`
(``ToArray``, ``Normalize``, ``RandomErasing``), :mod:`.mixup` (``MixupCutmix``) and
:mod:`.pipelines` (``Compose``, the presets and the normalisation statistics); all of them are
imported here, so ``T.RandomCrop`` works after ``from mini_iformer.data import transforms as T``.

Example::

    import numpy as np
    from mini_iformer.data import transforms as T

    train = T.cifar_train_transform(T.CIFAR10_MEAN, T.CIFAR10_STD, randaugment=True)
    x = train(image_uint8_hwc, np.random.default_rng([seed, epoch, index]))  # (3, 32, 32)
"""

from ..imagenet_classes import IMAGENET_MEAN, IMAGENET_STD
from .arrays import Normalize, RandomErasing, ToArray
from .mixup import MixupCutmix
from .pil import (
    CenterCrop,
    ColorJitter,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
)
from .pipelines import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    Compose,
    cifar_eval_transform,
    cifar_train_transform,
    eval_transform_for,
    train_transform_for,
)
from .randaugment import RAND_INCREASING_OPS, RandAugment

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RAND_INCREASING_OPS",
    "Compose",
    "RandomCrop",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "Resize",
    "CenterCrop",
    "ColorJitter",
    "RandAugment",
    "ToArray",
    "Normalize",
    "RandomErasing",
    "MixupCutmix",
    "cifar_train_transform",
    "cifar_eval_transform",
    "train_transform_for",
    "eval_transform_for",
]
