"""Reading a pickle without running it: the one restricted unpickler behind both file readers.

A pickle is a small program for a stack machine. Its GLOBAL and STACK_GLOBAL instructions
mean "import this name" and REDUCE means "call it with these arguments", so ``pickle.load``
runs whatever a file asks for (``os.system``, ``builtins.eval``). Two readers of this
package take pickles from strangers: the checkpoint reader (``data.pkl`` inside a
``torch.save`` file, :mod:`mini_iformer.checkpoint`) and the CIFAR reader (the batch files,
:mod:`mini_iformer.data.cifar_pickle`). Each declares the few names its files use, as a table
``{(module, name): stand-in}``, and calls :func:`load`, which

* walks the instructions once without running any (``pickletools`` only parses them): every
  GLOBAL is looked up, so a file naming anything outside the table is refused before a
  single object is built, and a damaged or hostile length field (a byte string of 2**60
  bytes) is caught before anything is allocated for it;
* then unpickles with :class:`RestrictedUnpickler`, whose ``find_class`` answers from the
  table and nothing else (also for STACK_GLOBAL, whose name the first pass cannot see).

Nothing is ever imported by name: a stand-in is the reader's own code (an array builder, an
inert bag of values), so a file can only build data.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RestrictedUnpickler", "load", "check_globals"]

#: What a reader allows: (module, name) -> what that name stands for when the file asks for it.
Allowed = Mapping[tuple[str, str], Any]
#: What a reader raises for a name it does not allow: refuse(module, name) -> the exception.
Refuse = Callable[[str, str], BaseException]


def check_globals(data: bytes, allowed: Allowed, refuse: Refuse) -> None:
    """Walk the instructions of ``data`` without running any; raise ``refuse(module, name)``
    for the first global not in ``allowed`` (``ValueError`` for a damaged instruction)."""
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            if (module, name) not in allowed:
                raise refuse(module, name)


class _Stream(io.BytesIO):
    """The pickle's bytes: a text line cut short is an error.

    The pure-Python unpickler would take a truncated line (say, the name of a global) for a
    whole one; the C unpickler, like this, calls it truncated.
    """

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if not line.endswith(b"\n"):
            raise pickle.UnpicklingError("pickle data was truncated")
        return line


def _no_persistent_ids(pid: Any) -> Any:
    raise pickle.UnpicklingError("the file uses persistent ids, which are not allowed here")


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that knows only the names in ``allowed``.

    Built on the pure-Python unpickler, whose memo is a dict: the C one grows an array up to
    any index a memo instruction names, so a corrupt file naming index 10**9 would make it
    allocate and clear gigabytes. The files read here hold few instructions (their bulk is
    in a handful of byte strings), so the speed is the same.
    """

    def __init__(
        self,
        data: bytes,
        allowed: Allowed,
        refuse: Refuse,
        *,
        persistent_load: Callable[[Any], Any] | None = None,
        encoding: str = "ASCII",
    ) -> None:
        super().__init__(_Stream(data), encoding=encoding)
        self.allowed, self.refuse = allowed, refuse
        self.persistent = persistent_load or _no_persistent_ids

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise self.refuse(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self.persistent(pid)


def load(
    data: bytes,
    allowed: Allowed,
    refuse: Refuse,
    *,
    persistent_load: Callable[[Any], Any] | None = None,
    encoding: str = "ASCII",
) -> Any:
    """The object pickled in ``data``, built only from plain data and the stand-ins of
    ``allowed``; a name outside it raises ``refuse(module, name)`` before anything is built.

    ``persistent_load(pid)`` resolves persistent ids (a checkpoint's storages); without it a
    persistent id is refused. ``encoding`` decodes Python 2 strings (``"bytes"`` keeps them
    as bytes). A damaged pickle raises whatever the parser or the unpickler raises
    (``ValueError``, ``pickle.UnpicklingError``, ``EOFError``, ...): the readers report it.
    """
    check_globals(data, allowed, refuse)
    return RestrictedUnpickler(
        data, allowed, refuse, persistent_load=persistent_load, encoding=encoding
    ).load()
