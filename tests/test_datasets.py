"""The datasets: CIFAR-10/100 in the official format, safe loading and download, ImageFolder.

* CIFAR files written in the official layout come back pixel for pixel, in height-width-RGB
  order, from the folder and from the .tar.gz; CIFAR-100 uses the fine labels.
* Checksums, truncated/corrupt/missing files, a pickle that would run code, a tar member that
  would escape its folder: each gives a DatasetError naming the file, and nothing runs.
* Downloads (served from a file:// URL) are checked, atomic and leave nothing behind on failure.
* ImageFolder turns every image mode into RGB, skips non-images and reports broken files.
* On the real CIFAR-10 (rebuilt from the shared copy when present): sizes, class balance and
  the channel means.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mini_iformer.data import cifar as D
from mini_iformer.data.base import DatasetError
from mini_iformer.data.cifar import CIFAR10, CIFAR100
from mini_iformer.data.cifar_pickle import load_pickle
from mini_iformer.data.image_folder import ImageFolder, imagenet_class_to_idx
from mini_iformer.data.testing import write_cifar_batches

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT.parent / "shared" / "data" / "cifar10" / "build_batches.py"
C10 = "cifar-10-batches-py"
C10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def _pattern(n: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8 images in which every value tells its image, row, column, channel."""
    i, h, w, c = np.meshgrid(np.arange(n), np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    return ((i * 11 + h * 7 + w * 3 + c * 85) % 256).astype(np.uint8)


def _write(root: Path, n: int = 60, test_size: int = 12, **kw) -> tuple[np.ndarray, np.ndarray]:
    images = _pattern(n)
    labels = np.arange(n) % 10
    write_cifar_batches(root, images, labels, test_size=test_size, **kw)
    return images, labels


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _patch_md5(monkeypatch, root: Path, archive: Path | None = None) -> None:
    """Make the checksum tables describe the generated files."""
    monkeypatch.setattr(D, "CIFAR10_MD5", {f: _md5(root / C10 / f) for f in C10_FILES})
    if archive is not None:
        monkeypatch.setattr(D, "CIFAR10_ARCHIVE_MD5", _md5(archive))


# --- the official layout ----------------------------------------------------------------------


def test_official_layout_round_trip(tmp_path):
    images, labels = _write(tmp_path)
    folder = tmp_path / C10
    assert sorted(os.listdir(folder)) == sorted(C10_FILES)
    # The file holds each image as its R plane, then G, then B, each row by row (the official
    # layout), independently of how the reader undoes it.
    raw = (folder / "data_batch_1").read_bytes()
    assert images[0].transpose(2, 0, 1).tobytes() in raw
    assert raw.startswith(b"\x80\x02") and b"U\x04data" in raw and b"U\x06labels" in raw

    train, test = CIFAR10(tmp_path, verify=False), CIFAR10(tmp_path, train=False, verify=False)
    assert (len(train), len(test)) == (48, 12)
    assert train.data.shape == (48, 32, 32, 3) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.data, images[:48])
    np.testing.assert_array_equal(test.data, images[48:])
    assert train.targets.dtype == np.int64
    np.testing.assert_array_equal(train.targets, labels[:48])
    np.testing.assert_array_equal(test.targets, labels[48:])
    assert train.classes == list(D.CIFAR10_CLASSES) and train.class_to_idx["truck"] == 9

    image, label = train[5]
    assert isinstance(image, np.ndarray) and isinstance(label, int) and label == 5
    assert image[0, 0, 0] == (5 * 11) % 256                       # image 5, top-left, red
    assert image[2, 1, 0] == (5 * 11 + 2 * 7 + 3) % 256           # row 2, column 1
    assert image[0, 0, 2] == (5 * 11 + 2 * 85) % 256              # blue
    image[:] = 0                                                  # a copy: the dataset is intact
    np.testing.assert_array_equal(train.get(5)[0], images[5])
    np.testing.assert_array_equal(test[-1][0], images[-1])
    with pytest.raises(IndexError):
        train.get(48)


def test_batches_split_the_training_set_and_keep_the_order(tmp_path):
    images, labels = _write(tmp_path, n=23, test_size=3, batches=3)
    folder = tmp_path / C10
    assert sorted(os.listdir(folder)) == ["batches.meta", "data_batch_1", "data_batch_2",
                                          "data_batch_3", "test_batch"]
    batch = load_pickle(folder / "data_batch_2")
    assert batch["data"].shape == (7, 3072) and batch["batch_label"] == b"training batch 2 of 3"
    # The default layout has five training batches; three are missing here.
    with pytest.raises(DatasetError, match="data_batch_4"):
        CIFAR10(tmp_path, verify=False)


