"""Run folders: where ``train_cifar.py`` writes, and how two runs are kept apart.

* Without ``--out``, each new run gets a folder of its own, ``runs/train/exp``, then ``exp2``,
  ``exp3``, ...: the first free name, created with one ``mkdir`` (which fails if the name
  exists), so two runs started together never pick the same one. ``--resume`` without
  ``--out`` continues the highest-numbered ``exp*`` folder that holds a run.
* A folder *holds a run* when it has any of :data:`RUN_FILES` (or a temporary of one). A new
  run never writes into such a folder unless told to replace it (``--overwrite``).
* A run holds an exclusive ``fcntl.flock`` lock on ``.lock`` in its folder from before its
  first write until it ends; the file names its PID. The kernel drops the lock when the
  process dies, however it dies, so a lock file left behind by a killed run blocks no one:
  only a live lock does.

:func:`claim` does all of this and hands back a :class:`RunFolder`; every refusal is a
:class:`RunFolderError` whose message is one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_ROOT",
    "LOCK_NAME",
    "RUN_FILES",
    "RunFolder",
    "RunFolderError",
    "claim",
    "holds_run",
    "latest_run",
    "new_numbered_folder",
    "numbered_folders",
    "run_files",
]

#: Where runs go when no ``--out`` is given: one numbered folder per run under it.
DEFAULT_ROOT = Path("runs") / "train"
#: The files a run writes in its folder (each through a temporary beside it).
RUN_FILES = ("last.npz", "best.npz", "config.json", "metrics.csv", "curves.png")
#: The lock file; it does not make a folder hold a run.
LOCK_NAME = ".lock"

_NUMBERED = re.compile(r"exp(\d*)")


class RunFolderError(Exception):
    """A run folder that cannot be used as asked (exit code 2, one line, no traceback)."""


def _temporaries(folder: Path) -> list[Path]:
    """The temporaries a run writing ``folder`` creates: ``.<run file>.<random>.tmp``."""
    return [tmp for name in RUN_FILES for tmp in sorted(folder.glob(f".{name}.*.tmp"))]


def run_files(folder: Path) -> list[Path]:
    """The files of a run present in ``folder``: its run files, then their temporaries."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [folder / name for name in RUN_FILES if (folder / name).exists()] + _temporaries(folder)


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds (part of) a run: a run file or a temporary of one."""
    return bool(run_files(folder))


def numbered_folders(root: Path = DEFAULT_ROOT) -> list[tuple[int, Path]]:
    """``root``'s folders ``exp`` (number 1), ``exp2``, ``exp3``, ..., by number."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NUMBERED.fullmatch(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1) or 1), path))
    return sorted(found)


def latest_run(root: Path = DEFAULT_ROOT) -> Path | None:
    """The highest-numbered folder under ``root`` that holds a run, or None."""
    for _, path in reversed(numbered_folders(root)):
        if holds_run(path):
            return path
    return None


def new_numbered_folder(root: Path = DEFAULT_ROOT) -> Path:
    """Create and return the first free folder of ``root/exp``, ``root/exp2``, ...

    Each name is claimed by ``mkdir``, which fails when the name exists: of two processes
    racing for a name, exactly one gets it and the other moves on to the next.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"cannot create {root}: {exc.strerror or exc}") from exc
    n = 1
    while True:
        path = root / ("exp" if n == 1 else f"exp{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
        except OSError as exc:
            raise RunFolderError(f"cannot create {path}: {exc.strerror or exc}") from exc


# -- the lock ---------------------------------------------------------------------------------
def _holder(path: Path) -> int | None:
    """The PID a lock file names, if that process is alive (a run writes its PID there once it
    has checked the folder; a run refused after taking the lock writes nothing)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        if pid > 0 and _alive(pid):
            return pid
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _lock(folder: Path) -> int:
    """An open descriptor of ``folder/.lock`` holding an exclusive flock on it."""
    path = folder / LOCK_NAME
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunFolderError(
                f"cannot lock {folder}: cannot open {path}: {exc.strerror or exc}"
            ) from exc
        try:
            _flock_or_name_holder(fd, path, folder)
        except BaseException:
            os.close(fd)
            raise
        # A run that gives back a folder it created removes the lock file: a lock taken on a
        # file no longer at that path protects nothing, so take it again on the new file.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise RunFolderError(f"cannot lock {folder}: its lock file keeps being replaced")


