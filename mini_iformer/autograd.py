"""The reverse-mode autograd engine: ``Tensor``, ``Function``, ``backward`` and ``no_grad``.

How it works, in four sentences. Every differentiable operation is a :class:`Function`
subclass with a ``forward`` and a ``backward`` on raw backend arrays, written side by side.
Calling it through :meth:`Function.apply` runs ``forward`` and, when gradients are wanted,
links the output :class:`Tensor` to the function object, which remembers its input tensors and
whatever ``forward`` saved for the backward pass. :meth:`Tensor.backward` orders those
functions so that each comes after every function that consumed its output (an iterative
depth-first search, so a graph of any depth works), then walks them once, handing each
``backward`` the gradient of its output and routing the gradients it returns to its inputs.
Gradients of leaf tensors (those created by the user with ``requires_grad=True``) are added
into ``.grad``; everything else is dropped as soon as it has been used. (That walk is
:mod:`mini_iformer.backprop`.)

Rules (the same as PyTorch's):

* **Accumulation.** ``leaf.grad`` is *added to* by every backward pass; set it to ``None``
  (or call an optimiser's ``zero_grad``) between steps.
* **Intermediate gradients** are not kept unless :meth:`Tensor.retain_grad` was called.
* **The graph is freed** by ``backward()``: saved arrays are released, and a second backward
  through the same graph raises ``RuntimeError`` unless the first used ``retain_graph=True``.
* **no_grad**: inside ``with no_grad():`` (or a function decorated with ``@no_grad()``)
  nothing is recorded and results do not require gradients.
* **No in-place operations, no version counters.** Tensors have no in-place operators:
  ``t += 1`` makes a new tensor and rebinds the name, so the graph keeps the old values and
  stays correct. Writing into ``t.data`` (what optimisers do, under ``no_grad``, after
  backward) is outside the engine: nothing records it, and a backward through a graph that
  saved that array *silently* uses the new values. Change ``.data`` only between a backward
  and the next forward, or change a copy.
* **Backends.** Every input of an operation, and the ``grad`` given to ``backward``, must
  live on one backend; otherwise :class:`~mini_iformer.backend.BackendMismatchError` (a
  ``TypeError``) names both.

dtype rules: tensors made from Python numbers or lists are float32 (``int64``/``bool`` for
integer and boolean data); tensors made from arrays keep the array's dtype. Operations follow
NumPy 2's promotion (NEP 50), which here agrees with PyTorch: a Python scalar never changes a
tensor's dtype (``float32_tensor * 2.0`` is float32), and float32 with float64 gives float64.
Gradients always have the dtype of the tensor they belong to.
"""

from __future__ import annotations

import numbers
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import backend, backprop
from .grad_mode import enable_grad, is_grad_enabled, no_grad

if TYPE_CHECKING:  # the methods mini_iformer.ops attaches, declared for type checkers
    from .tensor_methods import TensorMethods as _Declared
else:
    _Declared = object

__all__ = [
    "Tensor",
    "Function",
    "as_tensor",
    "OPS",
    "register_op",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "float32",
    "float64",
    "numbers_as_arrays",
]

float32 = np.float32
float64 = np.float64
DEFAULT_DTYPE = np.dtype(np.float32)

# ---------------------------------------------------------------------------------------------
# The op registry
# ---------------------------------------------------------------------------------------------
#: Every public differentiable operation, by name. The test suite reads it and fails for any
#: operation that has no specification, so no op can arrive untested.
OPS: dict[str, Callable[..., Any]] = {}

_Op = TypeVar("_Op", bound=Callable[..., Any])


def register_op(name: str) -> Callable[[_Op], _Op]:
    """Decorator: add a public operation to :data:`OPS` under ``name``."""

    def decorate(fn: _Op) -> _Op:
        if name in OPS:
            raise ValueError(f"operation {name!r} is registered twice")
        OPS[name] = fn
        return fn

    return decorate


# ---------------------------------------------------------------------------------------------
# Function: one node of the graph
# ---------------------------------------------------------------------------------------------
def _shape_str(x: Any) -> str:
    shape = getattr(x, "shape", None)
    return str(tuple(shape)) if shape is not None else type(x).__name__