def test_tar_gz_is_extracted_then_loaded(tmp_path, monkeypatch):
    images, labels = _write(tmp_path / "src", archive=True)
    archive = tmp_path / "src" / "cifar-10-python.tar.gz"
    _patch_md5(monkeypatch, tmp_path / "src", archive)
    root = tmp_path / "data"
    root.mkdir()
    (root / archive.name).write_bytes(archive.read_bytes())
    train = CIFAR10(root)                                         # verify=True: patched table
    np.testing.assert_array_equal(train.data, images[:48])
    assert sorted(os.listdir(root)) == [C10, archive.name]        # no temporary folder left
    assert sorted(os.listdir(root / C10)) == sorted(C10_FILES)
    np.testing.assert_array_equal(CIFAR10(root, train=False).targets, labels[48:])


def test_a_damaged_archive_is_not_extracted(tmp_path, monkeypatch):
    path = write_cifar_batches(tmp_path, _pattern(12), np.arange(12) % 10, archive=True,
                               keep_folder=False)
    assert path.name == "cifar-10-python.tar.gz" and not (tmp_path / C10).exists()
    with pytest.raises(DatasetError) as err:                      # not the official md5
        CIFAR10(tmp_path)
    assert "cifar-10-python.tar.gz" in str(err.value) and "verify=False" in str(err.value)
    assert not (tmp_path / C10).exists()
    path.write_bytes(path.read_bytes()[:300])                     # truncated
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        CIFAR10(tmp_path, verify=False)
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_cifar100_fine_labels_and_names(tmp_path):
    images = _pattern(250)
    labels = (np.arange(250) * 7) % 100
    names = [f"fine_{i}" for i in range(100)]
    write_cifar_batches(tmp_path, images, labels, name="cifar-100-python", meta=names, test_size=50)
    assert sorted(os.listdir(tmp_path / "cifar-100-python")) == ["meta", "test", "train"]
    assert "coarse_labels" in load_pickle(tmp_path / "cifar-100-python" / "train")
    train = CIFAR100(tmp_path, verify=False)
    test = CIFAR100(tmp_path, train=False, verify=False)
    assert train.classes == names and (len(train), len(test)) == (200, 50)
    np.testing.assert_array_equal(train.targets, labels[:200])
    np.testing.assert_array_equal(test.targets, labels[200:])
    np.testing.assert_array_equal(test.data, images[200:])
    with pytest.raises(DatasetError, match="no CIFAR-10 data"):   # not CIFAR-10's folder
        CIFAR10(tmp_path, verify=False)
    with pytest.raises(DatasetError, match="md5"):
        CIFAR100(tmp_path)


def test_transform_gets_a_generator_and_seeded_gets_repeat(tmp_path):
    _write(tmp_path)
    seen = []

    def jitter(img, rng):
        seen.append(type(rng))
        return img.astype(np.float32) + rng.random(img.shape, dtype=np.float32)

    ds = CIFAR10(tmp_path, transform=jitter, verify=False)
    a, label = ds.get(3, np.random.default_rng([0, 1, 3]))
    b, _ = ds.get(3, np.random.default_rng([0, 1, 3]))
    c, _ = ds.get(3, np.random.default_rng([0, 2, 3]))
    d, _ = ds[3]                                                  # rng None: a fresh generator
    assert a.dtype == np.float32 and label == 3
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    assert seen == [np.random.Generator] * 4


# --- checksums and damaged files --------------------------------------------------------------


def msg_names(err, path: Path) -> bool:
    return str(err.value).startswith(f"{path}:")


def test_checksum_mismatch_names_file_and_way_out(tmp_path, monkeypatch):
    _write(tmp_path)
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path)
    msg = str(err.value)
    meta = tmp_path / C10 / "batches.meta"                        # checked first
    assert msg.startswith(f"{meta}:") and D.CIFAR10_MD5["batches.meta"] in msg and _md5(meta) in msg
    assert "verify=False" in msg and "--no-verify" in msg and len(msg.splitlines()) == 1
    assert len(CIFAR10(tmp_path, verify=False)) == 48

    _patch_md5(monkeypatch, tmp_path)
    assert len(CIFAR10(tmp_path)) == 48 and len(CIFAR10(tmp_path, train=False)) == 12
    # One flipped pixel: still a readable pickle, caught by the checksum.
    path = tmp_path / C10 / "data_batch_1"
    raw = bytearray(path.read_bytes())
    raw[-5000] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path)
    assert msg_names(err, path) and D.CIFAR10_MD5["data_batch_1"] in str(err.value)
    assert _md5(path) in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "missing", "empty", "not a dict",
                                    "label count", "label range", "data shape"])
