"""Shared test set-up: hypothesis profiles and the backend fixture.

Hypothesis profiles (choose with the environment variable HYPOTHESIS_PROFILE):

* ``ci`` (default): bounded example counts so the whole suite runs in minutes on 2 cores, and
  derandomized: every run draws the same examples, so a CI result is reproducible.
* ``thorough``: many more examples per property, freshly drawn on every run, for a long hunt
  before a release (a failure it finds is saved and replayed by later runs).
* ``dev``: a handful of examples, for a quick edit-test loop.

Every test that takes the ``backend_name`` fixture runs on NumPy, on CuPy, and on the CuPy
stand-in (``standin_cupy.py``: the "cupy" backend on the CPU, with CuPy's rules about host and
device arrays). The CuPy run carries the ``gpu`` marker and is skipped, with the reason, where
CuPy or a GPU is missing; the stand-in runs everywhere.
"""

from __future__ import annotations

import os

import pytest
import standin_cupy
from hypothesis import HealthCheck, settings

import mini_iformer as mi
from mini_iformer import backend
from mini_iformer.ops import cuda_emulator

_COMMON = dict(
    deadline=None,
    # The backend fixture only selects a module-level setting; reusing it across examples is safe.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("ci", max_examples=100, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.register_profile("dev", max_examples=8, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _cupy_skip_reason() -> str | None:
    previous = backend.get_backend()
    try:
        backend.set_backend("cupy")
    except backend.BackendUnavailableError as exc:
        return f"CuPy backend unavailable: {exc}"
    finally:
        backend.set_backend(previous)
    return None


_CUPY_SKIP = None


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu), "standin"])
def backend_name(request: pytest.FixtureRequest):
    """Run the test with each backend selected; restore NumPy afterwards. "standin" runs the
    "cupy" backend on the CPU stand-in for CuPy (``standin_cupy.py``): device arrays of their
    own type that refuse host arrays, kernels on the CPU emulator. The test sees "cupy"."""
    global _CUPY_SKIP
    name = request.param
    if name == "standin":
        if not cuda_emulator.available():
            pytest.skip("the CuPy stand-in runs kernels on the CPU emulator, which needs g++")
        with standin_cupy.installed():
            yield "cupy"
        return
    if name == "cupy":
        if _CUPY_SKIP is None:
            _CUPY_SKIP = _cupy_skip_reason() or ""
        if _CUPY_SKIP:
            pytest.skip(_CUPY_SKIP)
    mi.set_backend(name)
    try:
        yield name
    finally:
        mi.set_backend("numpy")
