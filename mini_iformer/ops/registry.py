"""Every operation's implementations, and which one runs.

**The math in front, the speed beside it.** An operation has one *reference* implementation:
its forward and backward side by side, plain array expressions written to be read, with the
formula in the docstring. Some operations also have *fast forms*: the same operation computed
with a memory layout, blocking or a CUDA kernel that makes it faster in some cases. Each fast
form is an :class:`Implementation` with the same contract as the reference, says when it
applies, and is tested equal to the reference (``tests/test_implementations.py`` compares every
registered implementation with it, forward and every gradient, on the op's whole
specification).

The contract is that of :class:`~mini_iformer.autograd.Function` (and of PyTorch's
``autograd.Function``)::

    forward(ctx, *inputs, **params) -> output    # raw arrays in and out; saves on ctx what
                                                 # backward needs (ctx.needs_input_grad says
                                                 # which gradients will be asked for)
    backward(ctx, grad) -> one gradient per input (None where not needed)

``ctx`` is the graph node, a :class:`Dispatch` function. For an operation with a single
implementation, its :class:`Function` class's ``forward``/``backward`` is the reference.

**Which one runs.** For each call, :func:`choose` takes

1. the implementation forced by :func:`use` (``use(conv2d="im2col")``), which must support
   the call, else :class:`NotSupported` (a ``ValueError``);
2. the reference, inside ``use("reference")`` or when the environment variable
   ``MINI_IFORMER_IMPL=reference`` was set when the package was imported;
3. otherwise the first fast form, in the order the op lists them, that ``supports`` the call
   and is ``preferred`` for it; the reference when none is, and for inputs with no elements
   (speed does not matter there, and the reference is the form written for every shape).

``supports`` says when a form computes the right answer (a 1x1 kernel, arrays on a GPU...);
``preferred`` says when the library picks it by itself (measured faster there).

**Adding an implementation.** Write ``forward(ctx, ...)`` and ``backward(ctx, g)`` with the
reference's signature, add an :class:`Implementation` to the op's list (see the end of
``conv.py``), and the test suite checks it against the reference and PyTorch by itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..autograd import OPS, Function

__all__ = [
    "Implementation",
    "Context",
    "Dispatch",
    "NotSupported",
    "register",
    "implementations",
    "use",
    "choose",
    "mode",
    "ENV_VAR",
]

#: Environment variable read when the package is imported: "reference" runs every operation
#: in its reference form for the whole process ("fast", or unset: the automatic choice).
ENV_VAR = "MINI_IFORMER_IMPL"


class NotSupported(ValueError):
    """A forced implementation was asked to compute a call it does not support."""


def _always(*inputs: Any, **params: Any) -> bool:
    return True


@dataclass(frozen=True)
class Implementation:
    """One way to compute an operation: a ``(forward, backward)`` pair and when it applies.

    ``supports(*inputs, **params)`` and ``preferred(*inputs, **params)`` receive the raw
    arrays and parameters that ``forward`` would.
    """

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any] | None
    supports: Callable[..., bool] = _always
    preferred: Callable[..., bool] = _always

    @property
    def summary(self) -> str:
        """The first paragraph of the forward's docstring."""
        doc = (self.forward.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())


class Context:
    """What an implementation's forward and backward receive as ``ctx`` when called by hand
    (in a lesson or a test, outside the autograd engine): ``needs_input_grad``, and room for
    whatever forward saves.

        impl = implementations("layer_norm")["reference"]
        ctx = Context(True, True, True)              # gradients wanted for x, weight, bias
        y = impl.forward(ctx, x, w, b, normalized_shape=(4,), eps=1e-5)
        dx, dw, db = impl.backward(ctx, g)
    """

    def __init__(self, *needs_input_grad: bool) -> None:
        self.needs_input_grad = tuple(bool(n) for n in needs_input_grad)


_REGISTRY: dict[str, dict[str, Implementation]] = {}


def register(op: str, impls: list[Implementation]) -> dict[str, Implementation]:
    """Declare the implementations of ``op``: the reference first, then the fast forms in the
    order :func:`choose` tries them."""
    if op in _REGISTRY:
        raise ValueError(f"implementations of {op!r} are registered twice")
    if not impls or impls[0].name != "reference":
        raise ValueError(f"{op}: the first implementation must be the reference")
    names = [i.name for i in impls]
    if len(set(names)) != len(names):
        raise ValueError(f"{op}: implementation names repeat: {names}")
    _REGISTRY[op] = {i.name: i for i in impls}
    return _REGISTRY[op]


