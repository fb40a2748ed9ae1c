"""The training loop in-process: reading results back every step or every few steps gives the
same run, a non-finite loss or gradient is reported at the step where it happened, and the GPU
feed keeps the loader position a checkpoint needs. (``test_training.py`` drives the command
line.)"""

from __future__ import annotations

import numpy as np
import pytest

import mini_iformer as mi
from mini_iformer import nn
from mini_iformer.autograd import Function
from mini_iformer.data import DataLoader
from mini_iformer.optim import AdamW
from mini_iformer.training import (
    DeviceBatches,
    NonFiniteGradientError,
    NonFiniteLossError,
    RunState,
    topk_correct,
    train_steps,
)
from mini_iformer.training.engine import _gradient_flag

CLASSES = 3


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, x):
        return self.fc(x.reshape((x.shape[0], -1)))


class _PoisonedBackward(Function):
    """The identity, except that its backward returns ``value`` everywhere in a batch whose
    first input value is exactly ``MARK``: a finite loss with non-finite gradients."""

    name = "poisoned_backward"
    MARK = 0.5

    def forward(self, logits, x, value):
        self.poisoned, self.value = bool(x.reshape(-1)[0] == self.MARK), value
        return logits

    def backward(self, g):
        return (g * self.value if self.poisoned else g), None


class _PoisonNet(_Net):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return _PoisonedBackward.apply(super().forward(x), x, value=self.value)


class _Constant:
    """A constant schedule with the interface train_steps steps."""

    def step(self):
        pass


def _batches(n=7, batch=5, seed=0, nan_at=None, mark_at=None):
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n):
        x = rng.standard_normal((batch, 2, 2, 2)).astype(np.float32)
        if b == nan_at:
            x[0, 0, 0, 0] = np.nan
        if b == mark_at:
            x[0, 0, 0, 0] = _PoisonedBackward.MARK
        out.append((x, rng.integers(0, CLASSES, batch)))
    return out


def _run(batches, sync_every, after=None, net_type=_Net, *net_args):
    mi.random.manual_seed(0)
    net = net_type(*net_args)
    opt = AdamW(net.parameters(), lr=0.05)
    state = RunState()
    calls = []

    def after_step(s, loss):
        calls.append((s.global_step, s.seen, loss))
        return bool(after and after(s))

    finished = train_steps(net, batches, opt, _Constant(), state, label_smoothing=0.1,
                           after_step=after_step, sync_every=sync_every)
    return net, state, calls, finished


@pytest.mark.parametrize("sync_every", [2, 3, 7, 10])
def test_reading_back_every_few_steps_gives_the_same_run(sync_every):
    batches = _batches()
    net1, s1, calls1, _ = _run(batches, 1)
    net2, s2, calls2, finished = _run(batches, sync_every)
    assert finished
    for (k, a), (_, b) in zip(net1.state_dict().items(), net2.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert (s1.loss_sum, s1.correct, s1.seen, s1.global_step) == (
        s2.loss_sum, s2.correct, s2.seen, s2.global_step)
    # after_step sees an up-to-date state at every multiple of sync_every and at the end
    steps = [c[0] for c in calls2]
    assert steps == sorted({*range(sync_every, 8, sync_every), 7})
    assert all(seen == 5 * step for step, seen, _ in calls2)
    by_step = {c[0]: c[2] for c in calls1}
    assert all(loss == by_step[step] for step, _, loss in calls2)


class _Tied(_Net):
    """Every class gets the same logit."""

    def forward(self, x):
        return super().forward(x) * 0.0


def test_the_accuracy_count_breaks_ties_like_topk_correct():
    """Correct predictions are counted on the device; a tie goes to the lowest class index,
    as in topk_correct, so with all logits equal only the labels 0 count."""
    batches = _batches(n=4)
    net = _Tied()
    state = RunState()
    train_steps(net, batches, AdamW(net.parameters()), _Constant(), state, sync_every=3)
    assert state.correct == sum(int((y == 0).sum()) for _, y in batches) > 0
    logits = np.zeros((5, CLASSES))
    assert topk_correct(logits, batches[0][1], [1]) == [int((batches[0][1] == 0).sum())]


def test_stopping_early_returns_false_at_a_read_back_point():
    net, state, calls, finished = _run(_batches(), 2, after=lambda s: s.global_step >= 3)
    assert not finished
    assert state.global_step == 4 and [c[0] for c in calls] == [2, 4]


def test_a_non_finite_loss_is_caught_before_the_update_when_reading_every_step():
    mi.random.manual_seed(0)
    net = _Net()
    opt = AdamW(net.parameters(), lr=0.05)
    before = {}

    def remember(s, loss):
        if s.global_step == 4:
            before.update({k: v.numpy().copy() for k, v in net.state_dict().items()})
        return False

    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at epoch 1, step 5$"):
        train_steps(net, _batches(nan_at=4), opt, _Constant(), RunState(), after_step=remember)
    assert before
    for k, v in net.state_dict().items():  # step 5 changed nothing
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_a_non_finite_loss_read_back_late_names_the_step_where_it_happened():
    with pytest.raises(NonFiniteLossError,
                       match=r"the loss is nan at epoch 1, step 5 \(found 1 steps later\)"):
        _run(_batches(nan_at=4), 3)


@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul:RuntimeWarning")
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_gradient_is_caught_before_the_update_naming_the_parameters(value):
    mi.random.manual_seed(0)
    net = _PoisonNet(value)
    opt = AdamW(net.parameters(), lr=0.05)
    before = {}

    def remember(s, loss):
        before.update({k: v.numpy().copy() for k, v in net.state_dict().items()})
        return False

    with pytest.raises(NonFiniteGradientError,
                       match=r"^the gradient of fc\.weight, fc\.bias is not finite \(the loss "
                             r"is [0-9.]+\) at epoch 1, step 4$"):
        train_steps(net, _batches(mark_at=3), opt, _Constant(), RunState(), after_step=remember)
    for k, v in net.state_dict().items():  # step 4 changed nothing
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    assert np.isfinite(opt.state_dict()["state"][0]["exp_avg"]).all()


def test_a_non_finite_gradient_read_back_late_names_the_step_where_it_happened():
    with pytest.raises(NonFiniteGradientError,
                       match=r"a gradient is not finite \(the loss is [0-9.]+\) at epoch 1, "
                             r"step 4 \(found 2 steps later\)"):
        _run(_batches(mark_at=3), 3, None, _PoisonNet, np.nan)


def test_large_finite_gradients_are_not_taken_for_non_finite_ones():
    net, state, _, finished = _run(_batches(mark_at=3), 1, None, _PoisonNet, 1e18)
    assert finished and state.global_step == 7
    # gradients whose plain sum overflows float32 are still finite
    p = mi.tensor(np.zeros(3, np.float32), requires_grad=True)
    p.grad = mi.tensor(np.full(3, 3e38, np.float32))
    with np.errstate(over="ignore"):
        assert np.isinf(p.grad.numpy().sum())
    assert float(_gradient_flag([p])) == 0.0
    p.grad = mi.tensor(np.array([3e38, np.inf, 1], np.float32))
    assert np.isnan(float(_gradient_flag([p])))


def test_sync_every_must_be_a_positive_int():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="sync_every must be a positive int"):
            _run(_batches(n=1), bad)


