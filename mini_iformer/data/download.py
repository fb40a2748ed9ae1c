"""Fetching and unpacking dataset archives safely, and checking them against their MD5.

:func:`download_file` fetches a file through a ``.part`` file that is removed on any failure and
renamed into place only once its MD5 matches; :func:`safe_extract` extracts a ``.tar.gz``
atomically, refusing any member that is a link, a special file or a path outside its folder;
:func:`check_md5` compares a file with its published checksum. Every failure raises
:class:`~mini_iformer.data.base.DatasetError` saying what to do.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from .base import DatasetError, os_reason

__all__ = ["check_md5", "download_file", "safe_extract"]

_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: Path, expected: str, what: str) -> None:
    """Raise :class:`DatasetError` when the MD5 of ``path`` is not ``expected`` or the file
    is unreadable."""
    try:
        actual = _md5(path)
    except OSError as exc:
        raise DatasetError(
            f"{path}: cannot read the file to check its md5 ({os_reason(exc)})"
        ) from exc
    if actual != expected:
        raise DatasetError(
            f"{path}: md5 {actual} does not match the official {what} (expected {expected}); "
            f"the file is damaged or is not the official release: download it again, or, for a "
            f"local re-export whose checksums differ, pass verify=False (command line: --no-verify)"
        )


def safe_extract(archive: Path, root: Path, folder: str) -> None:
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
                if (
                    not m.name
                    or m.name.startswith(("/", "\\"))
                    or os.path.isabs(m.name)
                    or ".." in parts
                    or (len(m.name) > 1 and m.name[1] == ":")
                ):
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
                target = tmp.joinpath(
                    *[p for p in m.name.replace("\\", "/").split("/") if p not in ("", ".")]
                )
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


def download_file(url: str, dest: Path, md5: str, folder: str) -> None:
    """Fetch ``url`` to ``dest`` through ``dest.part``, checking ``md5`` before the rename.

    The partial file is removed on any failure, Ctrl-C included, so a half-finished download
    is never taken for the archive.
    """
    part = dest.with_name(dest.name + ".part")
    advice = (
        f"download it yourself and pass --data-dir DIR (data_dir=DIR) where DIR holds "
        f"{folder}/ or {dest.name}"
    )
    try:
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                digest = hashlib.md5()
                with (
                    open(part, "wb") as out,
                    tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=f"downloading {dest.name}",
                        leave=False,
                    ) as bar,
                ):
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