def _with_context(exc: Exception, message: str) -> Exception:
    """An exception of ``exc``'s type carrying ``message``.

    Some library exceptions cannot be built from a message alone (NumPy's
    ``_UFuncOutputCastingError`` needs five arguments); for those, the nearest of
    ``TypeError``, ``ValueError`` and ``IndexError`` that ``exc`` is an instance of is used,
    so ``except TypeError`` still catches it and the message is never lost.
    """
    try:
        new = type(exc)(message)
        if str(new) == message:
            return new
    except Exception:  # noqa: BLE001 - any constructor that does not take one message
        pass
    for base in (TypeError, ValueError, IndexError):
        if isinstance(exc, base):
            return base(message)
    return RuntimeError(message)


#: When set (by :mod:`mini_iformer.profiler`), called as ``_profiler(fn, "forward" or
#: "backward", seconds)`` around every operation's forward and backward.
_profiler: Callable[[Any, str, float], None] | None = None


def numbers_as_arrays(numbers_: list[Any]) -> list[Any]:
    """Python numbers that meet in an operation with no tensor among them, as arrays of the
    dtype PyTorch would give their tensors: float32 if any is a float, else int64, else bool
    (so ``mi.add(1.5, 2)`` is float32, like ``torch.tensor(1.5) + torch.tensor(2)``)."""
    present = [n for n in numbers_ if n is not None]
    dtype: np.dtype
    if any(isinstance(n, float) for n in present):
        dtype = DEFAULT_DTYPE
    elif any(not isinstance(n, bool) for n in present):
        dtype = np.dtype(np.int64)
    else:
        dtype = np.dtype(bool)
    xp = backend.get_xp()  # a new tensor: on the current backend
    return [None if n is None else xp.asarray(n, dtype=dtype) for n in numbers_]


class Function:
    """One differentiable operation, and, once applied, one node of the graph.

    Subclasses implement, on raw backend arrays:

    ``forward(self, *inputs, **params) -> array``
        computes the output and stores on ``self`` only what ``backward`` needs;
        ``self.needs_input_grad`` (one bool per input) is already set, so nothing needs saving
        for inputs that get no gradient, nor at all under ``no_grad``.
    ``backward(self, grad) -> array | tuple``
        returns the gradient for each input (``None`` where none is needed; consult
        ``self.needs_input_grad``). A gradient may have the output's broadcast shape: the
        engine sums it back to the input's shape. ``grad`` must not be modified in place.
    """

    name = "function"
    # Set on the instance when the node is linked into a graph.
    inputs: tuple[Tensor | None, ...] = ()
    needs_input_grad: tuple[bool, ...] = ()
    retained: weakref.ref | None = None  # the output tensor, when it asked to retain_grad
    _freed = False

    def forward(self, *inputs: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **params: Any) -> Tensor:
        """Run the operation on ``inputs`` (tensors, arrays or Python numbers)."""
        arrays = []
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
            elif isinstance(x, (bool, numbers.Number, np.generic)) or x is None:
                arrays.append(x.item() if isinstance(x, np.generic) else x)
            elif backend.is_array(x):
                arrays.append(x)
            else:
                raise TypeError(
                    f"{cls.name}: unsupported input of type {type(x).__name__}; expected a "
                    "Tensor, an array or a Python number"
                )
        if len(arrays) > 1:
            backend.common_backend(arrays, cls.name)
        if arrays and not any(backend.is_array(a) for a in arrays):
            arrays = numbers_as_arrays(arrays)
        fn = cls()
        # Known before forward runs, so that forward can save only what backward will use.
        recording = is_grad_enabled()
        fn.needs_input_grad = tuple(
            recording and isinstance(x, Tensor) and x.requires_grad for x in inputs
        )
        try:
            if _profiler is None:
                out = fn.forward(*arrays, **params)
            else:
                start = time.perf_counter()
                out = fn.forward(*arrays, **params)
                _profiler(fn, "forward", time.perf_counter() - start)
        except (ValueError, IndexError, TypeError) as exc:
            shapes = ", ".join(_shape_str(a) for a in arrays)
            raise _with_context(exc, f"{cls.name}: {exc} (input shapes: {shapes})") from None
        requires_grad = any(fn.needs_input_grad)
        result = Tensor._make(out, requires_grad)
        if requires_grad:
            fn.inputs = tuple(x if isinstance(x, Tensor) else None for x in inputs)
            result._ctx = fn
        return result

    def release(self) -> None:
        """Drop everything saved for backward (called once backward has used it)."""
        self.__dict__.clear()
        self._freed = True


