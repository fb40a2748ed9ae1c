"""The library's default random generator: weight initialisation, dropout, stochastic depth.

Every random draw in mini-iformer comes from one ``numpy.random.Generator`` (on the host, so
the same seed gives the same numbers on NumPy and on CuPy), either one passed explicitly or
this default. ``manual_seed(s)`` makes model creation and training reproducible;
``get_state``/``set_state`` save and restore the generator exactly, which is what a resumed
training run needs to draw the same masks as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["manual_seed", "default_generator", "get_state", "set_state"]

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Re-seed the default generator (a non-negative integer) and return it."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The generator used when a function is not given one."""
    return _generator


def get_state() -> dict[str, Any]:
    """The default generator's complete state (a plain dict, safe to store in a checkpoint)."""
    return dict(_generator.bit_generator.state)


def set_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_state`."""
    try:
        _generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"set_state: not a generator state from get_state(): {exc}") from None
