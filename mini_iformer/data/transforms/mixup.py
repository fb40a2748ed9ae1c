"""Mixup and CutMix: batch-level augmentation that mixes each batch with its reverse.

:class:`MixupCutmix` runs on a whole batch (NumPy or CuPy) after the per-sample transforms,
and returns the mixed images with soft, label-smoothed targets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mini_iformer import backend

from .common import check_rng

__all__ = ["MixupCutmix"]


class MixupCutmix:
    """Mix each batch with its reverse (mixup or cutmix) and return soft, smoothed targets.

    ``__call__(x, y, rng)`` takes ``x`` (N, C, H, W) float (NumPy or CuPy) and integer labels
    ``y`` (N,), and returns ``(x_mixed, targets)`` with ``targets`` (N, num_classes) float32 on
    the backend of ``x``. Sample ``i`` is paired with sample ``N - 1 - i``.

    Per batch, with probability ``prob``, one of:

    * mixup (``lam ~ Beta(mixup_alpha, mixup_alpha)``): ``x = lam * x + (1 - lam) * x[::-1]``;
    * cutmix (``lam ~ Beta(cutmix_alpha, cutmix_alpha)``): a box of ``int(H sqrt(1 - lam))``
      by ``int(W sqrt(1 - lam))`` pixels centred at a uniformly drawn pixel, clipped to the
      image, is copied from the partner; ``lam`` becomes ``1 - box area / (H W)``.

    When both alphas are positive, cutmix is chosen with probability ``switch_prob``. The
    targets are ``lam * smooth(y) + (1 - lam) * smooth(y[::-1])`` with
    ``smooth(y) = one_hot(y) * (1 - label_smoothing) + label_smoothing / num_classes``; when
    nothing is mixed (both alphas 0, or the ``prob`` draw fails) ``lam = 1``: label smoothing
    only. All random draws are made on the host from ``rng``; the input is not modified.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
    ):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"MixupCutmix: alphas must be >= 0, got mixup_alpha={mixup_alpha!r}, "
                f"cutmix_alpha={cutmix_alpha!r}"
            )
        for name, v in (
            ("prob", prob),
            ("switch_prob", switch_prob),
            ("label_smoothing", label_smoothing),
        ):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"MixupCutmix: {name} must be in [0, 1], got {v!r}")
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1
        ):
            raise ValueError(
                f"MixupCutmix: num_classes must be a positive int, got {num_classes!r}"
            )
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)

    def sample_params(
        self, height: int, width: int, rng: np.random.Generator
    ) -> tuple[float, tuple[int, int, int, int] | None]:
        """``(lam, box)`` for one batch; ``box = (y0, y1, x0, x1)`` for cutmix, else None.

        For cutmix ``lam`` is already corrected to the box's area.
        """
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0:
            return 1.0, None
        if rng.random() >= self.prob:
            return 1.0, None
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = bool(rng.random() < self.switch_prob)
        else:
            use_cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        if not use_cutmix:
            return lam, None
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        y0, y1 = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
        x0, x1 = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        return lam, (y0, y1, x0, x1)

    def smooth(self, y: np.ndarray) -> np.ndarray:
        """One-hot targets of the host labels ``y`` with label smoothing, float32 (N, classes)."""
        off = self.label_smoothing / self.num_classes
        out = np.full((y.shape[0], self.num_classes), off, dtype=np.float64)
        out[np.arange(y.shape[0]), y] = 1.0 - self.label_smoothing + off
        return out

    def __call__(self, x: Any, y: Any, rng: np.random.Generator) -> tuple[Any, Any]:
        check_rng(rng, "MixupCutmix")
        name = backend.array_backend(x)
        if name is None:
            x = np.asarray(x)
            name = "numpy"
        xp = backend.module_of(name)
        if x.ndim != 4 or x.dtype.kind != "f":
            raise ValueError(
                f"MixupCutmix: x must be a (N, C, H, W) float array, got {x.dtype} {x.shape}"
            )
        y_host = backend.to_numpy(y)
        if y_host.shape != (x.shape[0],) or y_host.dtype.kind not in "iu":
            raise ValueError(
                f"MixupCutmix: y must be {x.shape[0]} integer labels, "
                f"got {y_host.dtype} {y_host.shape}"
            )
        if y_host.size and (y_host.min() < 0 or y_host.max() >= self.num_classes):
            raise ValueError(
                f"MixupCutmix: labels must be in [0, {self.num_classes}), got "
                f"[{y_host.min()}, {y_host.max()}]"
            )
        lam, box = self.sample_params(x.shape[2], x.shape[3], rng)
        if box is not None:
            y0, y1, x0, x1 = box
            out = x.copy()
            out[:, :, y0:y1, x0:x1] = x[::-1, :, y0:y1, x0:x1]
        elif lam < 1.0:
            out = x * x.dtype.type(lam) + x[::-1] * x.dtype.type(1.0 - lam)
        else:
            out = x.copy()
        smooth = self.smooth(y_host)
        targets = (lam * smooth + (1.0 - lam) * smooth[::-1]).astype(np.float32)
        return out, xp.asarray(targets)

    def __repr__(self) -> str:
        return (
            f"MixupCutmix(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
            f"prob={self.prob}, switch_prob={self.switch_prob}, "
            f"label_smoothing={self.label_smoothing}, num_classes={self.num_classes})"
        )