# ---------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------
def _as_dtype(dtype: Any) -> np.dtype | None:
    return None if dtype is None else np.dtype(dtype)


def _to_array(data: Any, dtype: Any = None) -> Any:
    """Convert user data to an array of the current backend, applying the dtype rules."""
    dtype = _as_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_array(data) or isinstance(data, np.generic):
        return backend.asarray(data, dtype)
    arr = np.asarray(data)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"cannot make a tensor from {type(data).__name__} data ({arr.dtype})")
    if dtype is None and arr.dtype.kind == "f":
        dtype = DEFAULT_DTYPE
    return backend.asarray(arr, dtype)


class Tensor(_Declared):
    """An array of the current backend, with an optional gradient and a link to its graph.

    Parameters
    ----------
    data : array, Python number, nested list, or Tensor
        The values. Arrays keep their dtype, Python floats become float32.
    requires_grad : bool
        Whether backward passes should compute ``.grad`` for this tensor (floating dtypes only).
    dtype : optional
        Convert to this dtype.
    """

    __slots__ = ("__weakref__", "_ctx", "_retains_grad", "data", "grad", "requires_grad")
    __array_ufunc__ = None  # ``ndarray + Tensor`` defers to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data = _to_array(data, dtype)
        self.grad: Tensor | None = None
        self._ctx: Function | None = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad is not False:
            self.requires_grad_(requires_grad)

    @classmethod
    def _make(cls, data: Any, requires_grad: bool = False) -> Tensor:
        """Wrap an array produced by an operation (no conversion, no copy)."""
        t = cls.__new__(cls)
        if not backend.is_array(data):  # NumPy returns scalars from 0-d computations
            data = np.asarray(data)  # only NumPy returns scalars (CuPy gives 0-d arrays)
        t.data = data
        t.grad = None
        t._ctx = None
        t._retains_grad = False
        t.requires_grad = requires_grad
        return t

    # -- properties ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded operation."""
        return self._ctx is None

    @property
    def backend(self) -> str:
        """The backend that holds this tensor's array ("numpy" or "cupy")."""
        return backend.array_backend(self.data) or "numpy"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype != DEFAULT_DTYPE:
            extras.append(f"dtype={self.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx.name}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    # -- conversion ---------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a host NumPy array (a copy when the tensor lives on the GPU)."""
        return backend.to_numpy(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(
                f"item(): only one-element tensors can be converted, got shape {self.shape}"
            )
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all() on .numpy()"
            )
        return bool(self.data.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__  # ``==`` is elementwise, tensors still hash by identity

    # -- graph --------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place on a leaf tensor; returns ``self``.

        Raises ``TypeError`` for a ``requires_grad`` that is not a bool and for an integer or
        boolean tensor (only floating-point and complex tensors have gradients).
        """
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(
                f"requires_grad must be True or False, got {type(requires_grad).__name__} "
                f"{requires_grad!r}"
            )
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require gradients (this one is {self.dtype}); "
                "convert first, e.g. tensor(data, dtype='float32', requires_grad=True)"
            )
        if not requires_grad and self._ctx is not None:
            raise RuntimeError(
                "requires_grad_(False) on a non-leaf tensor; use .detach() to cut it out"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """A new leaf tensor sharing this tensor's array, outside any graph."""
        return Tensor._make(self.data, False)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._ctx is not None and not self._retains_grad:
            self._retains_grad = True
            self._ctx.retained = weakref.ref(self)

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Compute gradients of this tensor with respect to every leaf that requires them.

        ``grad`` is the gradient of some final scalar with respect to this tensor; it may be
        omitted only when this tensor holds a single element (then it is 1). Gradients are
        *added* to the ``.grad`` of leaves. The graph is freed afterwards unless
        ``retain_graph=True``; a second backward through a freed graph raises
        ``RuntimeError`` naming ``retain_graph``.

        What ``grad`` may be: a Tensor or an array (of this tensor's backend) with exactly this
        tensor's shape and a floating-point dtype, cast to this tensor's dtype (a float64
        ``grad`` for a float32 tensor is rounded to float32); or Python numbers / nested lists,
        read in this tensor's dtype. Anything else raises before any gradient is computed:
        ``ValueError`` for a wrong shape, ``TypeError`` for an integer, boolean, complex (for a
        real tensor) or non-numeric ``grad`` and for a ``retain_graph`` that is not a bool,
        :class:`~mini_iformer.backend.BackendMismatchError` for an array of another backend,
        ``RuntimeError`` when this tensor does not require grad.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True, or it ran inside no_grad()"
            )
        if not isinstance(retain_graph, (bool, np.bool_)):
            raise TypeError(
                f"backward(): retain_graph must be True or False, got "
                f"{type(retain_graph).__name__} {retain_graph!r}"
            )
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-element output, but this "
                    f"tensor has shape {self.shape}; pass grad= of that shape, or reduce first "
                    "(e.g. loss.sum() or loss.mean())"
                )
            seed = backend.array_module(self.data).ones_like(self.data)
        else:
            seed = self._seed_from(grad)
        backprop.run_backward(self, seed, retain_graph, _profiler)

    def _seed_from(self, grad: Any) -> Any:
        """``backward``'s ``grad`` argument checked and made an array of this tensor's dtype."""
        if isinstance(grad, (bool, np.bool_)):
            raise TypeError(
                f"backward(): grad={grad!r} is not a gradient; backward's first argument is the "
                "gradient of the output (pass retain_graph= by keyword)"
            )
        if isinstance(grad, Tensor) or backend.is_array(grad):
            seed = grad.data if isinstance(grad, Tensor) else grad
            backend.common_backend([self.data, seed], "backward")
            allowed = "fc" if self.dtype.kind == "c" else "f"
            if seed.dtype.kind not in allowed:
                raise TypeError(
                    f"backward(): grad must have a floating-point dtype like the tensor "
                    f"({self.dtype}), got {seed.dtype}; convert it, e.g. grad.astype"
                    f"('{self.dtype}')"
                )
        else:
            try:
                host = np.asarray(grad)
                if host.dtype.kind not in "iuf" + ("c" if self.dtype.kind == "c" else ""):
                    raise TypeError(f"dtype {host.dtype}")
                seed = backend.asarray(host, self.dtype)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"backward(): grad must be a Tensor, an array or numbers of shape "
                    f"{self.shape}, got {type(grad).__name__} ({exc})"
                ) from None
        if tuple(seed.shape) != self.shape:
            raise ValueError(
                f"backward(): grad has shape {tuple(seed.shape)} but the tensor has "
                f"shape {self.shape}; the gradient must have exactly the tensor's shape"
            )
        if seed.dtype != self.dtype:
            seed = seed.astype(self.dtype)
        return seed

    # Operator overloads and methods (``__add__``, ``sum``, ``reshape``, ...) are attached by
    # ``mini_iformer.ops`` next to the operations themselves; ``tensor_methods`` lists them.


# ---------------------------------------------------------------------------------------------
# Conversion (the tensor factories, zeros, randn, ..., are in mini_iformer.factories)
# ---------------------------------------------------------------------------------------------
def as_tensor(data: Any) -> Tensor:
    """``data`` itself if it is a Tensor, else a new leaf tensor made from it (no gradient)."""
    return data if isinstance(data, Tensor) else Tensor(data)


def as_tensor_list(items: Iterable[Any], op: str) -> list[Tensor]:
    """Validate a sequence of tensors for ops like concatenate and stack."""
    items = list(items)
    if not items:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    return items
