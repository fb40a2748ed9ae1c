"""The dataset readers against bad input: every failure is a DatasetError naming file and reason.

test_datasets.py covers the ordinary damage (a missing, empty, half-length or garbage batch, a
checksum mismatch, a pickle that would run code, a broken PNG). This file goes further:

* CIFAR batches cut at many points, random bytes, every way the batch dict can be wrong
  (missing keys, shapes, dtypes, label types and ranges, labels too large for int64), a
  folder or an unreadable file where a batch should be, a root that is a file;
* image folders: empty, truncated, random and unreadable files, FIFOs, links, every Pillow
  mode converted to 8-bit RGB with values that make sense, the decompression-bomb limit (an
  error at the limit, whatever the warning filters, before any pixel is decoded, and how to
  raise it), what is skipped and what makes a folder unusable;
* hypothesis fuzzing of a valid CIFAR batch, meta file, PNG, JPEG and TIFF (bytes flipped,
  inserted, deleted, cut): reading either succeeds with sane output or raises DatasetError.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageFile

from mini_iformer.data import cifar as D
from mini_iformer.data.base import DatasetError
from mini_iformer.data.cifar import CIFAR10
from mini_iformer.data.cifar_pickle import load_pickle
from mini_iformer.data.download import _md5
from mini_iformer.data.image_folder import ImageFolder
from mini_iformer.data.images import read_image
from mini_iformer.data.testing import write_cifar_batches

C10 = "cifar-10-batches-py"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --- helpers -------------------------------------------------------------------------------------


def _cifar(root: Path, n: int = 12, test_size: int = 2) -> Path:
    """A small CIFAR-10 in the official layout; returns its folder."""
    images = (np.arange(n * 32 * 32 * 3) % 251).astype(np.uint8).reshape(n, 32, 32, 3)
    return write_cifar_batches(root, images, np.arange(n) % 10, test_size=test_size)


def _read_test_split(root: Path) -> CIFAR10:
    return CIFAR10(root, train=False, verify=False)


def _rewrite_batch(path: Path, change) -> None:
    """Load the batch at ``path`` (byte-string keys, as the release), change it, pickle it back."""
    batch = {k.encode(): v for k, v in load_pickle(path).items()}
    change(batch)
    path.write_bytes(pickle.dumps(batch, protocol=4))


def _encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _noise(size: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _folder_with(root: Path, name: str, content: bytes) -> tuple[ImageFolder, Path]:
    """An ImageFolder of one class holding one file ``name`` with ``content``."""
    path = root / "cls" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return ImageFolder(root), path


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a ``width`` x ``height`` RGB image (valid CRCs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _names(err: pytest.ExceptionInfo, path: Path, *reasons: str) -> None:
    """The message is one line that starts with ``path`` and contains every reason."""
    msg = str(err.value)
    assert msg.startswith(f"{path}:"), msg
    assert len(msg.splitlines()) == 1, msg
    for reason in reasons:
        assert reason in msg, (reason, msg)


# --- CIFAR batches -------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2, 3, 16, 40, 100, 0.25, 0.5, 0.9, -40, -2, -1])
def test_a_batch_cut_anywhere_is_named_as_truncated(tmp_path, cut):
    path = _cifar(tmp_path) / "test_batch"
    raw = path.read_bytes()
    end = int(len(raw) * cut) if isinstance(cut, float) else cut % len(raw)
    path.write_bytes(raw[:end])
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, "truncated or corrupt")


def test_a_zero_length_batch_is_named_as_empty(tmp_path):
    path = _cifar(tmp_path) / "test_batch"
    path.write_bytes(b"")
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, "empty file (0 bytes)")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("prefix", [b"", b"\x80\x02"], ids=["raw", "pickle-header"])
def test_a_batch_of_random_bytes_is_named_as_corrupt(tmp_path, seed, prefix):
    path = _cifar(tmp_path) / "test_batch"
    path.write_bytes(prefix + np.random.default_rng(seed).bytes(4096))
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, "not a readable CIFAR file")


def _drop(key):
    return lambda b: b.pop(key)


def _set(key, value):
    return lambda b: b.__setitem__(key, value)


WRONG_BATCHES = {
    "no data": (_drop(b"data"), "no 'data' entry (keys: 'batch_label', 'filenames', 'labels')"),
    "no labels": (_drop(b"labels"), "no 'labels' entry"),
    "data 1-d": (lambda b: b.__setitem__(b"data", b[b"data"].reshape(-1)), "'data' is (6144,)"),
    "data 4-d": (lambda b: b.__setitem__(b"data", b[b"data"].reshape(2, 3, 32, 32)),
                 "'data' is (2, 3, 32, 32)"),
    "data not an array": (_set(b"data", b"\0" * 6144), "'data' is bytes"),
    "data float": (lambda b: b.__setitem__(b"data", b[b"data"].astype(np.float32)),
                   "'data' has dtype float32, expected uint8"),
    "data int64": (lambda b: b.__setitem__(b"data", b[b"data"].astype(np.int64)),
                   "'data' has dtype int64"),
    "labels a string": (_set(b"labels", b"01"), "'labels' is not a list of integers"),
    "labels floats": (_set(b"labels", [1.0, 2.0]), "'labels' is not a list of integers"),
    "labels bools": (_set(b"labels", [True, False]), "'labels' is not a list of integers"),
    "labels nested": (_set(b"labels", [[1], [2]]), "'labels' is not a list of integers"),
    "labels 2-d array": (_set(b"labels", np.array([[1], [2]])), "'labels' is not a list of integers"),
    "labels too many": (_set(b"labels", [1, 2, 3]), "3 labels for 2 images"),
    "labels negative": (_set(b"labels", [-1, 2]), "labels outside 0..9 (min -1, max -1, 1 in all)"),
    "labels past the classes": (_set(b"labels", [3, 10]), "labels outside 0..9 (min 10"),
    "labels past int64": (_set(b"labels", [2 ** 70, 1]), f"labels outside 0..9 (min {2 ** 70}"),
    "labels array out of range": (_set(b"labels", np.array([0, 255], np.uint8)),
                                  "labels outside 0..9 (min 255"),
}


@pytest.mark.parametrize("case", list(WRONG_BATCHES))
def test_a_batch_with_the_wrong_structure_is_named_with_the_reason(tmp_path, case):
    change, reason = WRONG_BATCHES[case]
    path = _cifar(tmp_path) / "test_batch"
    _rewrite_batch(path, change)
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, reason, "delete")                          # and what to do


@pytest.mark.parametrize("index", [2 ** 27, 2 ** 32 - 1])
def test_a_corrupt_memo_index_costs_no_memory(tmp_path, index):
    # LONG_BINPUT naming memo slot ``index``: CPython's C unpickler grows an array to that size
    # (2 GB cleared for 2**27, a MemoryError for 2**32 - 1); the reader must not care and go on
    # to the real problem, a dict without the batch entries.
    path = _cifar(tmp_path) / "test_batch"
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", index) + b".")
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, "no 'data' entry (keys: none)")


def test_a_forbidden_global_with_control_characters_is_named_on_one_line(tmp_path):
    path = _cifar(tmp_path) / "test_batch"
    path.write_bytes(b"\x80\x02cnum\x0bpy\nfoo\x1c\n.")            # GLOBAL 'num\x0bpy' 'foo\x1c'
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, "refused to load, the file calls num\\x0bpy.foo\\x1c")


def test_labels_as_an_integer_array_are_accepted(tmp_path):
    path = _cifar(tmp_path) / "test_batch"
    _rewrite_batch(path, _set(b"labels", np.array([7, 9], np.int16)))
    ds = _read_test_split(tmp_path)
    np.testing.assert_array_equal(ds.targets, [7, 9])
    assert ds.targets.dtype == np.int64


@pytest.mark.parametrize("meta, reason", [
    ({b"num_vis": 3072}, "no 'label_names' list"),
    ({b"label_names": b"airplane"}, "no 'label_names' list"),
    ({b"label_names": []}, "no 'label_names' list"),
    ([b"airplane"], "holds a list, not a CIFAR dict"),
])
def test_a_wrong_meta_file_is_named_with_the_reason(tmp_path, meta, reason):
    path = _cifar(tmp_path) / "batches.meta"
    path.write_bytes(pickle.dumps(meta, protocol=4))
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, reason)


@pytest.mark.parametrize("verify, reason", [(False, "is a folder, not a CIFAR file"),
                                            (True, "not a file")])
def test_a_folder_in_place_of_a_batch_is_named(tmp_path, monkeypatch, verify, reason):
    folder = _cifar(tmp_path)
    monkeypatch.setattr(D, "CIFAR10_MD5", {"batches.meta": _md5(folder / "batches.meta")})
    path = folder / "test_batch"
    path.unlink()
    path.mkdir()
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path, train=False, verify=verify)
    _names(err, path, reason)


@pytest.fixture
def deny(monkeypatch):
    """``deny(path, function)`` makes ``path`` unreadable: chmod 000 for an ordinary user, and,
    as root (who reads anything), ``function`` (``open``, ``os.open`` or ``os.scandir``)
    refusing it with the PermissionError the system would give."""
    restore: list[tuple[Path, int]] = []

    def deny_(target: Path, function: str = "open") -> None:
        if not AS_ROOT:
            restore.append((target, target.stat().st_mode))
            target.chmod(0)
            return
        owner = builtins if function == "open" else os
        name = function.split(".")[-1]
        real = getattr(owner, name)

        def refusing(path, *args, **kwargs):
            if os.fspath(path) == os.fspath(target):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(owner, name, refusing)

    yield deny_
    for path, mode in restore:                                   # so that tmp_path can be removed
        path.chmod(mode)


def test_an_unreadable_batch_is_named_with_the_reason(tmp_path, deny):
    path = _cifar(tmp_path) / "test_batch"
    deny(path)
    with pytest.raises(DatasetError) as err:
        _read_test_split(tmp_path)
    _names(err, path, "cannot read the file (Permission denied)")


def test_an_unreadable_batch_is_named_when_its_checksum_is_checked(tmp_path, monkeypatch, deny):
    folder = _cifar(tmp_path)
    monkeypatch.setattr(D, "CIFAR10_MD5", {f: _md5(folder / f) for f in os.listdir(folder)})
    path = folder / "test_batch"
    deny(path)
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path, train=False)
    _names(err, path, "cannot read the file to check its md5 (Permission denied)")


@pytest.mark.parametrize("download", [False, True])
def test_a_cifar_root_that_is_a_file_is_reported(tmp_path, download, monkeypatch):
    root = tmp_path / "data"
    root.write_text("not a folder")
    monkeypatch.setattr(D, "CIFAR10_URL", (tmp_path / "unused.tar.gz").as_uri())
    with pytest.raises(DatasetError) as err:
        CIFAR10(root, download=download)
    msg = str(err.value)
    assert str(root) in msg and len(msg.splitlines()) == 1
    assert ("cannot create the folder" if download else "no CIFAR-10 data") in msg
    assert root.read_text() == "not a folder"


# --- image folders: what is listed ---------------------------------------------------------------


def _image(path: Path, colour=(1, 2, 3), size=(4, 3)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_non_images_and_hidden_files_are_skipped_by_name(tmp_path):
    cls = tmp_path / "cls"
    kept = [_image(cls / "a.png"), _image(cls / "b.JPEG"), _image(cls / "deep" / "er" / "c.bmp")]
    for junk in ["notes.txt", "Thumbs.db", "desktop.ini", "x.png.part", "README", "labels.csv"]:
        (cls / junk).write_bytes(b"junk")
    (cls / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cls / "._a.png").write_bytes(b"\0\5\26\7 AppleDouble")        # macOS resource fork
    _image(cls / ".thumbnails" / "t.png")                          # hidden folder
    _image(tmp_path / ".trash" / "x.png")                          # hidden class folder
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cls"]
    assert [p for p, _ in ds.samples] == sorted(str(p) for p in kept)
    assert all(ds[i][0].mode == "RGB" for i in range(len(ds)))   # every one of them loads


def test_nested_subfolders_count_and_samples_are_sorted_by_path(tmp_path):
    paths = [_image(tmp_path / "b" / "z" / "1.png"), _image(tmp_path / "b" / "a.png"),
             _image(tmp_path / "a" / "y" / "x" / "w" / "2.png")]
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["a", "b"]
    assert ds.samples == [(str(paths[2]), 0), (str(paths[1]), 1), (str(paths[0]), 1)]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links on this system")
def test_a_link_back_to_a_parent_folder_is_walked_once(tmp_path):
    cls = tmp_path / "cls"
    _image(cls / "sub" / "a.png")
    os.symlink(cls, cls / "sub" / "loop")                        # cls/sub/loop -> cls: a cycle
    os.symlink(cls / "sub", cls / "again")                       # the same folder twice
    outside = _image(tmp_path.parent / f"{tmp_path.name}-outside" / "b.png")
    os.symlink(outside.parent, cls / "linked")                   # links are followed
    ds = ImageFolder(tmp_path)
    # Each real folder once, under its first path in sorted order ("again" before "sub").
    assert [p for p, _ in ds.samples] == [str(cls / "again" / "a.png"), str(cls / "linked" / "b.png")]


@pytest.mark.parametrize("content", ["nothing", "only hidden image", "only empty subfolders",
                                     "only non-images"])
def test_a_class_folder_without_images_is_an_error(tmp_path, content):
    _image(tmp_path / "good" / "a.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    if content == "only hidden image":
        _image(empty / ".a.png")
    elif content == "only empty subfolders":
        (empty / "x" / "y").mkdir(parents=True)
    elif content == "only non-images":
        (empty / "Thumbs.db").write_bytes(b"x")
    with pytest.raises(DatasetError) as err:
        ImageFolder(tmp_path)
    _names(err, empty, "class folder without images", "remove the folder")


@pytest.mark.parametrize("content", ["images in the root itself", "only hidden folders"])
def test_a_root_without_class_folders_is_an_error(tmp_path, content):
    if content == "images in the root itself":
        _image(tmp_path / "a.png")
    else:
        _image(tmp_path / ".cache" / "a.png")
    with pytest.raises(DatasetError) as err:
        ImageFolder(tmp_path)
    _names(err, tmp_path, "holds no class sub-folders", f"{tmp_path}/<class>/<image files>")


def test_a_root_that_is_a_file_is_an_error(tmp_path):
    root = _image(tmp_path / "a.png")
    with pytest.raises(DatasetError) as err:
        ImageFolder(root)
    _names(err, root, "is a file, not a folder")


def test_an_unlistable_class_folder_is_named(tmp_path, deny):
    _image(tmp_path / "a" / "x.png")
    locked = _image(tmp_path / "b" / "y.png").parent
    deny(locked, "os.scandir")
    with pytest.raises(DatasetError) as err:
        ImageFolder(tmp_path)
    _names(err, locked, "cannot list this folder (Permission denied)")


# --- image folders: reading a bad file -----------------------------------------------------------


def test_a_zero_byte_image_is_named_when_loaded(tmp_path):
    ds, path = _folder_with(tmp_path, "empty.jpg", b"")
    assert len(ds) == 1                                          # listed: the error comes on load
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, path, "empty file (0 bytes)")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5, 0.75, 0.95])
def test_an_image_cut_in_the_middle_is_named_when_loaded(tmp_path, fmt, fraction):
    raw = _encoded(_noise(), fmt)
    ds, path = _folder_with(tmp_path, f"cut.{fmt.lower()}", raw[:int(len(raw) * fraction)])
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, path, "truncated or corrupt", "replace or delete the file")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ext", [".jpg", ".png", ".gif", ".tif", ".webp", ".bmp"])
def test_random_bytes_with_an_image_extension_are_named_when_loaded(tmp_path, ext, seed):
    ds, path = _folder_with(tmp_path, f"random{ext}", np.random.default_rng(seed).bytes(3000))
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, path, "not an image in a format Pillow reads")


def test_an_unreadable_image_is_named_when_loaded(tmp_path, deny):
    ds, path = _folder_with(tmp_path, "locked.png", _encoded(_noise(8), "PNG"))
    deny(path, "os.open")
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, path, "cannot open the file (Permission denied)")


def test_an_image_removed_after_listing_is_named_when_loaded(tmp_path):
    ds, path = _folder_with(tmp_path, "gone.png", _encoded(_noise(8), "PNG"))
    path.unlink()
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, path, "no such file")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links on this system")
def test_a_broken_link_is_named_when_loaded(tmp_path):
    link = tmp_path / "cls" / "dangling.jpg"
    link.parent.mkdir()
    os.symlink(tmp_path / "nowhere.jpg", link)
    ds = ImageFolder(tmp_path)
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, link, "no such file", "broken link")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_like_an_image_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "cls" / "pipe.png"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    ds = ImageFolder(tmp_path)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            ds[0]
        except Exception as exc:  # noqa: BLE001 - checked below, in the test's thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():                                        # blocked in open: release it
        try:  # noqa: SIM105
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        pytest.fail("reading a FIFO blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], DatasetError), outcome
    assert str(outcome[0]).startswith(f"{fifo}: not a regular file")


# --- image folders: modes --------------------------------------------------------------------------


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (3, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1, 0])
    return _encoded(image, "PNG", transparency=0)


def _grey16_pgm(values) -> bytes:
    row = np.asarray(values, ">u2")
    return f"P5\n{row.size} 1\n65535\n".encode() + row.tobytes()


MODES = {
    # name: (file name, bytes, mode Pillow opens it in, expected grey row or RGB pixels)
    "L": ("l.png", lambda: _encoded(Image.fromarray(np.array([[0, 77, 255]], np.uint8)), "PNG"),
          "L", [0, 77, 255]),
    "1": ("one.png", lambda: _encoded(Image.fromarray(np.array([[True, False, True]])), "PNG"),
          "1", [255, 0, 255]),
    "LA": ("la.png", lambda: _encoded(Image.fromarray(
        np.array([[[90, 0], [90, 128], [90, 255]]], np.uint8), "LA"), "PNG"), "LA", [90, 90, 90]),
    "RGBA": ("rgba.png", lambda: _encoded(Image.new("RGBA", (3, 1), (10, 20, 30, 7)), "PNG"),
             "RGBA", [(10, 20, 30)] * 3),
    "P with transparency": ("p.png", _palette_with_transparency, "P",
                            [(10, 20, 30), (200, 100, 50), (10, 20, 30)]),
    "I;16 PNG": ("i16.png", lambda: _encoded(Image.fromarray(
        np.array([[0, 257, 32896, 65535]], np.uint16)), "PNG"), "I;16", [0, 1, 128, 255]),
    "I;16B TIFF": ("i16b.tif", lambda: _encoded(Image.fromarray(
        np.array([[0, 257 * 40, 65535]], ">u2")), "TIFF"), "I;16B", [0, 40, 255]),
    "I from a 16-bit PGM": ("grey16.pgm", lambda: _grey16_pgm([0, 514, 65535]), "I", [0, 2, 255]),
    "I (int32 TIFF)": ("i32.tif", lambda: _encoded(Image.fromarray(
        np.array([[-5, 0, 60000, 70000]], np.int32)), "TIFF"), "I", [0, 0, 233, 255]),
    "F (float TIFF)": ("f.tif", lambda: _encoded(Image.fromarray(
        np.array([[-1.0, 0.0, 0.5, 1.0, 7.5]], np.float32)), "TIFF"), "F", [0, 0, 128, 255, 255]),
}


@pytest.mark.parametrize("case", list(MODES))
def test_every_mode_becomes_rgb_uint8_with_sensible_values(tmp_path, case):
    name, make, opened_as, expected = MODES[case]
    ds, path = _folder_with(tmp_path, name, make())
    with Image.open(path) as raw:
        assert raw.mode == opened_as                             # the case tests what it says
    image, _ = ds[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    pixels = np.asarray(image)
    assert pixels.dtype == np.uint8
    expected = np.asarray(expected, np.uint8)
    if expected.ndim == 1:                                       # grey: the same in R, G and B
        expected = np.repeat(expected[:, None], 3, axis=1)
    np.testing.assert_array_equal(pixels[0], expected)


def test_a_cmyk_jpeg_becomes_rgb(tmp_path):
    ds, path = _folder_with(tmp_path, "cmyk.jpg",
                            _encoded(Image.new("CMYK", (8, 8), (0, 255, 0, 0)), "JPEG", quality=95))
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    pixels = np.asarray(ds[0][0]).astype(int)
    assert np.abs(pixels - [255, 0, 255]).max() <= 3            # magenta, up to JPEG's rounding


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_image_with_non_finite_values_is_named_when_loaded(tmp_path, bad):
    values = np.array([[0.5, bad]], np.float32)
    ds, path = _folder_with(tmp_path, "bad.tif", _encoded(Image.fromarray(values), "TIFF"))
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, path, "NaN or infinite")


# --- the decompression-bomb limit ------------------------------------------------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image is decoded (ImageFile.load is where pixels are allocated)."""
    def refuse(self):
        raise AssertionError(f"decoded an image of {self.size}")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize("side", [100_000, 10_000], ids=["over twice the limit", "just over"])