def test_damaged_batches_are_reported_by_name(tmp_path, damage):
    _write(tmp_path)
    path = tmp_path / C10 / "data_batch_3"
    raw = path.read_bytes()
    batch = load_pickle(path)
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "corrupt":
        path.write_bytes(b"\x00\x13garbage" + raw[9:])
    elif damage == "missing":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not a dict":
        path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    else:
        if damage == "label count":
            batch["labels"] = batch["labels"][:-1]
        elif damage == "label range":
            batch["labels"][0] = 10
        else:
            batch["data"] = batch["data"][:, :3000]
        path.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path, verify=False)
    msg = str(err.value)
    assert str(path) in msg and len(msg.splitlines()) == 1
    assert len(CIFAR10(tmp_path, train=False, verify=False)) == 12    # the test split is fine


class _Evil:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("where", ["batch", "meta"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, where):
    _write(tmp_path)
    canary = tmp_path / "canary"
    path = tmp_path / C10 / ("data_batch_1" if where == "batch" else "batches.meta")
    batch = load_pickle(path)
    batch["labels" if where == "batch" else "label_names"] = _Evil(f"touch {canary}")
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path, verify=False)
    assert msg_names(err, path) and "system" in str(err.value)
    assert not canary.exists()


def test_only_plain_numeric_arrays_are_rebuilt(tmp_path):
    path = tmp_path / "batch"
    # A genuine array pickle, but of Python objects: its dtype is refused.
    path.write_bytes(pickle.dumps({"data": np.array([1, "x"], dtype=object)}, protocol=4))
    with pytest.raises(DatasetError, match="not a plain numeric type"):
        load_pickle(path)
    path.write_bytes(pickle.dumps({"data": np.arange(6, dtype=np.float32).reshape(2, 3)},
                                  protocol=3))
    np.testing.assert_array_equal(load_pickle(path)["data"],
                                  np.arange(6, dtype=np.float32).reshape(2, 3))
    # The array state claims more bytes than it holds.
    raw = pickle.dumps({"data": np.zeros((2, 4), np.uint8)}, protocol=3)
    path.write_bytes(raw.replace(b"K\x02K\x04\x86", b"K\x03K\x04\x86"))
    with pytest.raises(DatasetError, match="needs 12 bytes"):
        load_pickle(path)


def test_missing_root_and_missing_meta(tmp_path):
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path / "nowhere", verify=False)
    msg = str(err.value)
    assert "nowhere" in msg and "cifar-10-python.tar.gz" in msg and "download" in msg
    assert len(msg.splitlines()) == 1 and not (tmp_path / "nowhere").exists()
    _write(tmp_path)
    (tmp_path / C10 / "batches.meta").unlink()
    with pytest.raises(DatasetError, match="batches.meta"):
        CIFAR10(tmp_path, verify=False)
    with pytest.raises(DatasetError, match="batches.meta: file missing"):
        CIFAR10(tmp_path)


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("bad", ["../evil", "cifar-10-batches-py/../../evil", "/tmp/evil",
                                 "symlink", "outside"])
def test_tar_members_outside_the_folder_are_refused(tmp_path, bad):
    root = tmp_path / "data"
    root.mkdir()
    good = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    if bad == "symlink":
        evil = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/passwd"
        members = [(good, b"x"), (evil, None)]
    else:
        name = "evil" if bad == "outside" else bad
        members = [(good, b"x"), (tarfile.TarInfo(name), b"gotcha")]
    _tar_with(root / "cifar-10-python.tar.gz", members)
    with pytest.raises(DatasetError) as err:
        CIFAR10(root, verify=False)
    msg = str(err.value)
    assert "cifar-10-python.tar.gz" in msg and ("refusing" in msg or "outside" in msg)
    assert sorted(os.listdir(root)) == ["cifar-10-python.tar.gz"]   # nothing extracted
    assert not (tmp_path / "evil").exists()


