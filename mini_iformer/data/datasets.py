"""Datasets: CIFAR-10/100 in the official python format, and folders of images.

Every dataset here follows one small protocol, the one :class:`~mini_iformer.data.loader.DataLoader`
expects:

* ``len(ds)``: the number of samples;
* ``ds.get(i, rng=None) -> (image, label)``: sample ``i``. When ``ds.transform`` is set the
  image is ``ds.transform(image, rng)`` (``rng`` a ``numpy.random.Generator``; with ``None`` a
  fresh ``np.random.default_rng()`` is passed), otherwise the raw image: an ``(H, W, 3)``
  uint8 NumPy array for CIFAR, an RGB ``PIL.Image.Image`` for :class:`ImageFolder`. The label
  is a Python ``int``. ``get`` changes nothing in the dataset, so threads may call it at once;
* ``ds[i]`` is ``ds.get(i)``;
* ``ds.targets``: the labels of all samples, an int64 array; ``ds.classes``: the class names.

CIFAR
-----
:class:`CIFAR10` and :class:`CIFAR100` read the official "python version" of the datasets from
``root``: the extracted folder (``cifar-10-batches-py/`` or ``cifar-100-python/``) if it is
there, otherwise the official archive beside it (``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz``), which is extracted safely first, otherwise, with
``download=True``, the archive fetched from the official address. Files are checked against
their published MD5 checksums unless ``verify=False`` (for a local re-export of the data, whose
bytes differ from the release). A download is always checked.

The batch files are Python 2 pickles. They are read from memory by a restricted pure-Python
unpickler (so that a corrupt length or memo index cannot make it allocate gigabytes) that
resolves no global name except the three that rebuild a NumPy array
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``), and even
those are replaced by stand-ins that only collect the array's shape, dtype (plain numbers
only) and bytes: a file that names anything else (``os.system``, say) is refused before
anything in it runs.

Anything wrong with the data on disk raises :class:`DatasetError`, a ``ValueError`` whose
one-line message names the file and the reason: a missing folder, file or batch; a checksum
that does not match; an empty, truncated, corrupt or unreadable file; a file that is not a
dict; a batch without its ``data`` or label entry, with ``data`` that is not an (N, 3072)
uint8 array, or with labels that are not integers, not one per image, or outside the classes.

Image folders
-------------
:class:`ImageFolder` reads the usual ``root/<class>/<image>`` layout (ImageNet's ``train/`` and
``val/`` as prepared for PyTorch): classes are the sorted sub-folder names, samples the image
files under each, and :func:`imagenet_class_to_idx` maps WordNet-id folder names to the
ImageNet-1k class indices so that a 1000-class head can be evaluated on any subset of classes.

Files are chosen by extension (:data:`IMG_EXTENSIONS`); other files and hidden ones are
skipped, and a class folder without images is an error. Each image is read when its sample is
asked for, by :func:`read_image`: every Pillow mode becomes 8-bit RGB in a documented way
(alpha dropped, 16-bit scaled by 1/257, float taken as [0, 1]), and a file that cannot be read
(empty, truncated, corrupt, not an image, unreadable, larger than
``PIL.Image.MAX_IMAGE_PIXELS``, the decompression-bomb guard) raises :class:`DatasetError`
naming it.

Writing CIFAR-format data
-------------------------
:func:`write_cifar_batches` writes images and labels in the official format (optionally as the
archive too): synthetic datasets for tests, or a re-export of your own images.

Example::

    from mini_iformer.data.datasets import CIFAR10, ImageFolder
    train = CIFAR10("data", train=True, download=True)
    image, label = train[0]                 # (32, 32, 3) uint8, int
    train.classes[label]                    # 'frog'
"""

from __future__ import annotations

import hashlib
import http.client
import io
import operator
import os
import pickle
import shutil
import stat
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mini_iformer import imagenet

__all__ = [
    "DatasetError",
    "CIFAR10",
    "CIFAR100",
    "ImageFolder",
    "IMG_EXTENSIONS",
    "imagenet_class_to_idx",
    "read_image",
    "to_rgb",
    "write_cifar_batches",
    "CIFAR10_URL",
    "CIFAR10_ARCHIVE_MD5",
    "CIFAR10_MD5",
    "CIFAR100_URL",
    "CIFAR100_ARCHIVE_MD5",
    "CIFAR100_MD5",
]

PathLike = Union[str, "os.PathLike[str]"]
Transform = Callable[[Any, np.random.Generator], Any]

# --- the published facts -------------------------------------------------------------------------
# Module-level so that they can be replaced (tests serve their own archive from a file:// URL).

