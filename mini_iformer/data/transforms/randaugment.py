"""RandAugment with the increasing-severity operation set ("rand-m9-mstd0.5-inc1").

:class:`RandAugment` applies ``num_ops`` operations drawn per image from
:data:`RAND_INCREASING_OPS`, each at a randomly drawn magnitude; its docstring gives every
operation's parameter as a function of the magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .common import (
    ImageLike,
    check_interpolation,
    check_rng,
    like,
    resampling,
    rgb_or_l,
    to_pil,
)

__all__ = ["RAND_INCREASING_OPS", "RandAugment"]

#: The increasing-severity operation set: for every op with a magnitude, a larger magnitude
#: means a stronger change, and magnitude 0 is the identity.
RAND_INCREASING_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)

_SIGNED_OPS = frozenset(
    {
        "Rotate",
        "ColorIncreasing",
        "ContrastIncreasing",
        "BrightnessIncreasing",
        "SharpnessIncreasing",
        "ShearX",
        "ShearY",
        "TranslateXRel",
        "TranslateYRel",
    }
)
_GEOMETRIC_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"})
_ENHANCERS = {
    "ColorIncreasing": ImageEnhance.Color,
    "ContrastIncreasing": ImageEnhance.Contrast,
    "BrightnessIncreasing": ImageEnhance.Brightness,
    "SharpnessIncreasing": ImageEnhance.Sharpness,
}
_MAX_MAGNITUDE = 10.0


def _solarize_add(img: Image.Image, add: int, threshold: int = 128) -> Image.Image:
    lut = [min(255, i + add) if i < threshold else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


class RandAugment:
    """RandAugment with the increasing-severity operations ("rand-m9-mstd0.5-inc1" by default).

    Per image, ``num_ops`` operations are drawn uniformly from ``ops`` (with replacement). Each
    is applied with probability ``prob``; when applied, its magnitude is drawn from
    ``N(magnitude, magnitude_std**2)`` and clipped to [0, 10] (``magnitude_std=inf`` draws it
    uniformly in [0, magnitude], 0 uses ``magnitude`` as is). The signed operations then negate
    their parameter with probability 1/2, and the geometric ones fill uncovered pixels with
    ``fill`` and resample with ``interpolation`` ("random": bilinear or bicubic per op).

    The magnitude ``m`` (0..10) sets each operation's parameter:

    ======================  =====================================================  ============
    operation               parameter at magnitude m                               at m = 0
    ======================  =====================================================  ============
    AutoContrast            (none) stretch each channel to the full 0..255 range   --
    Equalize                (none) equalise each channel's histogram               --
    Invert                  (none) ``255 - x``                                     --
    Rotate                  ``+-30 * m/10`` degrees about the centre               identity
    PosterizeIncreasing     keep ``8 - int(4 * m/10)`` bits (8 down to 4)          identity
    SolarizeIncreasing      invert pixels ``>= 256 - int(256 * m/10)``             identity
    SolarizeAdd             add ``int(110 * m/10)`` to pixels < 128, clip at 255   identity
    ColorIncreasing         saturation factor ``max(0.1, 1 +- 0.9 * m/10)``        identity
    ContrastIncreasing      contrast factor ``max(0.1, 1 +- 0.9 * m/10)``          identity
    BrightnessIncreasing    brightness factor ``max(0.1, 1 +- 0.9 * m/10)``        identity
    SharpnessIncreasing     sharpness factor ``max(0.1, 1 +- 0.9 * m/10)``         identity
    ShearX / ShearY         shear factor ``+-0.3 * m/10``                          identity
    TranslateXRel / YRel    shift by ``+-0.45 * m/10`` of the width / height       identity
    ======================  =====================================================  ============

    ``+-`` marks the signed operations. Images are L or RGB PIL images or uint8 arrays
    (``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``); other PIL modes are converted to RGB.
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 9.0,
        magnitude_std: float = 0.5,
        increasing: bool = True,
        prob: float = 0.5,
        ops: Sequence[str] | None = None,
        fill: int | Sequence[int] = (128, 128, 128),
        interpolation: str = "bicubic",
        translate_pct: float = 0.45,
    ):
        if not increasing:
            raise ValueError(
                "RandAugment: only the increasing-severity operation set is implemented "
                "(increasing=True)"
            )
        if isinstance(num_ops, bool) or not isinstance(num_ops, (int, np.integer)) or num_ops < 0:
            raise ValueError(f"RandAugment: num_ops must be a non-negative int, got {num_ops!r}")
        if not 0.0 <= magnitude <= _MAX_MAGNITUDE:
            raise ValueError(f"RandAugment: magnitude must be in [0, 10], got {magnitude!r}")
        if not magnitude_std >= 0.0:
            raise ValueError(f"RandAugment: magnitude_std must be >= 0, got {magnitude_std!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandAugment: prob must be in [0, 1], got {prob!r}")
        self.ops = tuple(RAND_INCREASING_OPS if ops is None else ops)
        unknown = [op for op in self.ops if op not in RAND_INCREASING_OPS]
        if unknown or not self.ops:
            raise ValueError(
                f"RandAugment: unknown or no operations {unknown}; choose from "
                f"{', '.join(RAND_INCREASING_OPS)}"
            )
        self.num_ops = int(num_ops)
        self.magnitude = float(magnitude)
        self.magnitude_std = float(magnitude_std)
        self.increasing = True
        self.prob = float(prob)
        self.fill = fill
        self.interpolation = check_interpolation(interpolation, allow_random=True)
        self.translate_pct = float(translate_pct)

    # -- parameters --------------------------------------------------------------------------

    def level_to_arg(self, op: str, magnitude: float) -> float | int | None:
        """The unsigned parameter of ``op`` at ``magnitude`` (see the table); None if it has
        none."""
        m = min(max(float(magnitude), 0.0), _MAX_MAGNITUDE) / _MAX_MAGNITUDE
        if op in ("AutoContrast", "Equalize", "Invert"):
            return None
        if op == "Rotate":
            return 30.0 * m
        if op == "PosterizeIncreasing":
            return 8 - int(4 * m)
        if op == "SolarizeIncreasing":
            return 256 - int(256 * m)
        if op == "SolarizeAdd":
            return int(110 * m)
        if op in _ENHANCERS:
            return 0.9 * m
        if op in ("ShearX", "ShearY"):
            return 0.3 * m
        if op in ("TranslateXRel", "TranslateYRel"):
            return self.translate_pct * m
        raise ValueError(f"RandAugment: unknown operation {op!r}")

    def sample_magnitude(self, rng: np.random.Generator) -> float:
        """One magnitude drawn as described in the class docstring."""
        m = self.magnitude
        if self.magnitude_std == float("inf"):
            m = rng.uniform(0.0, m)
        elif self.magnitude_std > 0.0:
            m = rng.normal(m, self.magnitude_std)
        return float(min(max(m, 0.0), _MAX_MAGNITUDE))

    def _fill_for(self, img: Image.Image) -> int | tuple[int, ...]:
        fill = np.broadcast_to(np.asarray(self.fill, dtype=np.int64).reshape(-1), (3,))
        if img.mode == "L":
            return int(round(float(fill.mean())))
        return tuple(int(v) for v in fill)

    # -- one operation -----------------------------------------------------------------------

    def apply_op(
        self, op: str, img: ImageLike, magnitude: float, rng: np.random.Generator
    ) -> ImageLike:
        """Apply ``op`` at ``magnitude`` to ``img`` (always; ``prob`` is not consulted).

        ``rng`` supplies the sign of the signed operations and the "random" interpolation.
        """
        check_rng(rng, "RandAugment")
        pil = rgb_or_l(to_pil(img, "RandAugment"), "RandAugment")
        return like(img, self._apply_pil(op, pil, magnitude, rng))

    def _apply_pil(
        self, op: str, img: Image.Image, magnitude: float, rng: np.random.Generator
    ) -> Image.Image:
        level = self.level_to_arg(op, magnitude)
        if level is None:  # the operations without a parameter
            if op == "AutoContrast":
                return ImageOps.autocontrast(img)
            if op == "Equalize":
                return ImageOps.equalize(img)
            return ImageOps.invert(img)  # Invert
        # The pixel-level operations: an int parameter (see level_to_arg), never negated.
        if op == "PosterizeIncreasing":
            bits = int(level)
            return img if bits >= 8 else ImageOps.posterize(img, bits)
        if op == "SolarizeIncreasing":
            return ImageOps.solarize(img, int(level))
        if op == "SolarizeAdd":
            return _solarize_add(img, int(level))
        # The rest are signed, with a float parameter.
        arg: float = level
        if op in _SIGNED_OPS and rng.random() < 0.5:
            arg = -arg
        if op in _ENHANCERS:
            return _ENHANCERS[op](img).enhance(max(0.1, 1.0 + arg))
        # geometric
        resample = resampling(self.interpolation, rng)
        fill = self._fill_for(img)
        if op == "Rotate":
            return img.rotate(arg, resample=resample, fillcolor=fill)
        if op == "ShearX":
            coeffs = (1.0, arg, 0.0, 0.0, 1.0, 0.0)
        elif op == "ShearY":
            coeffs = (1.0, 0.0, 0.0, arg, 1.0, 0.0)
        elif op == "TranslateXRel":
            coeffs = (1.0, 0.0, arg * img.size[0], 0.0, 1.0, 0.0)
        else:  # TranslateYRel
            coeffs = (1.0, 0.0, 0.0, 0.0, 1.0, arg * img.size[1])
        return img.transform(
            img.size, Image.Transform.AFFINE, coeffs, resample=resample, fillcolor=fill
        )

    # -- the whole policy --------------------------------------------------------------------

    def __call__(self, img: ImageLike, rng: np.random.Generator) -> ImageLike:
        check_rng(rng, "RandAugment")
        pil = rgb_or_l(to_pil(img, "RandAugment"), "RandAugment")
        chosen = rng.integers(0, len(self.ops), size=self.num_ops)
        for k in chosen:
            if rng.random() >= self.prob:
                continue
            pil = self._apply_pil(self.ops[int(k)], pil, self.sample_magnitude(rng), rng)
        return like(img, pil)

    def __repr__(self) -> str:
        return (
            f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, "
            f"magnitude_std={self.magnitude_std}, prob={self.prob}, ops={len(self.ops)} ops, "
            f"interpolation={self.interpolation!r})"
        )
