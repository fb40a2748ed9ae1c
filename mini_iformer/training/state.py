"""Training checkpoints: everything a resumed run needs, in one atomically written file.

A training checkpoint is one ``.npz`` (written by :func:`mini_iformer.checkpoint.save`, so an
interrupted write never damages the previous file) holding:

* ``model/<key>``: the model's state dict (``create_model(..., checkpoint=path)`` and
  :func:`mini_iformer.checkpoint.load_weights` take the model part of such a file);
* every array of the optimiser, schedule and loader states under ``state/...``;
* ``meta.json``: the rest of those states (numbers, strings, lists) as JSON, with each array
  replaced by a reference to its entry.

:func:`pack` and :func:`unpack` do the conversion between a nested structure of dicts, lists,
numbers and arrays and that flat form.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import backend, checkpoint
from ..autograd import Tensor

__all__ = ["pack", "unpack", "save_training_state", "load_training_state"]

_META = "meta.json"
_REF = "__array__"


def pack(tree: Any, prefix: str = "state") -> tuple[dict[str, np.ndarray], Any]:
    """Split ``tree`` into ``({entry name: array}, json-able tree with references)``."""
    arrays: dict[str, np.ndarray] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, Tensor):
            node = node.data
        if backend.is_array(node):
            arrays[path] = backend.to_numpy(node)
            return {_REF: path}
        if isinstance(node, np.generic):
            return node.item()
        if isinstance(node, Mapping):
            if _REF in node:
                raise ValueError(f"pack: the key {_REF!r} is reserved")
            return {str(k): walk(v, f"{path}/{k}") for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(node)]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"pack: cannot store {type(node).__name__} at {path}")

    return arrays, walk(tree, prefix)


def unpack(arrays: Mapping[str, np.ndarray], tree: Any) -> Any:
    """The inverse of :func:`pack` (lists stay lists; dict keys are strings)."""
    if isinstance(tree, dict):
        if set(tree) == {_REF}:
            return arrays[tree[_REF]]
        return {k: unpack(arrays, v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unpack(arrays, v) for v in tree]
    return tree


def save_training_state(
    path: str | os.PathLike, model_state_dict: Mapping[str, Any], state: Mapping[str, Any]
) -> None:
    """Write the model and the rest of the training ``state`` to ``path`` atomically."""
    arrays, meta = pack(dict(state))
    entries: dict[str, Any] = {f"model/{k}": v for k, v in model_state_dict.items()}
    entries.update(arrays)
    entries[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    checkpoint.save(entries, path)


def load_training_state(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(model state dict, training state)`` from a file written by
    :func:`save_training_state`; :class:`~mini_iformer.checkpoint.CheckpointError` if it is
    not one."""
    entries = checkpoint.load(path)
    if _META not in entries:
        raise checkpoint.CheckpointError(
            f"{os.fspath(path)}: not a training checkpoint (no {_META}); to start from these "
            "weights, use them as --checkpoint instead of --resume"
        )
    try:
        meta = json.loads(entries[_META].tobytes().decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise checkpoint.CheckpointError(f"{os.fspath(path)}: damaged {_META} ({exc})") from None
    model = {k[len("model/") :]: v for k, v in entries.items() if k.startswith("model/")}
    return model, unpack(entries, meta)