#: Where the official CIFAR-10 python archive is downloaded from.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: MD5 of the official ``cifar-10-python.tar.gz``.
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
#: MD5 of each file of the official ``cifar-10-batches-py/`` folder.
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
#: Where the official CIFAR-100 python archive is downloaded from.
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
#: MD5 of the official ``cifar-100-python.tar.gz``.
CIFAR100_ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
#: MD5 of each file of the official ``cifar-100-python/`` folder.
CIFAR100_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}

#: The CIFAR-10 class names, in label order.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

#: File extensions :class:`ImageFolder` takes for images (compared case-insensitively).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff",
                  ".webp")

_CIFAR_SIDE = 32
_CIFAR_PIXELS = 3 * _CIFAR_SIDE * _CIFAR_SIDE  # 3072 bytes per image: the R, G and B planes
_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60


class DatasetError(ValueError):
    """The data on disk is missing, incomplete, corrupt or not what it claims to be.

    The message is one line naming the file or folder and what to do about it.
    """


# --- small helpers ---------------------------------------------------------------------------------


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_md5(path: Path, expected: str, what: str) -> None:
    """Raise :class:`DatasetError` when the MD5 of ``path`` is not ``expected`` or it is unreadable."""
    try:
        actual = _md5(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file to check its md5 "
                           f"({_os_reason(exc)})") from exc
    if actual != expected:
        raise DatasetError(
            f"{path}: md5 {actual} does not match the official {what} (expected {expected}); "
            f"the file is damaged or is not the official release: download it again, or, for a "
            f"local re-export whose checksums differ, pass verify=False (command line: --no-verify)"
        )


def _index(i: Any, n: int) -> int:
    """``i`` as an index into ``n`` samples (negative counts from the end)."""
    try:
        k = operator.index(i)
    except TypeError:
        raise TypeError(f"dataset indices must be integers, got {type(i).__name__}") from None
    if not -n <= k < n:
        raise IndexError(f"index {k} out of range for a dataset of {n} samples")
    return k + n if k < 0 else k


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Dataset:
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


# --- the restricted unpickler ------------------------------------------------------------------


class _NDArrayType:
    """Stands for ``numpy.ndarray`` inside a pickle; it is never instantiated."""


class _DtypeStub:
    """What ``numpy.dtype(code, align, copy)`` becomes: the type code and, later, byte order."""

    _CODES = frozenset(["b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"])

    def __init__(self, code: Any, align: Any = 0, copy: Any = 1):
        code = _text(code)
        if code not in self._CODES:
            raise pickle.UnpicklingError(f"array dtype {code!r} is not a plain numeric type")
        self.code = code
        self.order = "|"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError("malformed dtype state")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"malformed dtype byte order {order!r}")
        self.order = order

    def dtype(self) -> np.dtype:
        return np.dtype((self.order if self.order in "<>" else "") + self.code)


class _ArrayStub:
    """What ``_reconstruct(ndarray, ...)`` becomes; its state is checked and turned into an array."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("malformed array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DtypeStub):
            raise pickle.UnpicklingError("array state without a dtype")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
        if not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("array data is not a byte string")
        dt = dtype.dtype()
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dt.itemsize:
            raise pickle.UnpicklingError(
                f"array of shape {shape} needs {count * dt.itemsize} bytes, the file holds {len(raw)}"
            )
        flat = np.frombuffer(raw, dtype=dt, count=count)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if cls is not _NDArrayType:
        raise pickle.UnpicklingError("_reconstruct is only allowed for numpy.ndarray")
    return _ArrayStub()


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global that a CIFAR file never contains."""


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickles plain data plus NumPy arrays of numbers; any other global is refused.

    Built on the pure-Python unpickler, whose memo is a dict: the C one grows an array up to
    any index a memo opcode names, so a corrupt file naming index 10**9 would make it allocate
    and clear gigabytes. CIFAR files hold few opcodes, so the speed is the same.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        # The same function under its NumPy 2 module name, for files pickled by NumPy 2.
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NDArrayType,
        ("numpy", "dtype"): _DtypeStub,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            # Escaped: a corrupt file's "name" may hold line breaks or control characters.
            raise _ForbiddenGlobal(repr(f"{module}.{name}")[1:-1]) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("uses persistent ids, which a CIFAR batch never contains")


class _PickleStream(io.BytesIO):
    """The file's bytes, for the unpickler: a text line cut short is an error.

    The pure-Python unpickler would take a truncated line (say, the name of a global) for a
    whole one; the C unpickler, like this, calls it truncated.
    """

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if not line.endswith(b"\n"):
            raise pickle.UnpicklingError("pickle data was truncated")
        return line


