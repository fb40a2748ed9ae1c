"""The training loop: one step, one epoch, evaluation, and resumable state.

A run is a sequence of *steps* (one batch: forward, loss, backward, optimiser update,
schedule update). Everything that decides what the next step does is in the run's state:

* the model's parameters and BatchNorm statistics;
* the optimiser's moments and step counts, and the schedule's step;
* the loader's position (epoch and batches done; each sample's augmentation comes from a
  generator seeded by (seed, epoch, index), so it does not depend on when it is drawn);
* the library's random generator (drop path masks);
* the epoch's running sums (loss, correct predictions, images), so the epoch's metrics are
  the same whether or not it was interrupted.

:class:`RunState` gathers the last three; a checkpoint stores all of it, so a run killed at
any point and resumed from its last checkpoint repeats exactly the steps it lost and ends with
the same weights, bit for bit, as a run never interrupted.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..nn import Module
from ..optim import clip_grad_norm_

__all__ = [
    "RunState",
    "NonFiniteLossError",
    "NonFiniteGradientError",
    "DeviceBatches",
    "train_steps",
    "evaluate",
    "topk_correct",
]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


class NonFiniteGradientError(NonFiniteLossError):
    """The loss was finite but a gradient was NaN or infinite; the message names the epoch,
    the step and (when the check runs before the update) the first parameters concerned."""


@dataclass
class RunState:
    """The counters of a run that are not in the model, optimiser, schedule or loader."""

    epoch: int = 0  # the epoch in progress (0-based)
    global_step: int = 0  # optimiser steps taken since the start of the run
    loss_sum: float = 0.0  # over the current epoch's batches, weighted by batch size
    correct: int = 0  # current epoch: predictions equal to the label (hard labels only)
    seen: int = 0  # current epoch: training images so far
    train_seconds: float = 0.0  # current epoch: time spent in steps
    best_acc1: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.loss_sum, self.correct, self.seen, self.train_seconds = (
            epoch,
            0.0,
            0,
            0,
            0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        """The state saved by :meth:`to_dict`; a ``ValueError`` naming the first field of the
        wrong type or sign (counters are non-negative ints, sums are numbers, history is a
        list of dicts)."""
        if not isinstance(d, dict):
            raise ValueError(f"RunState: expected a dict, got {type(d).__name__}")
        for name, value in d.items():
            if name not in cls.__dataclass_fields__:
                continue
            if name in ("epoch", "global_step", "correct", "seen"):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
                kind = "a non-negative int"
            elif name == "history":
                ok = isinstance(value, list) and all(isinstance(r, dict) for r in value)
                kind = "a list of dicts"
            else:
                ok = (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                )
                kind = "a finite number"
            if not ok:
                raise ValueError(f"RunState: {name} must be {kind}, got {value!r}")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def topk_correct(logits: np.ndarray, labels: np.ndarray, ks: Iterable[int]) -> list[int]:
    """How many rows have their label among the k largest logits, for each k (ties broken by
    index, lowest first)."""
    order = np.argsort(-logits, axis=1, kind="stable")
    hits = order == labels[:, None]
    return [int(hits[:, :k].any(axis=1).sum()) for k in ks]


def _to_device(a: Any) -> Any:
    return backend.asarray(a)


def _gradient_flag(parameters: list[Any]) -> Any:
    """A 0-d array on the gradients' device: 0 when every gradient is finite, NaN otherwise.

    ``sum(g * 0)`` is 0 for any finite ``g`` however large (a plain sum of large finite
    gradients could overflow to inf and raise a false alarm), and NaN as soon as one element
    is NaN or infinite. Two passes over the gradients: about 0.5% of a step. The value stays
    on the device, so on a GPU it is read back with the loss, not in every step.
    """
    xp = backend.get_xp()
    with np.errstate(invalid="ignore"):  # inf * 0 is the NaN we look for, not a warning
        parts = [xp.sum(p.grad.data * 0) for p in parameters if p.grad is not None]
    return xp.sum(xp.stack(parts)) if parts else xp.zeros(())


def _bad_gradients(model: Module) -> str:
    """The names of the first parameters whose gradient is not finite."""
    xp = backend.get_xp()
    bad = [
        name
        for name, p in model.named_parameters()
        if p.grad is not None and not bool(xp.isfinite(p.grad.data).all())
    ]
    return ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")


class DeviceBatches:
    """The batches of a loader, copied to the GPU ahead of use by a background thread.

    On the CuPy backend a plain copy from host memory on the main thread would make the host
    wait for every kernel already queued (the step in flight). Here a thread prepares batch
    b + 1 while the GPU computes step b: ``cupy.asarray`` stages the host data through pinned
    memory and queues the copy without waiting, and the training loop never waits for it.

    The thread allocates and copies on the training loop's own stream and device (captured
    when iteration starts), not a side stream of its own: the batch's memory then belongs to
    the stream that uses and frees it, and the copy is ordered before the kernels that read
    it. (On a side stream the memory would return, when the loop frees the batch, to the side
    stream's pool with no ordering against the kernels still reading it, and the next copy
    could overwrite it: CuPy has no ``record_stream``.)

    The loader runs ahead of the training loop by up to ``depth`` batches, so its own
    ``position`` is ahead too. :meth:`state_dict` gives the loader's state with the position
    of the batches *handed over*, which is what a checkpoint must hold to resume exactly.
    With the NumPy backend, batches pass through unchanged.
    """

    def __init__(self, loader: Any, depth: int = 2) -> None:
        self.loader = loader
        self.depth = depth
        self.position = loader.state_dict()["position"]

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)
        self.position = self.loader.state_dict()["position"]

    def state_dict(self) -> dict[str, int]:
        state = dict(self.loader.state_dict())
        state["position"] = self.position
        return state

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if backend.get_backend() != "cupy":
            for batch in self.loader:
                self.position = self.loader.state_dict()["position"]
                yield batch
            return
        cupy = backend.module_of("cupy")
        handoff: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        done = object()

        device = cupy.cuda.Device()  # the loop's device and stream, for the thread too
        stream = cupy.cuda.get_current_stream()

        def copy_ahead() -> None:
            iterator = iter(self.loader)
            try:
                for x, y in iterator:
                    with cupy.cuda.Device(device.id), stream:
                        item = (cupy.asarray(x), cupy.asarray(y))
                    position = self.loader.state_dict()["position"]
                    while not stop.is_set():
                        try:
                            handoff.put((item, position), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                handoff.put((done, None))
            except BaseException as exc:  # noqa: BLE001 - handed to the training loop, raised there
                handoff.put((exc, None))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()

        worker = threading.Thread(target=copy_ahead, name="mini-iformer-h2d", daemon=True)
        worker.start()
        try:
            while True:
                item, position = handoff.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.position = position
                yield item
        finally:
            stop.set()
            while worker.is_alive():
                with contextlib.suppress(queue.Empty):
                    handoff.get(timeout=0.1)


def train_steps(
    model: Module,
    batches: Iterable[tuple[Any, Any]],
    optimizer: Any,
    schedule: Any,
    state: RunState,
    *,
    label_smoothing: float = 0.0,
    clip_grad: float | None = None,
    after_step: Callable[[RunState, float], bool] | None = None,
    sync_every: int = 1,
) -> bool:
    """Train on ``batches`` (the rest of the current epoch), updating ``state``.

    Targets are class indices (then ``label_smoothing`` applies) or soft targets of shape
    (N, classes) from Mixup/CutMix (already smoothed). Batches may be NumPy arrays or arrays
    already on the current backend (:class:`DeviceBatches`).

    ``sync_every``: how often the loop reads results back from the array backend. With 1 (the
    default) every step's loss is checked before the weights are updated, and
    :class:`NonFiniteLossError` leaves the model as it was before that step. On a GPU, reading
    a value back waits for every queued kernel, so there a larger value lets the GPU run
    ahead: the losses and accuracy counts of ``sync_every`` steps stay on the device and are
    read in one go when ``state.global_step`` is a multiple of ``sync_every`` and at the end.
    A non-finite loss is then found at that point, and the error names the step where it
    occurred (the model has moved on since; a checkpoint saved from ``after_step`` is always
    from before it).

    Gradients are checked the same way: a finite loss with a NaN or infinite gradient raises
    :class:`NonFiniteGradientError` (a kind of :class:`NonFiniteLossError`) before that
    update with ``sync_every`` 1, naming the parameters, or at the next read-back otherwise.

    ``after_step(state, loss)`` runs at each of those points (after every step when
    ``sync_every`` is 1) with ``state`` up to date and the last step's loss; if it returns
    True training stops early (e.g. to save and exit on Ctrl-C) and this returns False.

    The loop body is the textbook step; what the GPU needs (deferred read-backs) is the
    ``checks`` object around it (:class:`_ReadBacks`).
    """
    if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
        raise ValueError(f"train_steps: sync_every must be a positive int, got {sync_every!r}")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    checks = _ReadBacks(model, params, state, sync_every)

    for x, y in batches:
        start = time.perf_counter()
        x, y = _to_device(x), _to_device(y)
        soft = y.ndim == 2  # Mixup/CutMix targets, already smoothed
        # The textbook step: forward, loss, zero_grad, backward, (clip,) update, schedule.
        logits = model(Tensor(x))
        loss = F.cross_entropy(logits, Tensor(y), label_smoothing=0.0 if soft else label_smoothing)
        checks.loss(loss)
        optimizer.zero_grad()
        loss.backward()
        checks.gradients()
        if clip_grad:
            clip_grad_norm_(params, clip_grad)  # leaves non-finite gradients as they are
        optimizer.step()
        schedule.step()
        state.global_step += 1
        value = checks.step_done(loss, logits, y, soft)  # None until the next read-back
        state.train_seconds += time.perf_counter() - start
        if value is not None and after_step is not None and after_step(state, value):
            return False
    if checks.pending:
        start = time.perf_counter()
        value = checks.settle()
        state.train_seconds += time.perf_counter() - start
        if after_step is not None and after_step(state, value):
            return False
    return True


class _ReadBacks:
    """What a GPU adds to the training step: results are read back every ``sync_every`` steps.

    Reading a value from the GPU waits for every kernel queued before it, so the loop keeps
    each step's loss, gradient flag and correct count on the device (``pending``) and reads
    them in one go every ``sync_every`` steps (:meth:`settle`), where it checks them and adds
    them to the run's state. With ``sync_every`` 1, :meth:`loss` and :meth:`gradients` also
    check the step before its update, so that an error leaves the model as it was.
    """

    def __init__(self, model: Module, params: list[Any], state: RunState, sync_every: int):
        self.model, self.params, self.state, self.sync_every = model, params, state, sync_every
        # (step, loss, gradient flag, correct or None, images), on the device
        self.pending: list[tuple[int, Any, Any, Any, int]] = []
        self.value = math.nan  # the loss, when read at once
        self.flag: Any = None

    def loss(self, loss: Tensor) -> None:
        """With ``sync_every`` 1: read the loss now and refuse a non-finite one."""
        if self.sync_every == 1:
            self.value = float(loss.item())
            if not math.isfinite(self.value):
                raise NonFiniteLossError(
                    f"the loss is {self.value} at epoch {self.state.epoch + 1}, "
                    f"step {self.state.global_step + 1}"
                )

    def gradients(self) -> None:
        """The gradients' finiteness flag; with ``sync_every`` 1, read and checked now."""
        self.flag = _gradient_flag(self.params)
        if self.sync_every == 1 and not math.isfinite(float(self.flag)):
            raise NonFiniteGradientError(
                f"the gradient of {_bad_gradients(self.model)} is not finite (the loss is "
                f"{self.value}) at epoch {self.state.epoch + 1}, step {self.state.global_step + 1}"
            )

    def step_done(self, loss: Tensor, logits: Tensor, y: Any, soft: bool) -> float | None:
        """Keep the step's results; at a read-back, settle them and return the last loss."""
        correct = None
        if not soft:  # the first largest logit, as topk_correct breaks ties
            correct = (backend.get_xp().argmax(logits.data, axis=1) == y).sum()
        self.pending.append(
            (
                self.state.global_step,
                loss.data.reshape(()),
                self.flag.astype(loss.data.dtype),
                correct,
                int(y.shape[0]),
            )
        )
        if self.state.global_step % self.sync_every == 0:
            return self.settle()
        return None

    def settle(self) -> float:
        """Read the pending steps' results back; add them to ``state``; check the losses."""
        state, pending = self.state, self.pending
        xp = backend.get_xp()
        losses, flags = backend.to_numpy(xp.stack([xp.stack(p[1:3]) for p in pending])).T
        counts = [p[3] for p in pending if p[3] is not None]
        correct: np.ndarray | list[int] = backend.to_numpy(xp.stack(counts)) if counts else []
        for (step, *_, n), value, flag in zip(pending, losses.tolist(), flags.tolist()):
            ahead = state.global_step - step
            later = f" (found {ahead} steps later)" if ahead else ""
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the loss is {value} at epoch {state.epoch + 1}, step {step}{later}"
                )
            if not math.isfinite(flag):
                raise NonFiniteGradientError(
                    f"a gradient is not finite (the loss is {value}) at epoch "
                    f"{state.epoch + 1}, step {step}{later}"
                )
            state.loss_sum += value * n
            state.seen += n
        state.correct += int(sum(int(c) for c in correct))
        pending.clear()
        return float(losses[-1])


def evaluate(
    model: Module, batches: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int
) -> dict[str, float]:
    """Mean cross-entropy, Acc@1 and Acc@5 (percent) over ``batches`` in evaluation mode."""
    was_training = model.training
    model.eval()
    total, loss_sum, hit1, hit5 = 0, 0.0, 0, 0
    k5 = min(5, num_classes)
    try:
        with no_grad():
            for x, y in batches:
                logits = model(Tensor(_to_device(x)))
                loss = F.cross_entropy(logits, Tensor(_to_device(y)))
                host = backend.to_numpy(logits.data)
                c1, c5 = topk_correct(host, y, [1, k5])
                n = int(y.shape[0])
                total, loss_sum = total + n, loss_sum + float(loss.item()) * n
                hit1, hit5 = hit1 + c1, hit5 + c5
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluate: the evaluation data is empty")
    return {"loss": loss_sum / total, "acc1": 100.0 * hit1 / total, "acc5": 100.0 * hit5 / total}
