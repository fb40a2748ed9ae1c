"""Where the time goes: time spent in every operation's forward and backward.

::

    from mini_iformer import profiler

    with profiler.profile() as prof:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    print(prof.table())                      # one row per operation (and conv2d path)
    prof.by_key()                            # {"conv2d:depthwise": {"forward": s, ...}, ...}

Inside the block, the autograd engine times every ``Function.forward`` and ``backward`` with
``time.perf_counter`` and hands the time to the profiler. Operations are keyed by their name,
plus, for convolutions, their kind (``conv2d:pointwise``, ``conv2d:depthwise``,
``conv2d:general``), whichever implementation computed them. :attr:`Profile.implementations`
counts the calls of each implementation (``"conv2d:depthwise-rows"``, ``"gelu:reference"``...).
Time outside operations (Python in modules, building the graph, the engine's bookkeeping, the
optimiser) is what the caller's own total minus :attr:`Profile.total` leaves.

On a GPU, kernels run asynchronously: the times are then those of *queuing* the work unless
the caller synchronises, so profile on the NumPy backend, or read GPU profiles with care.
Profiling costs two clock reads per operation; outside the block it costs nothing.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import autograd

__all__ = ["Profile", "profile", "key_of"]


def key_of(fn: Any) -> str:
    """An operation's profile key: its name, and its ``kind`` when it has one (conv2d)."""
    kind = getattr(fn, "kind", None)
    return f"{fn.name}:{kind}" if isinstance(kind, str) else str(fn.name)


@dataclass
class Profile:
    """Seconds and calls per (operation key, "forward"/"backward")."""

    seconds: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: forward calls per "op:implementation", for operations with several implementations
    implementations: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, fn: Any, phase: str, seconds: float) -> None:
        key = (key_of(fn), phase)
        self.seconds[key] += seconds
        self.calls[key] += 1
        impl = getattr(fn, "implementation", None)
        if phase == "forward" and impl is not None:
            self.implementations[f"{fn.name}:{impl.name}"] += 1

    @property
    def total(self) -> float:
        """Seconds inside operations, forward and backward."""
        return sum(self.seconds.values())

    def by_key(self) -> dict[str, dict[str, float]]:
        """{key: {"forward": s, "backward": s, "calls": n}}, slowest first."""
        out: dict[str, dict[str, float]] = {}
        for (key, phase), s in self.seconds.items():
            row = out.setdefault(key, {"forward": 0.0, "backward": 0.0, "calls": 0})
            row[phase] += s
            if phase == "forward":
                row["calls"] += self.calls[(key, phase)]
        return dict(sorted(out.items(), key=lambda kv: -(kv[1]["forward"] + kv[1]["backward"])))

    def table(self, top: int | None = None) -> str:
        """A text table: per key, calls, forward and backward milliseconds, share of the total."""
        rows = list(self.by_key().items())[:top]
        total = self.total or 1.0
        lines = [f"{'operation':<28} {'calls':>6} {'fwd ms':>9} {'bwd ms':>9} {'share':>6}"]
        for key, r in rows:
            both = r["forward"] + r["backward"]
            lines.append(
                f"{key:<28} {int(r['calls']):>6} {1e3 * r['forward']:>9.2f} "
                f"{1e3 * r['backward']:>9.2f} {100 * both / total:>5.1f}%"
            )
        lines.append(
            f"{'total':<28} {'':>6} "
            f"{1e3 * sum(r['forward'] for _, r in self.by_key().items()):>9.2f} "
            f"{1e3 * sum(r['backward'] for _, r in self.by_key().items()):>9.2f}"
        )
        return "\n".join(lines)


@contextlib.contextmanager
def profile() -> Iterator[Profile]:
    """Time every operation run inside the block (see the module docstring). Not reentrant:
    profiles do not nest."""
    if autograd._profiler is not None:
        raise RuntimeError("profiler.profile(): a profile is already running")
    prof = Profile()
    autograd._profiler = prof.record
    try:
        yield prof
    finally:
        autograd._profiler = None