def _resolve(obj: Any) -> Any:
    """Replace the array stand-ins in an unpickled structure by the arrays they describe."""
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise pickle.UnpicklingError("an array without its data")
        return obj.array
    if isinstance(obj, dict):
        return {_resolve(k): _resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    if isinstance(obj, (_DtypeStub, type)) or callable(obj):
        raise pickle.UnpicklingError(f"unexpected object {type(obj).__name__}")
    return obj


def load_pickle(path: PathLike, hint: str = "") -> dict[str, Any]:
    """Read one CIFAR batch or meta file with the restricted unpickler.

    Returns a dict with ``str`` keys (the files use Python 2 byte-string keys). A missing,
    unreadable, empty, truncated or corrupt file, one that is not a dict, or one that names a
    forbidden global, raises :class:`DatasetError` naming ``path`` and the reason; ``hint``
    (what to do) ends the message.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    raw = _read_bytes(path, "a CIFAR file", tail)
    if not raw:
        raise DatasetError(f"{path}: empty file (0 bytes), not a CIFAR file{tail}")
    try:
        # From memory: a corrupt length field cannot make the unpickler read past the file.
        obj = _resolve(_RestrictedUnpickler(_PickleStream(raw), encoding="bytes").load())
    except _ForbiddenGlobal as exc:
        raise DatasetError(
            f"{path}: refused to load, the file calls {exc} (a CIFAR file holds only plain data "
            f"and NumPy arrays, so this is not one and may be malicious){tail}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any failure of a corrupt pickle is reported alike
        raise DatasetError(
            f"{path}: not a readable CIFAR file, truncated or corrupt "
            f"({type(exc).__name__}: {_one_line(exc)}){tail}"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: holds a {type(obj).__name__}, not a CIFAR dict{tail}")
    return {_text(k): v for k, v in obj.items()}


def _read_bytes(path: Path, what: str, tail: str) -> bytes:
    """The bytes of ``path``; a file that cannot be read raises :class:`DatasetError`."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file missing{tail}") from exc
    except IsADirectoryError as exc:
        raise DatasetError(f"{path}: is a folder, not {what}{tail}") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({_os_reason(exc)}){tail}") from exc


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (Pillow and pickle messages may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _one_line(exc)


# --- safe extraction and download ----------------------------------------------------------------


def _safe_extract(archive: Path, root: Path, folder: str) -> None:
    """Extract ``archive`` (a .tar.gz holding ``folder/``) into ``root``, atomically.

    Every member must be a regular file or a folder, with a relative path without ``..`` that
    lies inside ``folder``; otherwise nothing is extracted. The files are written to a temporary
    folder inside ``root`` that is renamed into place at the end, so an interrupted extraction
    never leaves a half-filled ``root/folder``.
    """
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{folder}.", suffix=".extract"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = m.name.replace("\\", "/").split("/")
                if (not m.name or m.name.startswith(("/", "\\")) or os.path.isabs(m.name)
                        or ".." in parts or (len(m.name) > 1 and m.name[1] == ":")):
                    raise DatasetError(
                        f"{archive}: refusing to extract member {m.name!r} (absolute path or "
                        f"'..'); the archive is not the official release, delete it"
                    )
                if not (m.isfile() or m.isdir()):
                    raise DatasetError(
                        f"{archive}: refusing to extract member {m.name!r} (a link or special "
                        f"file); the archive is not the official release, delete it"
                    )
                parts = [p for p in parts if p not in ("", ".")]
                if not parts or parts[0] != folder:
                    raise DatasetError(
                        f"{archive}: member {m.name!r} lies outside {folder}/; the archive is "
                        f"not the official release, delete it"
                    )
            for m in members:
                target = tmp.joinpath(*[p for p in m.name.replace("\\", "/").split("/")
                                        if p not in ("", ".")])
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(m)
                if source is None:  # pragma: no cover - regular files always have data
                    raise DatasetError(f"{archive}: cannot read member {m.name!r}")
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
        extracted = tmp / folder
        if not extracted.is_dir():
            raise DatasetError(f"{archive}: holds no {folder}/ folder; delete the archive")
        try:
            os.rename(extracted, root / folder)
        except OSError:
            if not (root / folder).is_dir():  # another process may have finished first
                raise
    except DatasetError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(
            f"{archive}: cannot extract, the archive is truncated or corrupt ({exc}); delete it "
            f"and download it again"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(url: str, dest: Path, md5: str, folder: str) -> None:
    """Fetch ``url`` to ``dest`` through ``dest.part``, checking ``md5`` before the rename.

    The partial file is removed on any failure, Ctrl-C included, so a half-finished download
    is never taken for the archive.
    """
    from tqdm import tqdm

    part = dest.with_name(dest.name + ".part")
    advice = (f"download it yourself and pass --data-dir DIR (data_dir=DIR) where DIR holds "
              f"{folder}/ or {dest.name}")
    try:
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                digest = hashlib.md5()
                with open(part, "wb") as out, tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=f"downloading {dest.name}", leave=False,
                ) as bar:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
                    out.flush()
                    os.fsync(out.fileno())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DatasetError(f"cannot download {url} ({reason}); {advice}") from None
        actual = digest.hexdigest()
        if actual != md5:
            raise DatasetError(
                f"the download of {url} has md5 {actual}, expected {md5} (corrupted in transit "
                f"or changed on the server); try again, or {advice}"
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


# --- CIFAR ---------------------------------------------------------------------------------------


class _CifarSpec(NamedTuple):
    name: str
    folder: str
    archive: str
    url: str
    archive_md5: str
    md5: Mapping[str, str]
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int


def _cifar10_spec() -> _CifarSpec:
    # Read the module constants at call time, so that replacing them takes effect.
    return _CifarSpec(
        "CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz", CIFAR10_URL,
        CIFAR10_ARCHIVE_MD5, CIFAR10_MD5, tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",), "batches.meta", "labels", "label_names", 10,
    )


def _cifar100_spec() -> _CifarSpec:
    return _CifarSpec(
        "CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz", CIFAR100_URL,
        CIFAR100_ARCHIVE_MD5, CIFAR100_MD5, ("train",), ("test",), "meta", "fine_labels",
        "fine_label_names", 100,
    )


class _CIFAR(_Dataset):
    """CIFAR in the official python format; see :class:`CIFAR10`."""

    _spec: Callable[[], _CifarSpec]

    def __init__(self, root: PathLike, train: bool = True, transform: Transform | None = None,
                 download: bool = False, verify: bool = True):
        spec = type(self)._spec()
        self.root = Path(root)
        self.train = bool(train)
        self.transform = transform
        folder = self._prepare(spec, download, verify)
        redo = (f"delete {folder} to extract it again from {spec.archive}, or pass the folder of "
                f"a complete copy")
        files = spec.train_files if self.train else spec.test_files
        if verify:
            for name in (spec.meta_file, *files):
                path = folder / name
                if not path.exists():
                    raise DatasetError(f"{path}: file missing; {redo}")
                if not path.is_file():
                    raise DatasetError(f"{path}: not a file; {redo}")
                if name in spec.md5:
                    _check_md5(path, spec.md5[name], f"{spec.name} {name}")

        meta = load_pickle(folder / spec.meta_file, redo)
        names = meta.get(spec.names_key)
        if not isinstance(names, list) or not names:
            raise DatasetError(f"{folder / spec.meta_file}: no {spec.names_key!r} list; {redo}")
        self.classes = [_text(n) for n in names]
        self.class_to_idx = {n: i for i, n in enumerate(self.classes)}

        images, labels = [], []
        for name in files:
            x, y = self._read_batch(folder / name, spec.label_key, len(self.classes), redo)
            images.append(x)
            labels.append(y)
        data = np.concatenate(images) if len(images) > 1 else images[0]
        #: All images, (N, 32, 32, 3) uint8 in height-width-channel (RGB) order.
        self.data = np.ascontiguousarray(
            data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1))
        self.targets = np.concatenate(labels).astype(np.int64)

    def _prepare(self, spec: _CifarSpec, download: bool, verify: bool) -> Path:
        """The extracted folder, extracting or downloading the archive first when needed."""
        folder = self.root / spec.folder
        if folder.is_dir():
            return folder
        archive = self.root / spec.archive
        if not archive.is_file():
            if not download:
                raise DatasetError(
                    f"no {spec.name} data in {self.root}: expected {folder} or {archive}; put "
                    f"one of them there, or allow the download (download=True; command line: "
                    f"leave out --no-download)"
                )
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatasetError(f"{self.root}: cannot create the folder to download "
                                   f"{spec.name} into ({_os_reason(exc)})") from exc
            _download(spec.url, archive, spec.archive_md5, spec.folder)
        elif verify:
            _check_md5(archive, spec.archive_md5, f"{spec.name} archive")
        _safe_extract(archive, self.root, spec.folder)
        return folder

    @staticmethod
    def _read_batch(path: Path, label_key: str, num_classes: int,
                    redo: str) -> tuple[np.ndarray, np.ndarray]:
        """The images (N, 3072) uint8 and labels (N,) int64 of one batch file, checked."""
        batch = load_pickle(path, redo)
        for key in ("data", label_key):
            if key not in batch:
                keys = ", ".join(repr(k) for k in sorted(batch)) or "none"
                raise DatasetError(f"{path}: no {key!r} entry (keys: {keys}); {redo}")
        data = batch["data"]
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
            shape = getattr(data, "shape", type(data).__name__)
            raise DatasetError(f"{path}: 'data' is {shape}, expected an (N, {_CIFAR_PIXELS}) "
                               f"array; {redo}")
        if data.dtype != np.uint8:
            raise DatasetError(f"{path}: 'data' has dtype {data.dtype}, expected uint8; {redo}")
        labels = batch[label_key]
        if not isinstance(labels, (list, np.ndarray)) or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                for v in labels):
            raise DatasetError(f"{path}: {label_key!r} is not a list of integers; {redo}")
        if len(labels) != data.shape[0]:
            raise DatasetError(f"{path}: {len(labels)} labels for {data.shape[0]} images; {redo}")
        # Checked as Python integers, so that no value can overflow the conversion below.
        bad = [int(v) for v in labels if not 0 <= int(v) < num_classes]
        if bad:
            raise DatasetError(f"{path}: labels outside 0..{num_classes - 1} "
                               f"(min {min(bad)}, max {max(bad)}, {len(bad)} in all); {redo}")
        return data, np.asarray(labels, dtype=np.int64).reshape(-1)

    def _raw(self, i: int) -> np.ndarray:
        return self.data[i].copy()

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return (f"{type(self).__name__}(root={str(self.root)!r}, {split}, {len(self)} images, "
                f"{len(self.classes)} classes, transform={self.transform!r})")


