"""Reading one image file: :func:`read_image`, and :func:`to_rgb`, its conversion to 8-bit RGB.

Every Pillow mode becomes 8-bit RGB in a documented way (alpha dropped, 16-bit scaled by
1/257, float taken as [0, 1]), and a file that cannot be read (empty, truncated, corrupt, not
an image, unreadable, larger than ``PIL.Image.MAX_IMAGE_PIXELS``, the decompression-bomb
guard) raises :class:`~mini_iformer.data.base.DatasetError` naming it.
:class:`~mini_iformer.data.image_folder.ImageFolder` and :mod:`mini_iformer.imagenet` read
their images with it.
"""

from __future__ import annotations

import io
import os
import stat

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..cli import message_of
from .base import DatasetError, PathLike, os_reason

__all__ = ["read_image", "to_rgb"]

_REPLACE = "replace or delete the file"
# Modes that hold integers beyond 8 bits: Pillow decodes 16-bit PNG and TIFF into I;16*, and
# 16-bit PGM/PPM and 32-bit integer TIFF into I.
_WIDE_INT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def read_image(path: PathLike) -> Image.Image:
    """The image at ``path``, upright (EXIF orientation applied), as an 8-bit RGB PIL image.

    Conversion by mode: ``RGB`` as is; ``L`` and ``1`` (black 0, white 255) repeated in the
    three channels; ``RGBA``, ``LA``, ``RGBa``, ``RGBX`` drop the alpha (or padding) channel
    and keep the colour as stored, not blended with a background; ``P`` and ``PA`` (palette,
    with or without transparency) take their palette colours, transparency dropped; ``CMYK``,
    ``YCbCr`` and the other modes Pillow converts go through ``Image.convert("RGB")``. Wider
    integers are scaled, not clipped at 255: ``I;16`` (16-bit) as ``round(v / 257)``, and ``I``
    (32-bit integer, what Pillow makes of 16-bit PGM files) as 16-bit data, values clipped to
    0..65535 first. ``F`` (32-bit float) is taken as intensities in [0, 1]: ``round(255 * v)``,
    values clipped to [0, 1]. Multi-frame files give their first frame.

    Any problem raises :class:`DatasetError` whose message names ``path`` and the reason: a
    missing, unreadable or empty file, something that is not a regular file (a FIFO is refused
    without waiting on it), contents that are no image Pillow knows, a truncated or corrupt
    image, ``NaN`` or infinite values in an ``F`` image, a mode with no conversion to RGB, or
    an image of more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``.

    That limit guards against decompression bombs (a small file that declares a huge image).
    It is checked from the header, before any pixel is decoded, and here it is an error at
    the limit itself (Pillow alone only warns between one and two times the limit). To read
    larger images, raise it: ``PIL.Image.MAX_IMAGE_PIXELS = 200_000_000`` (``None`` turns the
    check off); it is read at every call.
    """
    path = os.fspath(path)
    with _open_regular_file(path) as f:
        try:
            with Image.open(f) as image:
                _check_pixel_count(path, image.size)
                image.load()
                upright = ImageOps.exif_transpose(image)
        except DatasetError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow's own check, which runs first; a warning arrives here when warnings are
            # turned into errors.
            raise DatasetError(_too_large(path, f"Pillow: {message_of(exc)}")) from exc
        except UnidentifiedImageError as exc:
            raise DatasetError(
                f"{path}: not an image in a format Pillow reads, whatever its extension; {_REPLACE}"
            ) from exc
        except Exception as exc:
            raise DatasetError(
                f"{path}: cannot decode the image, truncated or corrupt "
                f"({type(exc).__name__}: {message_of(exc)}); {_REPLACE}"
            ) from exc
    if upright.width == 0 or upright.height == 0:
        raise DatasetError(
            f"{path}: the image has no pixels ({upright.width}x{upright.height}); {_REPLACE}"
        )
    try:
        return to_rgb(upright)
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}; {_REPLACE}") from exc


def _open_regular_file(path: str) -> io.BufferedReader:
    """``path`` opened for reading, once known to be a non-empty regular file.

    Opened without blocking, so that a FIFO given an image's name is refused, not waited on.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise DatasetError(
            f"{path}: no such file (moved or deleted since the dataset was "
            f"listed, or a broken link)"
        ) from exc
    except OSError as exc:
        raise DatasetError(
            f"{path}: cannot open the file ({os_reason(exc)}); make it readable or delete it"
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DatasetError(
                f"{path}: not a regular file (a folder, FIFO, socket or "
                f"device); remove it from the dataset"
            )
        if info.st_size == 0:
            raise DatasetError(
                f"{path}: empty file (0 bytes), e.g. an interrupted download or copy; {_REPLACE}"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _too_large(path: str, detail: str) -> str:
    return (
        f"{path}: larger than the limit of {Image.MAX_IMAGE_PIXELS:,} pixels that guards "
        f"against decompression bombs ({detail}); if the image is genuine, raise the "
        f"limit: PIL.Image.MAX_IMAGE_PIXELS = <pixels> (None: no limit)"
    )


def _check_pixel_count(path: str, size: tuple[int, int]) -> None:
    """Refuse an image of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels, from its header."""
    limit = Image.MAX_IMAGE_PIXELS
    width, height = size
    if limit is not None and width * height > limit:
        raise DatasetError(_too_large(path, f"{width}x{height} = {width * height:,} pixels"))


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, converted by mode as :func:`read_image` describes;
    ``ValueError`` if its mode has no conversion or it holds non-finite floats."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _WIDE_INT_MODES:
        values = np.clip(np.asarray(image).astype(np.float64), 0.0, 65535.0)
        return Image.fromarray(np.rint(values / 257.0).astype(np.uint8)).convert("RGB")
    if mode == "F":
        values = np.asarray(image).astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("the float (mode F) image holds NaN or infinite values")
        grey = np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode in ("P", "PA"):
        # Through RGBA, so that palette transparency is dropped without Pillow's warning.
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ValueError(f"an image of mode {mode!r} has no conversion to RGB ({exc})") from exc