def _single(op: str) -> Implementation:
    """The reference of an operation with one implementation: its Function's methods, or,
    for an operation composed of others, the operation itself (their backwards are its)."""
    found = [c for c in _function_classes() if c.name == op]
    if len(found) == 1:
        return Implementation("reference", found[0].forward, found[0].backward)
    return Implementation("reference", OPS[op], None)


def _function_classes() -> list[type[Function]]:
    out, todo = [], list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def implementations(op: str) -> dict[str, Implementation]:
    """The implementations of the operation registered as ``op``, by name; ``"reference"`` is
    always there (for an op with a single implementation it is the only one)."""
    if op in _REGISTRY:
        return dict(_REGISTRY[op])
    if op in OPS:
        return {"reference": _single(op)}
    raise ValueError(f"implementations: no operation named {op!r}; known: {', '.join(sorted(OPS))}")


# ---------------------------------------------------------------------------------------------
# Which one runs
# ---------------------------------------------------------------------------------------------
def _mode_from_environment() -> str:
    value = os.environ.get(ENV_VAR, "").strip().lower() or "fast"
    if value not in ("fast", "reference"):
        raise ValueError(
            f"environment variable {ENV_VAR}={value!r}: use 'reference' (every operation in "
            "its reference form) or 'fast' (the automatic choice, the default)"
        )
    return value


_mode = _mode_from_environment()
_forced: dict[str, str] = {}


def mode() -> str:
    """ "reference" or "fast": how operations without a forced implementation are computed."""
    return _mode


@contextlib.contextmanager
def use(mode: str | None = None, **forced: str) -> Iterator[None]:
    """Choose implementations inside a ``with`` block.

    ``use("reference")`` computes every operation in its reference form; ``use("fast")``
    restores the automatic choice (e.g. in a process started with
    ``MINI_IFORMER_IMPL=reference``); ``use(conv2d="im2col", gelu="reference")`` forces one
    implementation per named operation (a forced form that does not support a call raises
    ``ValueError``). Both may be combined; blocks nest.
    """
    global _mode
    if mode is not None and mode not in ("fast", "reference"):
        raise ValueError(f"use: mode must be 'reference' or 'fast', got {mode!r}")
    for op, name in forced.items():
        known = implementations(op)
        if name not in known:
            raise ValueError(
                f"use: {op} has no implementation {name!r}; it has: {', '.join(known)}"
            )
    previous_mode, previous_forced = _mode, dict(_forced)
    _mode = mode or _mode
    _forced.update(forced)
    try:
        yield
    finally:
        _mode = previous_mode
        _forced.clear()
        _forced.update(previous_forced)


def choose(op: str, inputs: tuple, params: dict[str, Any]) -> Implementation:
    """The implementation of ``op`` that computes this call (see the module docstring)."""
    impls = _REGISTRY[op]
    if op in _forced:
        impl = impls[_forced[op]]
        if not impl.supports(*inputs, **params):  # the op adds its name and the shapes
            raise NotSupported(
                f"the forced implementation {impl.name!r} does not support this call: "
                f"{impl.summary}"
            )
        return impl
    if _mode == "fast" and all(getattr(a, "size", 1) for a in inputs):
        for impl in list(impls.values())[1:]:
            if impl.supports(*inputs, **params) and impl.preferred(*inputs, **params):
                return impl
    return impls["reference"]


class Dispatch(Function):
    """A Function whose forward and backward are those of the implementation :func:`choose`
    picks for its inputs (kept as ``self.implementation``)."""

    def forward(self, *inputs: Any, **params: Any) -> Any:
        self.implementation = choose(self.name, inputs, params)
        return self.implementation.forward(self, *inputs, **params)

    def backward(self, grad: Any) -> Any:
        backward = self.implementation.backward
        if backward is None:  # a composed reference has no backward of its own
            raise RuntimeError(f"{self.name}: {self.implementation.name} has no backward")
        return backward(self, grad)
