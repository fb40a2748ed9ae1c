"""The optimiser base class: parameter groups, per-parameter state, ``step`` and the state dict.

:class:`Optimizer` holds what every optimiser shares; :class:`~mini_iformer.optim.SGD` and
:class:`~mini_iformer.optim.AdamW` add their update rule. Both follow ``torch.optim`` exactly
(the default single-tensor code path), so that a model trained here and one trained with
PyTorch from the same weights and gradients stay together.

All arithmetic is plain array code on the module that owns each parameter's array (NumPy or
CuPy), done in the parameter's own dtype: float32 parameters and their moments stay float32.
Updates write into ``p.data`` with in-place operations, so a step allocates at most two
scratch arrays the size of the parameter being updated.

Parameters may be given as one list, or as *parameter groups*, dicts holding their own
``"params"`` and any hyper-parameters that differ from the optimiser's defaults::

    opt = AdamW([{"params": no_decay, "weight_decay": 0.0},
                 {"params": decay}], lr=1e-3, weight_decay=0.05)

:func:`~mini_iformer.optim.param_groups_weight_decay` builds exactly these two groups for a
model, and :func:`~mini_iformer.optim.clip_grad_norm_` rescales gradients before a step.

An optimiser's :meth:`Optimizer.state_dict` has PyTorch's layout with plain values (host NumPy
arrays, ints, floats, lists, dicts), so it can be written to an ``.npz``/JSON checkpoint and
read back with :meth:`Optimizer.load_state_dict`. The hyper-parameter checks shared by the
optimisers (``check_lr``, ``check_weight_decay``, ``real``) live here too, with
``xp_of``, the array module of a parameter.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["Optimizer", "check_lr", "check_weight_decay", "real", "xp_of"]


def xp_of(array: Any) -> Any:
    """The array module (numpy or cupy) that owns ``array``."""
    return backend.module_of(backend.array_backend(array) or "numpy")


def _plain(value: Any) -> Any:
    """A hyper-parameter as a plain serialisable value (tuples become lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def real(value: Any, what: str) -> float:
    """``value`` as a Python float; TypeError for anything that is not a real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {value!r}")
    return float(value)


def _describe(p: Tensor) -> str:
    return f"Tensor of shape {p.shape}"


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``step`` and the
    state dict.

    Parameters
    ----------
    params : iterable of Tensors, or iterable of dicts
        The tensors to optimise (e.g. ``model.parameters()``), or parameter groups: dicts with
        a ``"params"`` entry (a tensor or an iterable of tensors) and optional
        hyper-parameters overriding ``defaults`` for that group.
    defaults : dict
        The hyper-parameters of every group that does not set its own.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group: ``"params"`` (a list of tensors) and every hyper-parameter. The
        values may be changed between steps (a learning-rate schedule writes ``"lr"``).
    state : dict
        Per-parameter state keyed by the parameter object itself (arrays and step counts);
        a parameter has an entry only once a step has updated it.

    Subclasses define ``_check_group`` (validate and normalise one group's hyper-parameters),
    ``_update`` (update one parameter from its gradient array) and the names of their
    per-parameter state (``_state_arrays``: arrays of the parameter's shape, ``_state_ints``:
    counters).
    """

    _state_arrays: tuple[str, ...] = ()
    _state_ints: tuple[str, ...] = ()

    def __init__(self, params: Any, defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        name = type(self).__name__
        if isinstance(params, (Tensor, Mapping)) or not isinstance(params, Iterable):
            raise TypeError(
                f"{name}: params must be an iterable of Tensors (e.g. model.parameters()) or of "
                f"parameter-group dicts, got {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{name} got an empty parameter list")
        if all(isinstance(g, Mapping) for g in groups):
            pass
        elif any(isinstance(g, Mapping) for g in groups):
            raise TypeError(f"{name}: params mixes Tensors and parameter-group dicts; use one kind")
        else:
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        if not any(g["params"] for g in self.param_groups):
            raise ValueError(f"{name} got an empty parameter list (every group is empty)")

    # -- groups -------------------------------------------------------------------------------
    def _check_group(self, group: dict[str, Any]) -> dict[str, Any]:
        """Validate one group's hyper-parameters; return them normalised (Python floats)."""
        return group

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters (a dict with ``"params"`` and optional hyper-parameters).

        Raises ``TypeError`` for entries that are not tensors or not floating point,
        ``ValueError`` for non-leaf tensors and for a parameter that is already in this or
        another group, and the subclass's errors for invalid hyper-parameters.
        """
        name = type(self).__name__
        if not isinstance(param_group, Mapping):
            raise TypeError(
                f"{name}: a parameter group must be a dict, got {type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: a group's params must be an ordered sequence, not a set "
                "(its order would change between runs)"
            )
        elif not isinstance(params, Iterable) or isinstance(params, (str, bytes, Mapping)):
            raise TypeError(
                f"{name}: a group's params must be an iterable of Tensors, got "
                f"{type(params).__name__}"
            )
        params = list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        in_group: set[int] = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name} can only optimise Tensors (Parameters), but entry {i} "
                    f"of group {len(self.param_groups)} is a {type(p).__name__}"
                )
            if p.dtype.kind != "f":
                raise TypeError(
                    f"{name} can only optimise floating-point tensors, but entry {i} "
                    f"of group {len(self.param_groups)} has dtype {p.dtype}"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{name} can't optimise a non-leaf tensor (entry {i} of group "
                    f"{len(self.param_groups)}); use .detach() and "
                    ".requires_grad_() to make a leaf"
                )
            if id(p) in in_group:
                raise ValueError(
                    f"{name}: entry {i} of group {len(self.param_groups)} "
                    f"({_describe(p)}) appears twice in that group"
                )
            if id(p) in seen:
                raise ValueError(
                    f"{name}: entry {i} of group {len(self.param_groups)} "
                    f"({_describe(p)}) is already in another parameter group; "
                    "a parameter may be in only one group"
                )
            in_group.add(id(p))
        group = {k: v for k, v in param_group.items() if k != "params"}
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group = self._check_group(group)
        group["params"] = params
        self.param_groups.append(group)

    # -- gradients and steps ------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``p.grad = None``)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place; those whose ``.grad`` is None
        are skipped (their values and state are left alone)."""
        name = type(self).__name__
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data if isinstance(p.grad, Tensor) else p.grad
                backend.common_backend([p.data, grad], f"{name}.step")
                if tuple(grad.shape) != p.shape:
                    raise ValueError(
                        f"{name}.step: a gradient has shape {tuple(grad.shape)} "
                        f"but its parameter has shape {p.shape}"
                    )
                if grad.dtype != p.dtype:
                    grad = grad.astype(p.dtype)
                self._update(p, grad, group)

    def _update(self, p: Tensor, grad: Any, group: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- state dict ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as plain values, in PyTorch's layout::

            {"state": {index: {name: numpy array or int}},
             "param_groups": [{hyper-parameter: value, ..., "params": [indices]}]}

        Parameters are numbered 0, 1, ... through the groups in order; ``state`` has entries
        only for parameters that have been updated. Arrays are host NumPy copies, tuples
        (``betas``) are lists, so the result can be stored in an ``.npz``/JSON checkpoint.
        """
        state: dict[int, dict[str, Any]] = {}
        groups = []
        index = 0
        for group in self.param_groups:
            saved = {k: _plain(v) for k, v in group.items() if k != "params"}
            saved["params"] = list(range(index, index + len(group["params"])))
            for p in group["params"]:
                entry = self.state.get(p)
                if entry is not None:
                    state[index] = {
                        k: (
                            np.array(backend.to_numpy(v), copy=True)
                            if backend.is_array(v)
                            else _plain(v)
                        )
                        for k, v in entry.items()
                    }
                index += 1
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` into this optimiser.

        The saved parameters are matched to this optimiser's by position, group by group. The
        number of groups, the number of parameters in each, the names of each parameter's
        state and every state array's shape are checked first, and the hyper-parameters
        validated; any difference raises one ``ValueError`` naming it, and nothing is changed.
        Arrays are copied onto each parameter's backend, in its dtype. The saved
        hyper-parameters (``lr``, ...) replace the current ones. Index keys may be ints or
        strings of digits (as after a JSON round trip).
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or "param_groups" not in state_dict:
            raise ValueError(
                f"{name}.load_state_dict: expected a dict with 'state' and "
                f"'param_groups', got {type(state_dict).__name__}"
            )
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict.get("state", {})
        if not isinstance(saved_groups, (list, tuple)) or not all(
            isinstance(g, Mapping) and "params" in g for g in saved_groups
        ):
            raise ValueError(
                f"{name}.load_state_dict: 'param_groups' must be a list of dicts with 'params'"
            )
        if not isinstance(saved_state, Mapping):
            raise ValueError(
                f"{name}.load_state_dict: 'state' must be a dict, got {type(saved_state).__name__}"
            )
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter "
                f"groups but the optimiser has {len(self.param_groups)}; nothing was changed"
            )
        problems: list[str] = []
        index_of: dict[int, tuple[Tensor, int]] = {}
        new_groups = []
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            ids = list(saved["params"])
            if len(ids) != len(group["params"]):
                problems.append(
                    f"group {g} has {len(ids)} parameters in the state dict but "
                    f"{len(group['params'])} in the optimiser"
                )
                continue
            for i, p in zip(ids, group["params"]):
                if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                    problems.append(f"group {g}: parameter index {i!r} is not an integer")
                elif int(i) in index_of:
                    problems.append(f"parameter index {i} appears twice in 'param_groups'")
                else:
                    index_of[int(i)] = (p, g)
            hyper = {k: v for k, v in group.items() if k != "params"}
            for k, v in saved.items():
                if k == "params":
                    continue
                default = self.defaults.get(k)
                hyper[k] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
            try:
                hyper = self._check_group(hyper)
            except (TypeError, ValueError) as exc:
                problems.append(f"group {g}: {exc}")
            hyper["params"] = group["params"]
            new_groups.append(hyper)

        expected = set(self._state_arrays) | set(self._state_ints)
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, entry in saved_state.items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                problems.append(f"state key {key!r} is not a parameter index")
                continue
            if i not in index_of:
                problems.append(
                    f"the state of parameter {i} belongs to no parameter in 'param_groups'"
                )
                continue
            p, g = index_of[i]
            where = f"state of parameter {i} (group {g}, shape {p.shape})"
            if not isinstance(entry, Mapping):
                problems.append(f"{where} is a {type(entry).__name__}, not a dict")
                continue
            if set(entry) != expected:
                problems.append(
                    f"{where} has entries {sorted(map(str, entry))}, {name} "
                    f"expects {sorted(expected)}"
                )
                continue
            values: dict[str, Any] = {}
            for k in self._state_ints:
                v = entry[k]
                if backend.is_array(v) and v.ndim == 0:
                    v = v.item()
                if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                    problems.append(f"{where}: {k} must be a non-negative integer, got {v!r}")
                else:
                    values[k] = int(v)
            for k in self._state_arrays:
                v = entry[k]
                if isinstance(v, Tensor):
                    v = v.data
                if not backend.is_array(v):
                    problems.append(f"{where}: {k} is a {type(v).__name__}, not an array")
                elif tuple(v.shape) != p.shape:
                    problems.append(
                        f"{where}: {k} has shape {tuple(v.shape)} in the state "
                        f"dict but the parameter has shape {p.shape}"
                    )
                elif v.dtype.kind not in "biuf":
                    problems.append(f"{where}: {k} has non-numeric dtype {v.dtype}")
                else:
                    values[k] = v
            new_state[p] = values
        if problems:
            raise ValueError(
                f"{name}.load_state_dict failed, nothing was changed:\n  " + "\n  ".join(problems)
            )

        for p, values in new_state.items():
            xp = xp_of(p.data)
            target = backend.array_backend(p.data)
            for k in self._state_arrays:
                v = values[k]
                if backend.array_backend(v) != target:
                    v = backend.to_numpy(v)
                values[k] = xp.array(v, dtype=p.dtype, copy=True)
        self.param_groups[:] = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g} ({len(group['params'])} tensors)")
            for k in sorted(k for k in group if k != "params"):
                lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"


def check_lr(lr: Any) -> float:
    lr = real(lr, "lr")
    if not lr >= 0.0 or math.isinf(lr):
        raise ValueError(f"invalid learning rate lr={lr}: it must be a finite number >= 0")
    return lr


def check_weight_decay(weight_decay: Any) -> float:
    weight_decay = real(weight_decay, "weight_decay")
    if not weight_decay >= 0.0 or math.isinf(weight_decay):
        raise ValueError(f"invalid weight_decay={weight_decay}: it must be a finite number >= 0")
    return weight_decay