class CIFAR10(_CIFAR):
    """CIFAR-10 (10 classes; 50,000 training and 10,000 test images of 32x32).

    ``root`` holds ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
    ``test_batch``, ``batches.meta``) or ``cifar-10-python.tar.gz``, which is then extracted
    into ``root``. With ``download=True`` and neither there, the archive is downloaded from
    :data:`CIFAR10_URL` first (with a progress bar, its MD5 checked before it is kept).

    ``train`` picks the split; ``transform(image, rng)`` is applied by :meth:`get`. With
    ``verify=True`` the archive and the files read are checked against :data:`CIFAR10_ARCHIVE_MD5`
    and :data:`CIFAR10_MD5`; pass ``verify=False`` for a local re-export whose checksums differ.

    Attributes: ``data`` (N, 32, 32, 3) uint8, ``targets`` (N,) int64, ``classes`` (the 10
    names from ``batches.meta``), ``class_to_idx``. Problems raise :class:`DatasetError`.
    """

    _spec = staticmethod(_cifar10_spec)


class CIFAR100(_CIFAR):
    """CIFAR-100 with its 100 fine labels; otherwise as :class:`CIFAR10`.

    ``root`` holds ``cifar-100-python/`` (``train``, ``test``, ``meta``) or
    ``cifar-100-python.tar.gz``; downloads come from :data:`CIFAR100_URL`. ``classes`` are the
    ``fine_label_names`` of ``meta``; checksums are :data:`CIFAR100_ARCHIVE_MD5` and
    :data:`CIFAR100_MD5`.
    """

    _spec = staticmethod(_cifar100_spec)


