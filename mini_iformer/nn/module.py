"""``Module``: the container that gives a network its parameters, buffers, children and state.

A module is a Python object whose attributes are of three kinds, found by their type when
they are assigned:

* a :class:`Parameter` (a tensor the optimiser trains) goes to ``_parameters``;
* a :class:`Module` (a child) goes to ``_modules``;
* a buffer (state that is saved but not trained, e.g. BatchNorm's running mean), declared
  once with :meth:`Module.register_buffer`, goes to ``_buffers``.

Everything else is a plain attribute. The dotted names that :meth:`Module.state_dict` gives
(``blocks1.0.attn.qkv.weight``) are the attribute paths, which is why a model whose attribute
names follow the authors' PyTorch code loads their checkpoints key for key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import backend
from ..autograd import Tensor

__all__ = ["Parameter", "Module", "Sequential", "ModuleList", "IncompatibleKeys"]


class Parameter(Tensor):
    """A tensor that is a trainable weight of a module (``requires_grad`` is on by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class HookHandle:
    """Returned by :meth:`Module.register_forward_hook`; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: dict, key: object) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` left out: keys missing from the file, and keys in
    the file the model does not have."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _as_array(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if backend.is_array(value):
        return value
    return np.asarray(value)


class Module:
    """Base class of every layer and model; subclasses define ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # -- registration -------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        params, modules, buffers = self._parameters, self._modules, self._buffers
        if isinstance(value, (Parameter, Module)):
            target = params if isinstance(value, Parameter) else modules
            for store in (params, modules, buffers, self.__dict__):
                if store is not target:  # a replaced entry keeps its place, as in PyTorch
                    store.pop(name, None)
            self._non_persistent.discard(name)
            target[name] = value
        elif name in buffers:
            buffers[name] = None if value is None else _buffer_tensor(value)
        elif name in params or name in modules:
            if value is not None:
                kind = "parameter" if name in params else "child module"
                raise TypeError(
                    f"cannot assign {type(value).__name__} to {kind} {name!r} of "
                    f"{type(self).__name__} (expected a "
                    f"{'Parameter' if name in params else 'Module'} or None)"
                )
            (params if name in params else modules)[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: parameters, buffers and children live in dicts.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """Declare state saved with the module but not trained. Non-persistent buffers are kept
        out of :meth:`state_dict`."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"register_buffer: invalid buffer name {name!r}")
        if name in self.__dict__ or name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        self._buffers[name] = None if value is None else _buffer_tensor(value)
        if not persistent:
            self._non_persistent.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (``None`` declares an absent optional one, e.g. a bias)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None")
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child under ``name`` (for names that are not identifiers, like ``"0"``)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._modules[name] = module

    # -- calling ------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            hook(self, args, out)
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward of this module (used by
        :func:`mini_iformer.summary` to see shapes); ``handle.remove()`` takes it off."""
        key = object()
        self._forward_hooks[key] = hook
        return HookHandle(self._forward_hooks, key)

    # -- traversal ----------------------------------------------------------------------------
    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and all below it, pre-order, with dotted names ("" for this one); a
        module reachable under several names is given once, under its first, unless
        ``remove_duplicate=False``."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{k}" if name else k, m)
                for k, m in module._modules.items()
                if m is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named(self, store: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = self.named_modules() if recurse else iter([("", self)])
        for prefix, module in modules:
            for name, t in getattr(module, store).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{prefix}.{name}" if prefix else name), t

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter once (a shared one under its first name), in registration order."""
        return self._named("_parameters", recurse)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse):
            yield b

    def num_parameters(self) -> int:
        """The number of trainable values (each shared parameter counted once)."""
        return sum(p.size for p in self.parameters())

    # -- modes and helpers --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout, drop path and batch statistics on) for this module and all
        below it; returns ``self``."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every child (recursively) and then on this module; returns ``self``."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def astype(self, dtype: Any) -> Module:
        """Convert every floating-point parameter and buffer in place to ``dtype`` (e.g.
        ``np.float64`` for gradient checks); integer buffers keep their type. Returns ``self``."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"astype: expected a floating-point dtype, got {dtype}")
        for m in self.modules():
            for t in (*m._parameters.values(), *m._buffers.values()):
                if t is not None and t.dtype.kind == "f":
                    t.data = t.data.astype(dtype)
                    if t.grad is not None:  # a gradient has its tensor's dtype
                        t.grad = Tensor._make(t.grad.data.astype(dtype))
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # -- state --------------------------------------------------------------------------------
    def _state_entries(self) -> Iterator[tuple[str, Module, str, Tensor]]:
        """(key, owner, attribute, tensor) for every entry of the state dict, in order. A shared
        child is listed under each of its names, as PyTorch saves it."""
        for prefix, module in self.named_modules(remove_duplicate=False):
            dot = f"{prefix}." if prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    yield dot + name, module, name, p
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    yield dot + name, module, name, b

    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, as tensors sharing their arrays
        (copy them before changing them in place)."""
        return OrderedDict((key, t.detach()) for key, _, _, t in self._state_entries())

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy values from ``state_dict`` (tensors or arrays, e.g. from
        :func:`mini_iformer.checkpoint.load`) into this module's parameters and buffers.

        All or nothing: every value is checked and converted before any is stored, so after a
        failed load the module is exactly as it was (the same arrays, the same values). The
        problems are reported together in one ``ValueError`` naming each key:

        * missing keys and unexpected keys (only with ``strict``; with ``strict=False`` they
          are returned as :class:`IncompatibleKeys` and the matching keys are loaded), with a
          hint when no key matches because all differ by one prefix (e.g. ``module.``);
        * a shape that differs from the model's, as ``key: shape (a, b) in the state dict,
          (c, d) in the model`` (also with ``strict=False``);
        * a value that is not an array of real numbers (a string, a complex array, an object),
          and a non-integral or non-finite float for an integer buffer (``num_batches_tracked``).

        Lists of more than :data:`_MAX_LISTED` keys are cut short, saying how many more there
        are. Values are converted to each parameter's dtype (float64 into float32 rounds) and
        to the backend the parameter lives on, and copied (the module never shares memory
        with ``state_dict``). Parameters keep their identity, so an optimiser holding them
        stays valid.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"load_state_dict: expected a mapping of names to arrays, got "
                f"{type(state_dict).__name__}"
            )
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"load_state_dict: strict must be True or False, got {strict!r}")
        entries = {key: (owner, name, t) for key, owner, name, t in self._state_entries()}
        missing = [k for k in entries if k not in state_dict]
        unexpected = [k for k in state_dict if k not in entries]
        problems = []
        new_values: list[tuple[Tensor, Any]] = []
        for key, (_, _, t) in entries.items():
            if key not in state_dict:
                continue
            try:
                value = _as_array(state_dict[key])
            except Exception as exc:  # noqa: BLE001 - any unconvertible object is reported
                problems.append(
                    f"{key}: not an array ({type(state_dict[key]).__name__}: "
                    f"{' '.join(str(exc).split())})"
                )
                continue
            if value.dtype.kind not in "biuf":
                problems.append(
                    f"{key}: dtype {value.dtype} is not a real numeric type "
                    f"(the model holds {t.dtype})"
                )
            elif tuple(value.shape) != t.shape:
                problems.append(
                    f"{key}: shape {tuple(value.shape)} in the state dict, {t.shape} in the model"
                )
            elif t.dtype.kind in "iu" and value.dtype.kind == "f" and not _whole(value):
                problems.append(
                    f"{key}: non-integral or non-finite values for the {t.dtype} buffer"
                )
            else:
                new_values.append((t, value))
        if len(problems) > _MAX_LISTED:
            problems[_MAX_LISTED:] = [
                f"... and {len(problems) - _MAX_LISTED} more keys with a wrong shape or value"
            ]
        if strict and (missing or unexpected):
            hint = _prefix_hint(missing, unexpected) if len(missing) == len(entries) else None
            problems[:0] = (
                ([f"missing keys: {_listing(missing)}"] if missing else [])
                + ([f"unexpected keys: {_listing(unexpected)}"] if unexpected else [])
                + ([hint] if hint else [])
            )
        if problems:
            raise ValueError(
                f"load_state_dict into {type(self).__name__} failed, nothing was changed:\n  "
                + "\n  ".join(problems)
            )
        # Convert everything first: a conversion that fails must leave the module untouched.
        converted = [(t, _converted_like(value, t)) for t, value in new_values]
        for t, array in converted:
            t.data = array
        return IncompatibleKeys(missing, [str(k) for k in unexpected])

    # -- printing -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown in this module's line of the repr."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


#: How many keys an error message of :meth:`Module.load_state_dict` lists per kind.
_MAX_LISTED = 20


def _listing(keys: list[Any]) -> str:
    """``keys`` comma-separated, cut after :data:`_MAX_LISTED` with the number left out."""
    text = ", ".join(str(k) for k in keys[:_MAX_LISTED])
    if len(keys) > _MAX_LISTED:
        text += f" (and {len(keys) - _MAX_LISTED} more; {len(keys)} in all)"
    return text


def _prefix_hint(missing: list[str], unexpected: list[Any]) -> str | None:
    """A hint when no key matches because the state dict's keys are all the model's with one
    prefix added (``module.`` from DataParallel) or removed."""
    if not missing or len(missing) != len(unexpected):
        return None
    extra = [str(k) for k in unexpected]
    for longer, shorter, verb in ((extra, missing, "remove"), (missing, extra, "add")):
        first = shorter[0]
        match = next((k for k in longer if k.endswith("." + first)), None)
        if match is None:
            continue
        prefix = match[: len(match) - len(first)]
        if sorted(longer) != sorted(prefix + k for k in shorter):
            continue
        if verb == "remove":
            return (
                f"hint: every key of the state dict is the model's with the prefix "
                f"{prefix!r} added; load {{k.removeprefix({prefix!r}): v for k, v in "
                "state.items()}"
            )
        return (
            f"hint: every key of the model is the state dict's with the prefix {prefix!r} "
            f"added; load {{{prefix!r} + k: v for k, v in state.items()}}"
        )
    return None


def _whole(value: Any) -> bool:
    """True when every element of a float array is a finite whole number."""
    xp = backend.module_of(backend.array_backend(value) or "numpy")
    return bool(xp.all(xp.isfinite(value)) and xp.all(value == xp.round(value)))


def _converted_like(value: Any, t: Tensor) -> Any:
    """A fresh array with ``value``'s contents, ``t``'s dtype and shape, on ``t``'s backend."""
    target = backend.array_backend(t.data) or "numpy"
    if target == "numpy":
        return np.array(backend.to_numpy(value), dtype=t.dtype, copy=True).reshape(t.shape)
    xp = backend.module_of(target)
    return xp.array(value, dtype=t.dtype, copy=True).reshape(t.shape)


def _buffer_tensor(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach() if value.requires_grad else value
    return Tensor(value) if not backend.is_array(value) else Tensor._make(backend.asarray(value))


class _Children(Module):
    """Children numbered "0", "1", ...: ``len``, indexing and iteration over them."""

    def __init__(self, modules: Any = ()) -> None:
        super().__init__()
        for m in modules:
            self.add_module(str(len(self._modules)), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Sequential(_Children):
    """Children called one after another; ``Sequential(a, b)`` names them "0", "1"."""

    def __init__(self, *modules: Module) -> None:
        super().__init__(modules)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_Children):
    """A list of children, registered under "0", "1", ... (no ``forward`` of its own)."""

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self
