"""Checks for the lessons' exercises: compare what the learner computed with the library.

Every exercise in ``lessons/`` ends with a check cell that calls :func:`check` (or
:func:`check_true`): it prints one line when the learner's result is right and raises
``AssertionError`` with what is wrong otherwise (the shapes, the dtype, or the largest
difference and where it is), so a learner sees at once which part of their code to look at.
:func:`rel_error` is CS231n's measure, for a learner who wants the number itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .autograd import Tensor

__all__ = ["check", "check_true", "rel_error", "as_array"]


def as_array(value: Any) -> np.ndarray:
    """A host NumPy array of ``value``: a Tensor's data, a CuPy or NumPy array, a number or a
    nested list (a PyTorch tensor: anything with ``.detach().numpy()``)."""
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor
        value = value.detach().numpy()
    return np.asarray(backend.to_numpy(value) if backend.is_array(value) else value)


def rel_error(got: Any, expected: Any) -> float:
    """max |got - expected| / max(|got| + |expected|, 1e-8), elementwise: about 1e-7 or less
    for float32 code that computes the same thing, about 1e-15 in float64."""
    a, b = as_array(got).astype(np.float64), as_array(expected).astype(np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def check(name: str, got: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Print ``name: OK`` and the largest difference when ``got`` equals ``expected`` to the
    tolerances (NumPy's ``allclose`` rule, NaN equal to NaN); raise ``AssertionError`` saying
    what differs."""
    if got is None:
        raise AssertionError(f"{name}: got None; did the function forget to return its result?")
    a, b = as_array(got), as_array(expected)
    if a.shape != b.shape:
        raise AssertionError(f"{name}: shape {a.shape}, expected {b.shape}")
    if a.dtype.kind in "fc" and b.dtype.kind in "fc" and a.dtype != b.dtype:
        raise AssertionError(f"{name}: dtype {a.dtype}, expected {b.dtype}")
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64)) if a.size else np.zeros(1)
    if not close.all():
        wrong = np.argwhere(~close)
        first = tuple(int(i) for i in wrong[0])
        raise AssertionError(
            f"{name}: {len(wrong)} of {a.size} values differ (largest difference "
            f"{np.nanmax(diff):.3g}); first at index {first}: got {a[first]!r}, "
            f"expected {b[first]!r}"
        )
    print(f"{name}: OK (largest difference {np.nanmax(diff, initial=0.0):.1e})")


def check_true(name: str, condition: bool, hint: str) -> None:
    """Print ``name: OK`` when ``condition`` holds; else raise ``AssertionError(hint)``."""
    if not condition:
        raise AssertionError(f"{name}: {hint}")
    print(f"{name}: OK")