# --- download ----------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A generated archive served from a file:// URL, and the md5 table patched to match it."""
    server = tmp_path / "server"
    images, labels = _write(server, archive=True)
    archive = server / "cifar-10-python.tar.gz"
    _patch_md5(monkeypatch, server, archive)
    monkeypatch.setattr(D, "CIFAR10_URL", archive.as_uri())
    return images, labels


def test_download_fetches_checks_and_extracts(tmp_path, served, monkeypatch):
    images, labels = served
    root = tmp_path / "fresh" / "data"                            # created on demand
    with pytest.raises(DatasetError, match="no CIFAR-10 data"):
        CIFAR10(root)                                             # download is off by default
    train = CIFAR10(root, download=True)
    np.testing.assert_array_equal(train.data, images[:48])
    assert sorted(os.listdir(root)) == [C10, "cifar-10-python.tar.gz"]
    # Present now: no second download (the URL is gone).
    monkeypatch.setattr(D, "CIFAR10_URL", (tmp_path / "gone.tar.gz").as_uri())
    np.testing.assert_array_equal(CIFAR10(root, train=False, download=True).targets, labels[48:])


def test_download_with_a_wrong_checksum_leaves_nothing(tmp_path, served, monkeypatch):
    monkeypatch.setattr(D, "CIFAR10_ARCHIVE_MD5", "0" * 32)
    root = tmp_path / "data"
    with pytest.raises(DatasetError) as err:
        CIFAR10(root, download=True, verify=False)                 # a download is always checked
    msg = str(err.value)
    assert "md5" in msg and "0" * 32 in msg and D.CIFAR10_URL in msg
    assert os.listdir(root) == []


def test_unreachable_url_gives_a_clear_message(tmp_path, monkeypatch):
    url = (tmp_path / "no-such-server" / "cifar-10-python.tar.gz").as_uri()
    monkeypatch.setattr(D, "CIFAR10_URL", url)
    with pytest.raises(DatasetError) as err:
        CIFAR10(tmp_path / "data", download=True)
    msg = str(err.value)
    assert msg.startswith("cannot download") and url in msg and "--data-dir" in msg
    assert C10 in msg and "cifar-10-python.tar.gz" in msg and len(msg.splitlines()) == 1
    assert os.listdir(tmp_path / "data") == []


def test_an_interrupted_download_leaves_no_partial_file(tmp_path, served, monkeypatch):
    real_urlopen = urllib.request.urlopen

    class Interrupted:
        def __init__(self, response):
            self.response, self.headers, self.calls = response, response.headers, 0

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return self.response.read(100)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.response.close()

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: Interrupted(real_urlopen(url)))
    root = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        CIFAR10(root, download=True)
    assert os.listdir(root) == []


# --- ImageFolder ----------------------------------------------------------------------------------


def _save(path: Path, image: Image.Image, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kw)


def test_image_folder_modes_become_rgb(tmp_path):
    a, b = tmp_path / "alpha", tmp_path / "beta"
    _save(a / "grey.png", Image.new("L", (5, 4), 100))
    palette = Image.new("P", (5, 4), 0)
    palette.putpalette([1, 2, 3] + [0] * 765)
    _save(a / "palette.GIF", palette)                             # upper-case extension counts
    _save(a / "rgba.png", Image.new("RGBA", (5, 4), (10, 20, 30, 0)))
    _save(b / "cmyk.tiff", Image.new("CMYK", (5, 4), (0, 255, 0, 0)))
    _save(b / "deep.png", Image.fromarray(np.full((4, 5), 200 * 257, np.uint16)))
    _save(b / "sub" / "rgb.jpg", Image.new("RGB", (5, 4), (0, 0, 0)))   # sub-folders count
    (b / "notes.txt").write_text("not an image")
    (b / "labels.csv").write_text("x")
    _save(b / ".hidden.png", Image.new("RGB", (5, 4)))
    with Image.open(b / "deep.png") as deep:
        assert deep.mode == "I;16"

    ds = ImageFolder(tmp_path)
    assert ds.classes == ["alpha", "beta"] and len(ds) == 6
    assert [Path(p).name for p, _ in ds.samples] == ["grey.png", "palette.GIF", "rgba.png",
                                                     "cmyk.tiff", "deep.png", "rgb.jpg"]
    np.testing.assert_array_equal(ds.targets, [0, 0, 0, 1, 1, 1])
    assert ds.targets.dtype == np.int64
    expected = [(100, 100, 100), (1, 2, 3), (10, 20, 30), (255, 0, 255), (200, 200, 200)]
    for i, colour in enumerate(expected):
        image, label = ds[i]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (5, 4)
        assert np.all(np.asarray(image) == colour), (i, np.asarray(image)[0, 0])
        assert label == ds.targets[i]