# --- image folders -------------------------------------------------------------------------------


class ImageFolder(_Dataset):
    """Images in ``root/<class folder>/...``, read with Pillow and returned as RGB PIL images.

    * ``classes``: the sorted names of the sub-folders of ``root`` (hidden ones, starting with
      ``.``, are ignored); ``class_to_idx`` maps each to its label.
    * samples: the files under each class folder (sub-folders included, links followed, a
      folder reached twice through links listed once) whose extension is in ``extensions``,
      compared case-insensitively, sorted by path. Other files (``.txt``, ``.csv``,
      ``Thumbs.db``, ``desktop.ini``) and hidden files and folders (``.DS_Store``,
      ``._x.jpg``, ``.git/``) are skipped. ``samples`` is the list of ``(path, label)``,
      ``targets`` the labels.
    * ``class_to_idx``: optional mapping from folder name to label, for labels that are not
      the folders' sorted order, e.g. :func:`imagenet_class_to_idx` to evaluate a 1000-class
      ImageNet head on a subset of its classes. Every class folder must be in it; names in
      the mapping without a folder are allowed (the subset case). ``num_classes`` is
      ``max(label) + 1``.

    Construction lists the files only; it raises :class:`DatasetError` for a ``root`` that is
    missing or a file, a ``root`` without class folders, a class folder without images (an
    empty class is taken for a mistake, not kept with 0 samples), a folder that cannot be
    listed, and a folder absent from ``class_to_idx``.

    :meth:`get` reads the file, applies its EXIF orientation and converts it to 8-bit RGB as
    described in :func:`read_image`; a file that cannot be read (empty, truncated, corrupt, not
    an image, not a regular file, unreadable, larger than ``PIL.Image.MAX_IMAGE_PIXELS``)
    raises :class:`DatasetError` naming its path, at that moment, for that sample only.
    """

    def __init__(self, root: PathLike, transform: Transform | None = None,
                 class_to_idx: Mapping[str, int] | None = None,
                 extensions: Iterable[str] = IMG_EXTENSIONS):
        self.root = Path(root)
        self.transform = transform
        self.extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower()
                                for e in extensions)
        if not self.extensions:
            raise ValueError("ImageFolder: extensions is empty")
        layout = "pass the folder that holds one sub-folder of images per class"
        if self.root.is_file():
            raise DatasetError(f"{self.root}: is a file, not a folder; {layout}")
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such folder; {layout}")
        self.classes = _class_folders(self.root)
        if not self.classes:
            raise DatasetError(f"{self.root}: holds no class sub-folders; expected "
                               f"{self.root}/<class>/<image files>")
        if class_to_idx is None:
            self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        else:
            self.class_to_idx = _check_mapping(self.root, self.classes, class_to_idx)
        self.num_classes = max(self.class_to_idx.values()) + 1

        self.samples: list[tuple[str, int]] = []
        for name in self.classes:
            files = _image_files(self.root / name, self.extensions)
            if not files:
                raise DatasetError(
                    f"{self.root / name}: class folder without images (extensions "
                    f"{', '.join(self.extensions)}); add images or remove the folder"
                )
            label = self.class_to_idx[name]
            self.samples.extend((path, label) for path in files)
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)

    def _raw(self, i: int) -> Image.Image:
        return read_image(self.samples[i][0])

    def __repr__(self) -> str:
        return (f"ImageFolder(root={str(self.root)!r}, {len(self)} images, "
                f"{len(self.classes)} classes, transform={self.transform!r})")


