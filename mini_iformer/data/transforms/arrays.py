"""The transforms to and on the network's ``(C, H, W)`` float arrays.

:class:`ToArray` turns an image into a float32 array in [0, 1], :class:`Normalize` subtracts
the mean and divides by the standard deviation per channel, and :class:`RandomErasing`
replaces one random rectangle of the normalised array with noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .common import ImageLike, check_rng, to_array

__all__ = ["ToArray", "Normalize", "RandomErasing"]


class ToArray:
    """A PIL image or uint8 (H, W[, C]) array as a (C, H, W) float32 array scaled to [0, 1]."""

    def __call__(self, img: ImageLike, rng: np.random.Generator | None = None) -> np.ndarray:
        arr = to_array(img, "ToArray")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        out = arr.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(out)

    def __repr__(self) -> str:
        return "ToArray()"


class Normalize:
    """``(x - mean) / std`` per channel of a (C, H, W) float array, in float32."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean {mean!r} and std {std!r} differ in length")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std!r}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.dtype.kind != "f":
            raise TypeError(
                "Normalize takes a (C, H, W) float array (apply ToArray first), got "
                + (
                    f"a {x.dtype} array of shape {x.shape}"
                    if isinstance(x, np.ndarray)
                    else type(x).__name__
                )
            )
        if x.shape[0] != self.mean.shape[0]:
            raise ValueError(
                f"Normalize: the image has {x.shape[0]} channels, "
                f"mean/std have {self.mean.shape[0]}"
            )
        x = x.astype(np.float32, copy=False)
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def __repr__(self) -> str:
        mean = tuple(round(float(v), 6) for v in self.mean)
        std = tuple(round(float(v), 6) for v in self.std)
        return f"Normalize(mean={mean}, std={std})"


class RandomErasing:
    """With probability ``p``, replace one random rectangle of a (C, H, W) float array.

    The rectangle is drawn with up to 10 attempts: an area uniform in ``scale`` (a fraction of
    H*W) and an aspect ratio (height / width) log-uniform in ``ratio``; the first rectangle
    strictly smaller than the image in both directions is placed uniformly. Its pixels become
    ``mode="pixel"``: independent N(0, 1) values per pixel and channel (the image is assumed
    normalised, so this is noise of the data's scale); ``"rand"``: one N(0, 1) value per
    channel; ``"const"``: zeros. The input is not modified; a copy is returned.
    """

    _MODES = ("pixel", "rand", "const")

    def __init__(
        self,
        p: float = 0.25,
        scale: Sequence[float] = (0.02, 1.0 / 3.0),
        ratio: Sequence[float] = (0.3, 3.3),
        mode: str = "pixel",
    ):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p!r}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"RandomErasing: need 0 < scale[0] <= scale[1] <= 1, got {scale!r}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomErasing: need 0 < ratio[0] <= ratio[1], got {ratio!r}")
        if mode not in self._MODES:
            raise ValueError(
                f"RandomErasing: unknown mode {mode!r}: choose one of {', '.join(self._MODES)}"
            )
        self.p = float(p)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.mode = mode

    def get_params(
        self, height: int, width: int, rng: np.random.Generator
    ) -> tuple[int, int, int, int] | None:
        """The rectangle ``(top, left, h, w)`` to erase, or None when no attempt fitted."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target_area = rng.uniform(self.scale[0], self.scale[1]) * area
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if 0 < h < height and 0 < w < width:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        return None

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        check_rng(rng, "RandomErasing")
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.dtype.kind != "f":
            raise TypeError(
                "RandomErasing takes a (C, H, W) float array (after ToArray/Normalize), got "
                + (
                    f"a {x.dtype} array of shape {x.shape}"
                    if isinstance(x, np.ndarray)
                    else type(x).__name__
                )
            )
        if rng.random() >= self.p:
            return x
        c, height, width = x.shape
        box = self.get_params(height, width, rng)
        if box is None:
            return x
        top, left, h, w = box
        out = x.copy()
        if self.mode == "pixel":
            patch = rng.standard_normal((c, h, w)).astype(x.dtype)
        elif self.mode == "rand":
            patch = rng.standard_normal((c, 1, 1)).astype(x.dtype)
        else:
            patch = np.zeros((c, 1, 1), dtype=x.dtype)
        out[:, top : top + h, left : left + w] = patch
        return out

    def __repr__(self) -> str:
        return (
            f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, mode={self.mode!r})"
        )