def test_image_folder_applies_exif_orientation_and_transform(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6                                              # rotate 90 degrees
    _save(tmp_path / "c" / "turned.jpg", Image.new("RGB", (8, 2), (200, 0, 0)), exif=exif)
    seen = []
    ds = ImageFolder(tmp_path, transform=lambda img, rng: seen.append(rng) or np.asarray(img))
    image, label = ds.get(0, np.random.default_rng(0))
    assert image.shape == (8, 2, 3) and label == 0
    assert isinstance(seen[0], np.random.Generator)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        ImageFolder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no class sub-folders"):
        ImageFolder(tmp_path)
    _save(tmp_path / "cat" / "a.png", Image.new("RGB", (3, 3)))
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError) as err:
        ImageFolder(tmp_path)
    assert str(tmp_path / "dog") in str(err.value) and "without images" in str(err.value)

    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = ImageFolder(tmp_path)
    assert ds[0][0].size == (3, 3)
    with pytest.raises(DatasetError) as err:
        ds[1]
    assert str(tmp_path / "dog" / "broken.png") in str(err.value)


def test_image_folder_class_to_idx(tmp_path):
    for name in ("a", "b", "c"):
        _save(tmp_path / name / "x.png", Image.new("RGB", (2, 2)))
    ds = ImageFolder(tmp_path, class_to_idx={"a": 7, "b": 2, "c": 0, "unused": 9})
    np.testing.assert_array_equal(ds.targets, [7, 2, 0])
    assert ds.num_classes == 10 and ds[0][1] == 7
    with pytest.raises(DatasetError) as err:
        ImageFolder(tmp_path, class_to_idx={"a": 0})
    assert "b, c" in str(err.value)
    with pytest.raises(ValueError, match="integers"):
        ImageFolder(tmp_path, class_to_idx={"a": 0, "b": -1, "c": 1})


def test_imagenet_class_to_idx(tmp_path):
    for name in ("n03888257", "n01440764"):
        _save(tmp_path / name / "x.JPEG", Image.new("RGB", (2, 2)))
    mapping = imagenet_class_to_idx(tmp_path)
    assert mapping == {"n01440764": 0, "n03888257": 701}
    ds = ImageFolder(tmp_path, class_to_idx=mapping)
    np.testing.assert_array_equal(ds.targets, [0, 701])
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetError, match="cats"):
        imagenet_class_to_idx(tmp_path)


# --- writing ------------------------------------------------------------------------------------


def test_write_cifar_batches_checks_its_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_cifar_batches(tmp_path, np.zeros((2, 32, 32, 3)), [0, 1])
    with pytest.raises(ValueError, match="one integer label per image"):
        write_cifar_batches(tmp_path, _pattern(2), [0])
    with pytest.raises(ValueError, match="labels must lie"):
        write_cifar_batches(tmp_path, _pattern(2), [0, 10])


# --- the real CIFAR-10 -------------------------------------------------------------------------


def test_real_cifar10(tmp_path):
    """The whole CIFAR-10, rebuilt in the official format from the shared copy."""
    if not BUILD_SCRIPT.is_file():
        pytest.skip(f"the shared CIFAR-10 copy is absent ({BUILD_SCRIPT} does not exist)")
    subprocess.run([sys.executable, str(BUILD_SCRIPT), str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    train = CIFAR10(tmp_path, verify=False)
    test = CIFAR10(tmp_path, train=False, verify=False)
    assert train.data.shape == (50000, 32, 32, 3) and test.data.shape == (10000, 32, 32, 3)
    assert train.data.dtype == np.uint8 and test.data.dtype == np.uint8
    assert train.classes == list(D.CIFAR10_CLASSES)
    np.testing.assert_array_equal(np.bincount(train.targets, minlength=10), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(test.targets, minlength=10), [1000] * 10)
    means = train.data.reshape(-1, 3).mean(axis=0) / 255.0
    np.testing.assert_allclose(means, [0.4913, 0.4821, 0.4465], atol=0.01)
    # The meta file is the official one, byte for byte.
    assert _md5(tmp_path / C10 / "batches.meta") == D.CIFAR10_MD5["batches.meta"]
