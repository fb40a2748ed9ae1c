"""The batch loader: order, per-sample generators independent of threads, resuming, clean
shutdown and error reporting."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from mini_iformer.data.loader import DataLoader, SampleLoadError
from mini_iformer.data.transforms import MixupCutmix


class ToyDataset:
    """Image ``i`` is ``i`` plus noise from the sample's generator; optional jittered delays
    make worker threads finish out of order; ``fail_at`` raises for one index."""

    def __init__(self, n=23, shape=(2, 3, 4), fail_at=None, jitter=0.0):
        self.n, self.shape, self.fail_at, self.jitter = n, shape, fail_at, jitter
        self.targets = [i % 5 for i in range(n)]

    def __len__(self):
        return self.n

    def get(self, i, rng):
        if i == self.fail_at:
            raise ValueError("corrupt file")
        if self.jitter:
            time.sleep(self.jitter * ((i * 7919) % 5) / 5)
        image = np.float32(i) + rng.standard_normal(self.shape).astype(np.float32)
        return image, self.targets[i]


def collect(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def wait_for_threads(baseline, timeout=5.0):
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_batches_are_the_documented_samples_and_identical_across_worker_counts():
    ds = ToyDataset(jitter=0.002)
    runs = {}
    for workers, prefetch in ((0, 0), (1, 2), (3, 1), (3, 0)):
        loader = DataLoader(ds, 5, shuffle=True, seed=7, num_workers=workers, prefetch=prefetch)
        loader.set_epoch(2)
        runs[(workers, prefetch)] = collect(loader)
    reference = runs[(0, 0)]
    for batches in runs.values():
        assert_same_batches(batches, reference)
    order = np.random.default_rng([7, 2]).permutation(23)
    assert len(reference) == 5
    for b, (x, y) in enumerate(reference):
        assert x.dtype == np.float32 and y.dtype == np.int64
        idx = order[b * 5 : (b + 1) * 5]
        assert x.shape == (len(idx), 2, 3, 4)
        expected = np.stack([ds.get(int(i), np.random.default_rng([7, 2, int(i)]))[0] for i in idx])
        np.testing.assert_array_equal(x, expected)
        np.testing.assert_array_equal(y, [ds.targets[i] for i in idx])


def test_shuffle_is_reproducible_per_seed_and_epoch():
    ds = ToyDataset()

    def labels_order(seed, epoch, shuffle=True):
        loader = DataLoader(ds, 4, shuffle=shuffle, seed=seed, num_workers=0)
        loader.set_epoch(epoch)
        return [x[:, 0, 0, 0] for x, _ in loader]

    def first_order(seed, epoch):
        return np.round(np.concatenate(labels_order(seed, epoch))).tolist()

    assert first_order(0, 0) == first_order(0, 0)
    assert first_order(0, 0) != first_order(0, 1)
    assert first_order(0, 0) != first_order(1, 0)
    loader = DataLoader(ds, 4, shuffle=True, seed=3)
    assert sorted(loader.order(5).tolist()) == list(range(23))
    np.testing.assert_array_equal(loader.order(5), np.random.default_rng([3, 5]).permutation(23))
    np.testing.assert_array_equal(DataLoader(ds, 4).order(9), np.arange(23))


def test_len_and_drop_last():
    ds = ToyDataset(n=23)
    assert len(DataLoader(ds, 5)) == 5
    assert len(DataLoader(ds, 5, drop_last=True)) == 4
    assert len(DataLoader(ds, 23)) == 1 and len(DataLoader(ds, 1)) == 23
    sizes = [x.shape[0] for x, _ in DataLoader(ds, 5, num_workers=2)]
    assert sizes == [5, 5, 5, 5, 3]
    sizes = [x.shape[0] for x, _ in DataLoader(ds, 5, drop_last=True, num_workers=2)]
    assert sizes == [5, 5, 5, 5]


def test_argument_validation():
    ds = ToyDataset(n=4)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, 0)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, 2, num_workers=-1)
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(ds, 2, prefetch=-1)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(ds, 2, seed=-3)
    with pytest.raises(ValueError, match="empty"):
        DataLoader(ToyDataset(n=0), 2)
    with pytest.raises(ValueError, match="leaves no batch"):
        DataLoader(ds, 5, drop_last=True)
    with pytest.raises(TypeError, match="get"):
        DataLoader([1, 2, 3], 2)
    with pytest.raises(TypeError, match="callable"):
        DataLoader(ds, 2, batch_transform=3)
    with pytest.raises(ValueError, match="epoch"):
        DataLoader(ds, 2).set_epoch(-1)


def test_resume_continues_the_interrupted_epoch_exactly():
    ds = ToyDataset(jitter=0.001)
    kwargs = dict(batch_size=4, shuffle=True, seed=11, num_workers=3, prefetch=2)
    full = DataLoader(ds, **kwargs)
    full.set_epoch(1)
    uninterrupted = collect(full)
    assert full.state_dict() == {"seed": 11, "epoch": 1, "position": 6}

    first = DataLoader(ds, **kwargs)
    first.set_epoch(1)
    consumed = []
    for batch in first:
        consumed.append(batch)
        if len(consumed) == 2:
            break
    state = first.state_dict()
    assert state == {"seed": 11, "epoch": 1, "position": 2}

    resumed = DataLoader(ds, **{**kwargs, "num_workers": 0})
    resumed.load_state_dict(state)
    resumed.set_epoch(1)  # the same epoch: the resume point is kept
    rest = collect(resumed)
    assert_same_batches(consumed + rest, uninterrupted)
    assert resumed.state_dict()["position"] == 6
    # Iterating again without set_epoch replays the epoch from its start.
    assert_same_batches(collect(resumed), uninterrupted)
    # A finished epoch resumes to nothing; the next epoch starts at batch 0.
    done = DataLoader(ds, **kwargs)
    done.load_state_dict(full.state_dict())
    assert collect(done) == []
    done.set_epoch(2)
    assert len(collect(done)) == 6


def test_load_state_dict_validation():
    loader = DataLoader(ToyDataset(), 4, seed=1)
    with pytest.raises(ValueError, match="seed 2"):
        loader.load_state_dict({"seed": 2, "epoch": 0, "position": 0})
    with pytest.raises(ValueError, match="past the end"):
        loader.load_state_dict({"seed": 1, "epoch": 0, "position": 7})
    with pytest.raises(KeyError, match="position"):
        loader.load_state_dict({"seed": 1, "epoch": 0})
    loader.load_state_dict({"seed": 1, "epoch": 3, "position": 2})
    loader.set_epoch(4)  # another epoch drops the resume point
    assert loader.state_dict() == {"seed": 1, "epoch": 4, "position": 0}


@pytest.mark.parametrize("how", ["break", "exception", "del", "close"])
def test_stopping_early_leaves_no_threads(how):
    gc.collect()
    baseline = threading.active_count()
    loader = DataLoader(ToyDataset(n=200, jitter=0.001), 4, num_workers=4, prefetch=3)
    if how == "break":
        for _ in loader:
            assert threading.active_count() > baseline  # the workers are running
            break
    elif how == "exception":
        with pytest.raises(KeyError):
            for _ in loader:
                raise KeyError("stop")
    elif how == "del":
        it = iter(loader)
        next(it)
        del it
    else:
        with iter(loader) as it:
            next(it)
    assert wait_for_threads(baseline) == baseline
    assert loader.position == 1


def test_worker_exception_names_the_sample_and_threads_stop():
    gc.collect()
    baseline = threading.active_count()
    for workers in (0, 3):
        loader = DataLoader(ToyDataset(n=30, fail_at=13), 4, num_workers=workers)
        with pytest.raises(SampleLoadError, match="sample 13") as info:
            collect(loader)
        assert info.value.index == 13
        assert isinstance(info.value.__cause__, ValueError)
        assert "corrupt file" in str(info.value)
    assert wait_for_threads(baseline) == baseline


def test_non_array_samples_are_refused_with_a_hint():
    class RawDataset(ToyDataset):
        def get(self, i, rng):
            return np.zeros((4, 4, 3), np.uint8), 0

    with pytest.raises(TypeError, match="ToArray"):
        next(iter(DataLoader(RawDataset(n=4), 2, num_workers=0)))


def test_batch_transform_is_applied_with_its_own_generator():
    ds = ToyDataset()
    mix = MixupCutmix(num_classes=5, label_smoothing=0.1)
    runs = []
    for workers in (0, 2):
        loader = DataLoader(ds, 6, shuffle=True, seed=4, num_workers=workers, batch_transform=mix)
        loader.set_epoch(3)
        runs.append(collect(loader))
    assert_same_batches(runs[0], runs[1])
    plain = DataLoader(ds, 6, shuffle=True, seed=4, num_workers=0)
    plain.set_epoch(3)
    for b, ((x, y), (xm, t)) in enumerate(zip(plain, runs[0])):
        assert t.shape == (x.shape[0], 5) and t.dtype == np.float32
        ex, et = mix(x, y, np.random.default_rng([4, 3, b, 1]))
        np.testing.assert_array_equal(xm, ex)
        np.testing.assert_array_equal(t, et)
    seen = []

    def record(x, y, rng):
        seen.append(rng.integers(1 << 30))
        return x, y

    collect(DataLoader(ds, 6, num_workers=0, batch_transform=record))
    assert len(set(seen)) == len(seen) == 4