class _Samples:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def get(self, index, rng):
        return np.full((1, 2, 2), index, np.float32), index % CLASSES


def test_the_feed_reports_the_position_of_the_batches_handed_over():
    loader = DataLoader(_Samples(12), 3, shuffle=True, seed=1)
    feed = DeviceBatches(loader)
    assert len(feed) == 4 and feed.state_dict() == {"seed": 1, "epoch": 0, "position": 0}
    expected = [x.copy() for x, _ in loader]
    loader.set_epoch(0)
    feed = DeviceBatches(loader)
    seen = []
    for x, _ in feed:
        seen.append(x)
        assert feed.state_dict()["position"] == len(seen)
        if len(seen) == 2:
            break
    for a, b in zip(seen, expected):
        np.testing.assert_array_equal(a, b)
    feed.set_epoch(1)
    assert feed.state_dict() == {"seed": 1, "epoch": 1, "position": 0}


def test_the_feed_allocates_batches_on_the_loops_own_device_and_stream():
    """On the GPU the batches must come from the stream (and device) of the loop that uses and
    frees them: memory taken on a side stream returns, when freed, to that stream's pool with
    no ordering against the kernels still reading it. Checked on the CuPy stand-in, which
    records where each copy from the host was made."""
    import standin_cupy

    loader = DataLoader(_Samples(12), 3, shuffle=True, seed=1)
    with standin_cupy.installed() as cupy:
        loop_stream = cupy.cuda.Stream(non_blocking=True)
        with cupy.cuda.Device(1), loop_stream:
            batches = list(DeviceBatches(loader))
    assert len(batches) == 4
    for x, y in batches:
        assert type(x) is cupy.ndarray and type(y) is cupy.ndarray
        for a in (x, y):
            device, stream = a.allocated_on
            assert device == 1 and stream is loop_stream


@pytest.mark.parametrize("label_smoothing, soft, clip_grad",
                         [(0.0, False, None), (0.1, False, 1.0), (0.0, True, 0.01)])
def test_training_steps_read_nothing_back_from_the_device_between_read_backs(label_smoothing,
                                                                            soft, clip_grad):
    """On a GPU every read back waits for the queued work. With ``sync_every`` = k, k steps
    read the device only at the read-back at their end: the same number of reads for 2 steps
    as for 6 (counted on the CuPy stand-in, which counts every read)."""
    import standin_cupy

    def reads(steps):
        with standin_cupy.installed() as cupy:
            net = _Net()
            batches = []
            for x, y in _batches(n=steps):
                target = np.eye(CLASSES, dtype=np.float32)[y] if soft else y
                batches.append((cupy.asarray(x), cupy.asarray(target)))
            opt = AdamW(net.parameters())
            before = standin_cupy.READS.count
            train_steps(net, batches, opt, _Constant(), RunState(), sync_every=steps,
                        label_smoothing=label_smoothing, clip_grad=clip_grad)
            return standin_cupy.READS.count - before

    assert reads(2) == reads(6)


def test_class_indices_outside_the_classes_are_refused_on_the_host_and_nan_on_the_device():
    import standin_cupy

    logits, labels = np.zeros((3, CLASSES), np.float32), np.array([0, CLASSES, 1])
    with pytest.raises(ValueError, match=f"class index {CLASSES}, outside"):
        mi.functional.cross_entropy(mi.tensor(logits), labels)
    with standin_cupy.installed() as cupy:
        loss = mi.functional.cross_entropy(mi.tensor(logits), cupy.asarray(labels),
                                           reduction="none")
        values = loss.numpy()
    assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()