@pytest.mark.parametrize("filter_", ["error", "ignore"])
def test_a_huge_declared_size_is_an_error_before_decoding(tmp_path, no_decoding, side, filter_):
    # 10,000 x 10,000 lies between Pillow's limit and twice it, where Pillow alone only warns:
    # here it is an error whether the warning is raised (as in these tests) or ignored.
    ds, path = _folder_with(tmp_path, "bomb.png", _png_declaring(side, side))
    with warnings.catch_warnings():
        warnings.simplefilter(filter_)
        with pytest.raises(DatasetError) as err:
            ds[0]
    _names(err, path, f"limit of {Image.MAX_IMAGE_PIXELS:,} pixels", "decompression bomb",
           "PIL.Image.MAX_IMAGE_PIXELS")


@pytest.mark.parametrize("limit", [150, 300], ids=["over twice", "between once and twice"])
def test_the_pixel_limit_is_pillows_and_raising_it_lets_the_image_load(tmp_path, monkeypatch, limit):
    ds, path = _folder_with(tmp_path, "big.png", _encoded(_noise(20), "PNG"))  # 400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DatasetError) as err:
        ds[0]
    _names(err, path, f"limit of {limit} pixels", "PIL.Image.MAX_IMAGE_PIXELS")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)          # at the limit: allowed
    assert ds[0][0].size == (20, 20)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)         # no limit
    assert ds[0][0].size == (20, 20)


