"""The batch loader: reproducible order and augmentation, background prefetching, resumable.

A dataset is any object with ``len(dataset)`` and ``dataset.get(index, rng) -> (image,
label)``, where ``image`` is a (C, H, W) float array (the dataset's transform ends with
``ToArray``/``Normalize``) and ``label`` an integer. ``get`` is called from several threads at
once, so it must not modify shared state (reading files and applying transforms is fine).

Reproducibility does not depend on threads. Everything random is seeded from ``seed``, the
epoch and a position, never from the order in which threads finish:

==========================  =================================================================
what                        generator
==========================  =================================================================
the order of epoch ``e``    ``np.random.default_rng([seed, e]).permutation(n)`` (``shuffle``)
sample ``i`` in epoch ``e`` ``dataset.get(i, np.random.default_rng([seed, e, i]))``
batch ``b`` in epoch ``e``  ``batch_transform(x, y, np.random.default_rng([seed, e, b, 1]))``
==========================  =================================================================

so ``num_workers=0`` (synchronous) and ``num_workers=8`` give identical batches.

Epochs and resuming: iterating the loader yields the batches of its current epoch (``loader.epoch``,
0 at first), then stops. Call ``set_epoch(e)`` before each epoch; iterating again without it
replays the same epoch from its first batch. ``position`` counts the batches yielded so far in
the current epoch, and ``state_dict()`` / ``load_state_dict()`` save and restore
``{"seed", "epoch", "position"}``: after ``load_state_dict`` the next iteration continues that
epoch at batch ``position`` with the same order and the same per-sample generators, exactly as
the interrupted run would have. ``set_epoch`` with the epoch the loader is already at changes
nothing (a pending resume is kept), so the usual loop resumes correctly::

    loader = DataLoader(train_set, batch_size=128, shuffle=True, seed=0, num_workers=4,
                        batch_transform=MixupCutmix(num_classes=100))
    if checkpoint:
        loader.load_state_dict(checkpoint["loader"])   # e.g. epoch 3, position 120
    for epoch in range(loader.epoch, num_epochs):
        loader.set_epoch(epoch)                        # keeps the resume point of epoch 3
        for x, targets in loader:
            ...                                        # save loader.state_dict() any time

Threads: with ``num_workers > 0`` a pool of that many threads loads samples while the caller
works, up to ``prefetch`` batches ahead of the batch just returned. The pool lives as long as
one pass over the epoch; it is shut down when the pass ends, when the caller stops early
(``break``, an exception, the iterator being garbage-collected, or ``close()``), and when a
sample fails, whose exception is re-raised in the caller's thread as :class:`SampleLoadError`
naming the sample index.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["DataLoader", "SampleLoadError"]


class SampleLoadError(RuntimeError):
    """Loading (reading or transforming) one sample failed; the cause is ``__cause__``."""

    def __init__(self, index: int, epoch: int, cause: BaseException):
        self.index = index
        self.epoch = epoch
        super().__init__(
            f"DataLoader: loading sample {index} (epoch {epoch}) failed: "
            f"{type(cause).__name__}: {cause}"
        )


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"DataLoader: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _load_sample(dataset: Any, seed: int, epoch: int, index: int) -> Any:
    """One sample, with its own generator (runs in a worker thread or the caller's)."""
    return dataset.get(index, np.random.default_rng([seed, epoch, index]))


def _register_thread(idents: set[int]) -> None:
    idents.add(threading.get_ident())


def _collate(samples: list[Any], indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(image, label)`` samples into ``(N, ...) float32`` images and int64 labels."""
    images, labels = [], []
    for sample, index in zip(samples, indices):
        if not isinstance(sample, tuple) or len(sample) != 2:
            raise TypeError(
                f"DataLoader: dataset.get({index}, rng) must return an (image, label) pair, "
                f"got {type(sample).__name__}"
            )
        image, label = sample
        if not isinstance(image, np.ndarray) or image.dtype.kind != "f":
            what = (
                f"a {image.dtype} array of shape {image.shape}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise TypeError(
                f"DataLoader: sample {index} is {what}; samples must be float arrays such as "
                "(C, H, W) float32 (end the dataset's transform with ToArray() and Normalize())"
            )
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise TypeError(
                f"DataLoader: the label of sample {index} must be an integer, got {label!r}"
            )
        images.append(image)
        labels.append(int(label))
    shape = images[0].shape
    x = np.empty((len(images),) + shape, dtype=np.float32)
    for k, (image, index) in enumerate(zip(images, indices)):
        if image.shape != shape:
            raise ValueError(
                f"DataLoader: cannot batch sample {index} of shape {image.shape} with sample "
                f"{indices[0]} of shape {shape}; the transform must give every image one size"
            )
        x[k] = image
    return x, np.asarray(labels, dtype=np.int64)


class DataLoader:
    """Batches of ``dataset`` as ``(x, y)``: ``x`` (N, C, H, W) float32, ``y`` (N,) int64.

    With ``batch_transform`` (e.g. :class:`~mini_iformer.data.transforms.MixupCutmix`) each
    batch is ``batch_transform(x, y, rng)`` instead. See the module docstring for the seeding,
    the epoch/resume protocol and the threads.

    Arguments: ``batch_size >= 1``; ``shuffle`` draws a new order each epoch; ``drop_last``
    drops a final partial batch; ``seed >= 0``; ``num_workers >= 0`` threads (0: load in the
    caller's thread when a batch is requested); ``prefetch >= 0`` batches loaded ahead.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        num_workers: int = 2,
        prefetch: int = 2,
        batch_transform: Callable[..., Any] | None = None,
    ):
        if not callable(getattr(dataset, "get", None)) or not hasattr(dataset, "__len__"):
            raise TypeError(
                "DataLoader: the dataset must have len(dataset) and a get(index, rng) method, "
                f"got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        self.seed = _check_int(seed, "seed", 0)
        self.num_workers = _check_int(num_workers, "num_workers", 0)
        self.prefetch = _check_int(prefetch, "prefetch", 0)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if batch_transform is not None and not callable(batch_transform):
            raise TypeError(
                f"DataLoader: batch_transform must be callable, got {batch_transform!r}"
            )
        self.batch_transform = batch_transform
        n = len(dataset)
        if n == 0:
            raise ValueError("DataLoader: the dataset is empty")
        if self.drop_last and n < self.batch_size:
            raise ValueError(
                f"DataLoader: drop_last=True with {n} samples and batch_size {self.batch_size} "
                "leaves no batch"
            )
        self._epoch = 0
        self._position = 0
        self._resume: int | None = None
        self._generation = 0

    # -- sizes and order -------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration loads."""
        return self._epoch

    @property
    def position(self) -> int:
        """Batches of the current epoch yielded so far (where a resume would continue)."""
        return self._position

    def order(self, epoch: int | None = None) -> np.ndarray:
        """The sample indices of ``epoch`` (default: the current one) in loading order."""
        epoch = self._epoch if epoch is None else _check_int(epoch, "epoch", 0)
        n = len(self.dataset)
        if self.shuffle:
            return np.random.default_rng([self.seed, epoch]).permutation(n)
        return np.arange(n)

    # -- epochs and resuming ---------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Make ``epoch`` the current epoch; a different epoch starts at its first batch.

        Setting the epoch the loader is already at changes nothing, so a position restored by
        :meth:`load_state_dict` survives the ``set_epoch`` at the top of a training loop.
        """
        epoch = _check_int(epoch, "epoch", 0)
        if epoch != self._epoch:
            self._epoch = epoch
            self._position = 0
            self._resume = None

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch", "position"}``: where this loader is in its sequence of batches."""
        return {"seed": self.seed, "epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration starts at batch ``state["position"]``
        of epoch ``state["epoch"]`` (nothing is left when the position is ``len(self)``)."""
        missing = {"seed", "epoch", "position"} - set(state)
        if missing:
            raise KeyError(f"DataLoader.load_state_dict: missing {sorted(missing)}")
        seed = _check_int(state["seed"], "seed", 0)
        if seed != self.seed:
            raise ValueError(
                f"DataLoader.load_state_dict: the state was saved with seed {seed}, this loader "
                f"has seed {self.seed}; create the loader with seed={seed} to resume that run"
            )
        epoch = _check_int(state["epoch"], "epoch", 0)
        position = _check_int(state["position"], "position", 0)
        if position > len(self):
            raise ValueError(
                f"DataLoader.load_state_dict: position {position} is past the end of an epoch "
                f"of {len(self)} batches"
            )
        self._epoch = epoch
        self._position = position
        self._resume = position

    # -- iteration -------------------------------------------------------------------------

    def __iter__(self) -> _BatchIterator:
        start = 0 if self._resume is None else self._resume
        self._resume = None
        self._position = start
        self._generation += 1
        return _BatchIterator(self, self._epoch, start, self._generation)

    def _record(self, generation: int, position: int) -> None:
        # Only the newest iterator moves the position.
        if generation == self._generation:
            self._position = position

    def __repr__(self) -> str:
        return (
            f"DataLoader(batches={len(self)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
            f"num_workers={self.num_workers}, prefetch={self.prefetch}, epoch={self._epoch}, "
            f"position={self._position})"
        )


class _BatchIterator:
    """One pass over the rest of an epoch. ``close()`` (or leaving a ``with`` block, or
    garbage collection) stops it and shuts its threads down."""

    def __init__(self, loader: DataLoader, epoch: int, start: int, generation: int):
        self._loader = loader
        self._dataset = loader.dataset
        self._epoch = epoch
        self._generation = generation
        self._order = loader.order(epoch)
        self._batch_size = loader.batch_size
        self._num_batches = len(loader)
        self._next = start
        self._submitted = start
        self._pending: deque[tuple[np.ndarray, list[Future]]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._worker_idents: set[int] = set()
        self._closed = False
        if loader.num_workers > 0 and start < self._num_batches:
            executor = ThreadPoolExecutor(
                max_workers=loader.num_workers,
                thread_name_prefix="mini_iformer-loader",
                initializer=_register_thread,
                initargs=(self._worker_idents,),
            )
            self._executor = executor
            self._submit_until(executor, start + loader.prefetch)

    def _indices(self, b: int) -> np.ndarray:
        return self._order[b * self._batch_size : (b + 1) * self._batch_size]

    def _submit_until(self, executor: ThreadPoolExecutor, last: int) -> None:
        """Queue on ``executor`` (this iterator's pool) the samples of every batch up to
        ``last`` (inclusive) not yet queued."""
        last = min(last, self._num_batches - 1)
        seed = self._loader.seed
        while self._submitted <= last:
            indices = self._indices(self._submitted)
            futures = [
                executor.submit(_load_sample, self._dataset, seed, self._epoch, int(i))
                for i in indices
            ]
            self._pending.append((indices, futures))
            self._submitted += 1

    def _samples(self, b: int) -> tuple[np.ndarray, list[Any]]:
        executor = self._executor
        if executor is None:
            indices = self._indices(b)
            samples = []
            for i in indices:
                try:
                    samples.append(
                        _load_sample(self._dataset, self._loader.seed, self._epoch, int(i))
                    )
                except Exception as exc:
                    raise SampleLoadError(int(i), self._epoch, exc) from exc
            return indices, samples
        self._submit_until(executor, b + self._loader.prefetch)
        indices, futures = self._pending.popleft()
        samples = []
        for i, future in zip(indices, futures):
            try:
                samples.append(future.result())
            except Exception as exc:
                raise SampleLoadError(int(i), self._epoch, exc) from exc
        return indices, samples

    def __iter__(self) -> _BatchIterator:
        return self

    def __next__(self) -> Any:
        if self._closed or self._next >= self._num_batches:
            self.close()
            raise StopIteration
        b = self._next
        try:
            indices, samples = self._samples(b)
            x, y = _collate(samples, indices)
            transform = self._loader.batch_transform
            if transform is not None:
                out = transform(x, y, np.random.default_rng([self._loader.seed, self._epoch, b, 1]))
                if not isinstance(out, tuple) or len(out) != 2:
                    raise TypeError("DataLoader: batch_transform must return an (x, y) pair")
                x, y = out
        except BaseException:
            self.close()
            raise
        self._next = b + 1
        self._loader._record(self._generation, self._next)
        if self._next >= self._num_batches:
            self.close()  # release the threads as soon as the last batch is out
        return x, y

    def close(self) -> None:
        """Stop: cancel the queued samples and shut the worker threads down."""
        if self._closed:
            return
        self._closed = True
        for _, futures in self._pending:
            for future in futures:
                future.cancel()
        self._pending.clear()
        executor, self._executor = self._executor, None
        if executor is not None:
            # A worker thread cannot wait for itself (possible when garbage collection runs
            # there); it asks the pool to stop and the threads end after their current sample.
            wait = threading.get_ident() not in self._worker_idents
            executor.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> _BatchIterator:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.close()