def _flock_or_name_holder(fd: int, path: Path, folder: Path, wait: float = 1.0) -> None:
    """Take the lock, or raise naming its holder. A holder that has not written its PID yet
    is still checking the folder: within ``wait`` seconds it writes it, or gives up the lock."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = _holder(path)
            if pid is not None or time.monotonic() > deadline:
                who = f"PID {pid}" if pid is not None else "PID unknown"
                raise RunFolderError(
                    f"{folder} is in use by another run ({who}); wait for it "
                    "to end or stop it, or choose another --out"
                ) from None
            time.sleep(0.02)
        except OSError as exc:
            raise RunFolderError(
                f"cannot lock {path}: {exc.strerror or exc} (a file system without flock support?)"
            ) from exc


# -- claiming a folder ------------------------------------------------------------------------
@dataclass
class RunFolder:
    """A run folder locked by this process.

    ``checkpoint`` is the file the run resumes from (None: a new run); ``own`` says it is the
    folder's own ``last.npz`` (the run continues); ``replacing`` lists the files of another run
    that :meth:`prepare` deletes (``--overwrite``); ``note`` says how the folder was chosen.
    """

    path: Path
    checkpoint: Path | None = None
    own: bool = False
    created: bool = False
    replacing: list[Path] = field(default_factory=list)
    note: str = ""
    _fd: int | None = None

    def prepare(self) -> None:
        """Make the folder ready for the first write: delete the replaced run's files, and
        the temporaries a killed run left behind (its files themselves are intact: every
        write goes through a temporary and a rename)."""
        for path in [*self.replacing, *_temporaries(self.path)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.replacing = []

    def release(self) -> None:
        """Unlock; a folder this process created and wrote nothing into is removed again."""
        if self._fd is None:
            return
        if self.created and not holds_run(self.path):
            with contextlib.suppress(OSError):
                (self.path / LOCK_NAME).unlink()
            with contextlib.suppress(OSError):
                self.path.rmdir()
        os.close(self._fd)
        self._fd = None


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _names(paths: list[Path]) -> str:
    names = [p.name for p in paths]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


@contextlib.contextmanager
def claim(
    out: str | None, resume: str | None, overwrite: bool = False, root: Path = DEFAULT_ROOT
) -> Iterator[RunFolder]:
    """Choose, check and lock the folder of a run; unlock it when the block ends.

    ``out`` is ``--out`` (None: not given), ``resume`` is ``--resume`` (None: a new run, "":
    the folder's own ``last.npz``, else a checkpoint file or a run folder) and ``overwrite``
    is ``--overwrite``. Raises :class:`RunFolderError` when the folder is locked by a live
    run, holds another run, or holds nothing to resume.
    """
    if fcntl is None:
        raise RunFolderError(
            "run folders are locked with fcntl.flock, which this platform "
            "lacks: train_cifar.py needs a POSIX system (Linux, macOS)"
        )
    folder, checkpoint, own, note = _choose(out, resume, root)
    if own and overwrite:
        raise RunFolderError(
            f"--resume continues the run in {folder} and --overwrite replaces it: give one of them"
        )
    created = False
    if own:
        if not folder.is_dir():
            raise RunFolderError(f"--resume: no checkpoint at {checkpoint}")
    elif out is None:
        folder, created = new_numbered_folder(root), True
    else:
        created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"--out: cannot create {folder}: {exc.strerror or exc}") from exc
    run = RunFolder(folder, checkpoint, own, created, note=note)
    try:
        run._fd = _lock(folder)
    except RunFolderError:
        if created:  # give the new folder back
            with contextlib.suppress(OSError):
                (folder / LOCK_NAME).unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    try:
        _check(run, overwrite)
        with contextlib.suppress(OSError):  # the folder is ours: say whose
            os.ftruncate(run._fd, 0)
            os.pwrite(run._fd, f"{os.getpid()}\n".encode(), 0)
        yield run
    finally:
        run.release()


def _choose(out: str | None, resume: str | None, root: Path) -> tuple[Path, Path | None, bool, str]:
    """(folder, checkpoint to resume from, whether it is the folder's own, how it was chosen)."""
    if resume is None:
        return (Path(out) if out is not None else root), None, False, ""
    if resume == "":
        if out is not None:
            return Path(out), Path(out) / "last.npz", True, ""
        latest = latest_run(root)
        if latest is None:
            hint = (
                f"; {root} itself holds a run: continue it with --resume --out {root}"
                if holds_run(root)
                else ""
            )
            raise RunFolderError(
                f"--resume: no run to resume under {root} (no exp* folder "
                "there holds one): start a new run without --resume, or name "
                f"the folder with --out DIR{hint}"
            )
        return latest, latest / "last.npz", True, f" (the latest run under {root})"
    path = Path(resume)
    if path.is_dir():
        path = path / "last.npz"
    if out is not None:
        return Path(out), path, _same_file(path, Path(out) / "last.npz"), ""
    if path.name == "last.npz":  # a run's own checkpoint: continue in its folder
        return path.parent, path, True, ""
    return root, path, False, ""  # another file: a new numbered folder starts from it


def _check(run: RunFolder, overwrite: bool) -> None:
    """Refuse what the folder's contents do not allow (called with the lock held)."""
    folder = run.path
    if run.own:
        if run.checkpoint is not None and run.checkpoint.is_file():
            return
        if holds_run(folder):
            raise RunFolderError(
                f"--resume: no checkpoint at {run.checkpoint}: the run in {folder} was stopped "
                "before it saved one; start it afresh with --out "
                f"{folder} --overwrite (same options, without --resume)"
            )
        raise RunFolderError(
            f"--resume: no checkpoint at {run.checkpoint}: {folder} holds no "
            "run; start one there without --resume"
        )
    existing = run_files(folder)
    if not existing:
        return
    if not overwrite:
        if run.checkpoint is not None:
            raise RunFolderError(
                f"{folder} already holds a run ({_names(existing)}) and {run.checkpoint} is "
                f"not its last.npz: add --overwrite to replace that run, or choose another --out"
            )
        if not (folder / "last.npz").is_file():
            raise RunFolderError(
                f"{folder} already holds a run ({_names(existing)}), with no "
                "last.npz to resume: add --overwrite to replace it"
            )
        raise RunFolderError(
            f"{folder} already holds a run ({_names(existing)}): add --resume "
            "to continue it or --overwrite to replace it"
        )
    run.replacing = existing