def test_the_pixel_limit_applies_when_warnings_are_ignored(tmp_path, monkeypatch, no_decoding):
    ds, path = _folder_with(tmp_path, "big.png", _encoded(_noise(20), "PNG"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError) as err:
            read_image(path)
    _names(err, path, "20x20 = 400 pixels", "limit of 300 pixels")


# --- fuzzing -------------------------------------------------------------------------------------

# A mutation: (kind, position, bytes). Negative positions count from the end, so that both the
# header and the tail of a file (where a pickle keeps its structure) are hit often.
_MUTATION = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]),
                      st.one_of(st.integers(0, 300), st.integers(-300, -1), st.integers(0, 1 << 20)),
                      st.binary(min_size=1, max_size=8))
_MUTATIONS = st.lists(_MUTATION, min_size=1, max_size=4)


def _mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, position, chunk in mutations:
        at = position % (len(out) + 1) if position >= 0 else max(0, len(out) + position)
        if kind == "flip":
            for k, byte in enumerate(chunk[:max(0, len(out) - at)]):
                out[at + k] ^= byte or 0xFF
        elif kind == "insert":
            out[at:at] = chunk
        elif kind == "delete":
            del out[at:at + len(chunk)]
        else:
            del out[at:]
    return bytes(out)


@pytest.mark.parametrize("target", ["test_batch", "batches.meta"])
@given(mutations=_MUTATIONS)
def test_a_mutated_cifar_file_reads_or_raises_dataset_error(tmp_path, target, mutations):
    root = tmp_path / target
    folder = root / C10
    if not folder.is_dir():
        _cifar(root, n=3, test_size=1)
        (root / "original").write_bytes((folder / target).read_bytes())
    path = folder / target
    path.write_bytes(_mutate((root / "original").read_bytes(), mutations))
    try:
        ds = _read_test_split(root)
    except DatasetError as exc:
        assert str(exc).startswith(f"{path}:") and len(str(exc).splitlines()) == 1
        return
    assert ds.data.shape == (len(ds), 32, 32, 3) and ds.data.dtype == np.uint8
    assert ds.targets.dtype == np.int64 and ((ds.targets >= 0) & (ds.targets < len(ds.classes))).all()


_SMALL = _noise(16, seed=1)
# TIFF too: its parser warns about damage (turned into errors here, as in the whole suite),
# which the reader must report as a DatasetError like any other failure.
_VALID = {"PNG": _encoded(_SMALL, "PNG"), "JPEG": _encoded(_SMALL, "JPEG", quality=90),
          "TIFF": _encoded(_SMALL, "TIFF")}


@pytest.mark.parametrize("fmt", list(_VALID))
@given(mutations=_MUTATIONS)
def test_a_mutated_image_reads_or_raises_dataset_error(tmp_path, monkeypatch, fmt, mutations):
    # A mutated header may declare a large image; a low limit keeps each example fast (and is
    # itself an error the test accepts).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1 << 16)
    path = tmp_path / fmt / "cls" / f"x.{fmt.lower()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_mutate(_VALID[fmt], mutations))
    ds = ImageFolder(tmp_path / fmt)
    try:
        image, label = ds[0]
    except DatasetError as exc:
        assert str(exc).startswith(f"{path}:") and len(str(exc).splitlines()) == 1
        return
    assert image.mode == "RGB" and image.width * image.height >= 1 and label == 0
    assert np.asarray(image).dtype == np.uint8