def _class_folders(root: Path) -> list[str]:
    try:
        with os.scandir(root) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise DatasetError(f"{root}: cannot list this folder ({_os_reason(exc)}); make it "
                           f"readable") from exc


def _image_files(folder: Path, extensions: tuple[str, ...]) -> list[str]:
    """The non-hidden files under ``folder`` whose name ends with one of ``extensions``, sorted.

    Links are followed; each real folder is listed once, under the first of its paths in
    sorted order, so a link back to a parent folder cannot make the walk endless.
    """
    found: list[str] = []
    visited: set[tuple[int, int]] = set()
    pending = [str(folder)]
    while pending:
        current = pending.pop()
        try:
            info = os.stat(current)
            if (info.st_dev, info.st_ino) in visited:
                continue
            visited.add((info.st_dev, info.st_ino))
            subfolders = []
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        subfolders.append(entry.path)
                    elif entry.name.lower().endswith(extensions):
                        found.append(entry.path)
            pending.extend(sorted(subfolders, reverse=True))  # visited in sorted order
        except OSError as exc:
            raise DatasetError(f"{current}: cannot list this folder ({_os_reason(exc)}); make "
                               f"it readable or remove it") from exc
    return sorted(found)


# --- reading one image ----------------------------------------------------------------------------

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
            raise DatasetError(_too_large(path, f"Pillow: {_one_line(exc)}")) from exc
        except UnidentifiedImageError as exc:
            raise DatasetError(f"{path}: not an image in a format Pillow reads, whatever its "
                               f"extension; {_REPLACE}") from exc
        except Exception as exc:  # noqa: BLE001 - a decoder fails in many ways on a bad file
            raise DatasetError(f"{path}: cannot decode the image, truncated or corrupt "
                               f"({type(exc).__name__}: {_one_line(exc)}); {_REPLACE}") from exc
    if upright.width == 0 or upright.height == 0:
        raise DatasetError(f"{path}: the image has no pixels ({upright.width}x{upright.height}); "
                           f"{_REPLACE}")
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
        raise DatasetError(f"{path}: no such file (moved or deleted since the dataset was "
                           f"listed, or a broken link)") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open the file ({_os_reason(exc)}); make it "
                           f"readable or delete it") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DatasetError(f"{path}: not a regular file (a folder, FIFO, socket or "
                               f"device); remove it from the dataset")
        if info.st_size == 0:
            raise DatasetError(f"{path}: empty file (0 bytes), e.g. an interrupted download "
                               f"or copy; {_REPLACE}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _too_large(path: str, detail: str) -> str:
    return (f"{path}: larger than the limit of {Image.MAX_IMAGE_PIXELS:,} pixels that guards "
            f"against decompression bombs ({detail}); if the image is genuine, raise the "
            f"limit: PIL.Image.MAX_IMAGE_PIXELS = <pixels> (None: no limit)")


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


def _check_mapping(root: Path, classes: Sequence[str], mapping: Mapping[str, int]) -> dict[str, int]:
    missing = [name for name in classes if name not in mapping]
    if missing:
        shown = ", ".join(missing[:20]) + (f", ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise DatasetError(f"{root}: class folders not in class_to_idx: {shown}; remove them or "
                           f"add them to the mapping")
    out = {}
    for name, label in mapping.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise ValueError(f"class_to_idx[{name!r}] = {label!r}: labels must be integers >= 0")
        out[str(name)] = int(label)
    return out


def imagenet_class_to_idx(root: PathLike) -> dict[str, int]:
    """Map the WordNet-id class folders of ``root`` to their ImageNet-1k class indices.

    ``root`` holds folders named like ``n01440764`` (as ImageNet's ``train/`` and ``val/``
    prepared for PyTorch); the result, e.g. ``{"n01440764": 0, "n03888257": 701}``, is meant
    for ``ImageFolder(root, class_to_idx=...)``. Folders that are not ImageNet-1k WordNet ids
    raise :class:`DatasetError` listing them.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; pass a folder of WordNet-id class folders")
    index = {wnid: i for i, wnid in enumerate(imagenet.wordnet_ids())}
    folders = _class_folders(root)
    unknown = [f for f in folders if f not in index]
    if unknown:
        shown = ", ".join(unknown[:20]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 20 else "")
        raise DatasetError(f"{root}: folders that are not ImageNet-1k WordNet ids: {shown}")
    return {f: index[f] for f in folders}


# --- writing the official format -----------------------------------------------------------------


def _p2(obj: Any) -> bytes:
    """``obj`` as the body of a protocol-2 pickle, in the style Python 2 wrote CIFAR.

    Supports dicts, lists, tuples, ``bytes``/``str`` (written as Python 2 byte strings),
    ints, bools, None and 2-D uint8 NumPy arrays (as ``numpy.core.multiarray._reconstruct``).
    """
    if obj is None:
        return b"N"
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, (int, np.integer)):
        v = int(obj)
        if 0 <= v < 256:
            return b"K" + bytes([v])
        if 0 <= v < 65536:
            return b"M" + struct.pack("<H", v)
        if -(2 ** 31) <= v < 2 ** 31:
            return b"J" + struct.pack("<i", v)
        raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw
    if isinstance(obj, str):
        obj = obj.encode("utf-8")
    if isinstance(obj, bytes):
        if len(obj) < 256:
            return b"U" + bytes([len(obj)]) + obj
        return b"T" + struct.pack("<i", len(obj)) + obj
    if isinstance(obj, dict):
        items = [_p2(k) + _p2(v) for k, v in obj.items()]
        return b"}" + (b"(" + b"".join(items) + b"u" if items else b"")
    if isinstance(obj, list):
        out = [b"]"]
        for k in range(0, len(obj), 1000):
            out.append(b"(" + b"".join(_p2(v) for v in obj[k:k + 1000]) + b"e")
        return b"".join(out)
    if isinstance(obj, tuple):
        return b"(" + b"".join(_p2(v) for v in obj) + b"t"
    if isinstance(obj, np.ndarray) and obj.dtype == np.uint8:
        dtype = (b"cnumpy\ndtype\n" + _p2((b"u1", 0, 1)) + b"R"
                 + _p2((3, b"|", None, None, None, -1, -1, 0)) + b"b")
        state = b"(" + _p2(1) + _p2(tuple(obj.shape)) + dtype + _p2(False) + _p2(obj.tobytes()) + b"t"
        return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _p2((0,))
                + _p2(b"b") + b"\x87R" + state + b"b")
    raise TypeError(f"cannot write a {type(obj).__name__} in a CIFAR pickle")


def _write_p2(path: Path, obj: Any) -> None:
    with open(path, "wb") as f:
        f.write(b"\x80\x02" + _p2(obj) + b".")


def write_cifar_batches(
    root: PathLike,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    name: str = "cifar-10-batches-py",
    batches: int = 5,
    meta: Sequence[str] | None = None,
    *,
    test_size: int | None = None,
    archive: bool = False,
    keep_folder: bool = True,
) -> Path:
    """Write ``images`` and ``labels`` as a CIFAR dataset in the official python format.

    ``images`` is (N, 32, 32, 3) uint8 (height, width, RGB), ``labels`` N class indices. The
    last ``test_size`` samples (default ``N // 6``, the official 10,000 of 60,000) form the test
    split, the others the training split.

    ``name`` is the folder written under ``root``. ``"cifar-100-python"`` gives the CIFAR-100
    layout (``train``, ``test`` and ``meta`` with ``fine_labels``/``fine_label_names``; the
    coarse labels are written as ``label // 5``, placeholders); any other name the CIFAR-10
    layout: ``data_batch_1`` .. ``data_batch_<batches>`` (the training split in ``batches``
    near-equal parts), ``test_batch`` and ``batches.meta`` (``label_names``). Each file is a
    protocol-2 pickle with Python 2 byte-string keys, ``b"data"`` a uint8 (n, 3072) array of
    the R, G and B planes, exactly as the release. ``meta`` gives the class names (default: the
    CIFAR-10 names, or ``class_000`` ... for CIFAR-100).

    With ``archive=True`` the folder is also packed as ``root/<archive>.tar.gz``
    (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``, else ``<name>.tar.gz``), and with
    ``keep_folder=False`` only the archive is left. Returns the folder, or the archive when the
    folder is not kept.
    """
    images = np.asarray(images)
    y = np.asarray(labels).reshape(-1)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must be (N, 32, 32, 3) uint8, got {images.dtype} {images.shape}")
    if y.shape[0] != images.shape[0] or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"need one integer label per image: {y.shape[0]} labels, "
                         f"{images.shape[0]} images")
    n = images.shape[0]
    test_size = n // 6 if test_size is None else int(test_size)
    if not 0 <= test_size <= n:
        raise ValueError(f"test_size {test_size} outside 0..{n}")
    cifar100 = name == "cifar-100-python"
    if meta is None:
        meta = [f"class_{i:03d}" for i in range(100)] if cifar100 else list(CIFAR10_CLASSES)
    names = [str(m) for m in meta]
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise ValueError(f"labels must lie in 0..{len(names) - 1}")
    if not cifar100 and batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")

    root = Path(root)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    planes = images.transpose(0, 3, 1, 2).reshape(n, _CIFAR_PIXELS)
    split = n - test_size

    def batch(label: str, idx: np.ndarray) -> dict[bytes, Any]:
        out: dict[bytes, Any] = {b"batch_label": label.encode()}
        if cifar100:
            out[b"fine_labels"] = [int(v) for v in y[idx]]
            out[b"coarse_labels"] = [int(v) // 5 for v in y[idx]]
        else:
            out[b"labels"] = [int(v) for v in y[idx]]
        out[b"data"] = np.ascontiguousarray(planes[idx])
        out[b"filenames"] = [f"image_{int(i):05d}.png".encode() for i in idx]
        return out

    train_idx, test_idx = np.arange(split), np.arange(split, n)
    if cifar100:
        _write_p2(folder / "train", batch("training batch 1 of 1", train_idx))
        _write_p2(folder / "test", batch("testing batch 1 of 1", test_idx))
        _write_p2(folder / "meta", {
            b"fine_label_names": [s.encode() for s in names],
            b"coarse_label_names": [f"superclass_{i:02d}".encode()
                                    for i in range((len(names) + 4) // 5)],
        })
    else:
        for b, part in enumerate(np.array_split(train_idx, batches), start=1):
            _write_p2(folder / f"data_batch_{b}", batch(f"training batch {b} of {batches}", part))
        _write_p2(folder / "test_batch", batch("testing batch 1 of 1", test_idx))
        _write_p2(folder / "batches.meta", {
            b"num_cases_per_batch": int(np.ceil(split / batches)) if split else 0,
            b"label_names": [s.encode() for s in names],
            b"num_vis": _CIFAR_PIXELS,
        })
    if not archive:
        return folder
    archive_name = {"cifar-10-batches-py": "cifar-10-python.tar.gz",
                    "cifar-100-python": "cifar-100-python.tar.gz"}.get(name, f"{name}.tar.gz")
    target = root / archive_name
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=name)
    target.write_bytes(buffer.getvalue())
    if keep_folder:
        return folder
    shutil.rmtree(folder)
    return target
