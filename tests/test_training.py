"""train_cifar.py end to end, on a small synthetic dataset in the official CIFAR format.

* A few epochs of the tiny configuration learn (the loss goes down) and leave the promised
  files: last/best checkpoints, metrics.csv, curves.png, config.json.
* A run killed at a random point (SIGKILL, several moments), killed in the middle of writing a
  checkpoint (SIGKILL sent from inside the write, at seeded points: between two arrays, with
  the temporary complete but not yet renamed, just after the rename), or stopped with Ctrl-C
  or SIGTERM, always leaves a loadable last checkpoint, and once resumed ends with exactly the
  weights and metrics of a run never interrupted; no temporary file is left behind.
* A non-finite loss stops the run naming the step and keeps the last good checkpoint.
* Command-line mistakes exit with code 2 and one line, no traceback.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mini_iformer as mi
from mini_iformer.data.testing import write_cifar_batches
from mini_iformer.training import cli, load_training_state, save_training_state

ROOT = Path(__file__).resolve().parent.parent


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is readable from their colour and a stripe pattern, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    base = np.stack([np.full((32, 32, 3), (37 * c % 256, 91 * c % 256, 53 * c % 256))
                     for c in range(10)])
    noise = rng.normal(0, 40, (n, 32, 32, 3))
    images = np.clip(base[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    train_x, train_y = _images(320, 0)
    test_x, test_y = _images(64, 1)
    write_cifar_batches(root, np.concatenate([train_x, test_x]),
                        np.concatenate([train_y, test_y]), test_size=64)
    return root


def _args(cifar_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", "iformer_cifar_tiny", "--data-dir", str(cifar_dir), "--no-verify",
            "--no-download", "--batch-size", "32", "--lr", "3e-3", "--warmup-epochs", "0.5",
            "--workers", "2", "--no-progress", "--out", str(out), *extra]


def _weights(path: Path) -> dict[str, np.ndarray]:
    return load_training_state(path)[0]


def _metrics(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


EXACT = ["epoch", "train_loss", "train_acc1", "test_loss", "test_acc1", "test_acc5", "lr"]


def test_a_short_run_learns_and_writes_its_files(cifar_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(_args(cifar_dir, out, "--epochs", "3")) == 0
    rows = _metrics(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0]
    assert float(rows[-1]["test_acc1"]) > 20.0  # 10 classes: chance is 10%
    for name in ("last.npz", "best.npz", "config.json"):
        assert (out / name).is_file()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    weights, state = load_training_state(out / "last.npz")
    assert state["run"]["epoch"] == 3 and state["run"]["global_step"] == 3 * 10
    model = mi.create_model("iformer_cifar_tiny", checkpoint=out / "best.npz")  # weights only
    assert model.num_parameters() == 343_466


def _uninterrupted(cifar_dir: Path, tmp_path: Path, epochs: str) -> Path:
    out = tmp_path / "whole"
    assert cli.main(_args(cifar_dir, out, "--epochs", epochs, "--save-every", "3")) == 0
    return out


@pytest.fixture(scope="module")
def whole_3(cifar_dir, tmp_path_factory) -> Path:
    """A 3-epoch run never interrupted (shared by the tests that compare against it)."""
    return _uninterrupted(cifar_dir, tmp_path_factory.mktemp("whole3"), "3")


def _run(cifar_dir: Path, out: Path, *extra: str) -> subprocess.Popen:
    """Start train_cifar.py in a subprocess; its stderr goes to ``out``.stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(f"{out}.stderr", "w") as err:
        return subprocess.Popen([sys.executable, str(ROOT / "train_cifar.py"),
                                 *_args(cifar_dir, out, *extra)],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)


def _kill_after_checkpoint(proc: subprocess.Popen, last: Path, delay: float, sig: int) -> str:
    """Send ``sig`` ``delay`` seconds after the run's first checkpoint; its stderr."""
    deadline = time.time() + 120
    while not last.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError("the run ended before its first checkpoint: "
                                 + Path(f"{last.parent}.stderr").read_text())
        time.sleep(0.05)
    time.sleep(delay)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return Path(f"{last.parent}.stderr").read_text()


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a / "last.npz"), _weights(b / "last.npz")
    assert list(wa) == list(wb)
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    ra, rb = _metrics(a), _metrics(b)
    assert [{k: r[k] for k in EXACT} for r in ra] == [{k: r[k] for k in EXACT} for r in rb]


@pytest.mark.parametrize("delay", [0.0, 0.7, 1.9])
def test_a_killed_run_resumes_to_the_same_weights_and_metrics(cifar_dir, whole_3, tmp_path,
                                                             delay):
    whole = whole_3
    out = tmp_path / "killed"
    proc = _run(cifar_dir, out, "--epochs", "3", "--save-every", "3")
    _kill_after_checkpoint(proc, out / "last.npz", delay, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    _, saved = load_training_state(out / "last.npz")  # whatever the moment, a loadable state
    assert saved["run"]["global_step"] < 30
    assert cli.main(_args(cifar_dir, out, "--epochs", "3", "--save-every", "3", "--resume")) == 0
    _assert_same_run(whole, out)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_save_and_exit_cleanly_then_resume_exactly(cifar_dir, whole_3, tmp_path,
                                                                      sig, code):
    out = tmp_path / "stopped"
    proc = _run(cifar_dir, out, "--epochs", "3", "--save-every", "3")
    stderr = _kill_after_checkpoint(proc, out / "last.npz", 0.3, sig)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    assert cli.main(_args(cifar_dir, out, "--epochs", "3", "--save-every", "3", "--resume")) == 0
    _assert_same_run(whole_3, out)


# Runs train_cifar.py's main with checkpoint writing instrumented to SIGKILL the process at one
# point of the n-th save: before its k-th array ("array": the temporary is half written),
# after the temporary is complete and flushed but before the rename ("rename"), or just after
# the rename ("renamed").
_KILL_DURING_SAVE = r"""
import os, signal, sys
import numpy as np
from mini_iformer import checkpoint
from mini_iformer.training import cli

save_no, stage, k = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
count = {"save": 0, "array": 0}
real_save, real_write, real_replace = checkpoint.save, np.lib.format.write_array, os.replace

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def save(entries, path):
    count["save"] += 1
    count["array"] = 0
    return real_save(entries, path)

def write_array(*args, **kwargs):
    count["array"] += 1
    if count["save"] == save_no and stage == "array" and count["array"] == k:
        die()
    return real_write(*args, **kwargs)

def replace(src, dst):
    target = count["save"] == save_no and str(src).endswith(".tmp") and ".npz." in str(src)
    if target and stage == "rename":
        die()
    real_replace(src, dst)
    if target and stage == "renamed":
        die()

checkpoint.save, np.lib.format.write_array, os.replace = save, write_array, replace
sys.exit(cli.main(sys.argv[4:]))
"""


@pytest.mark.parametrize("seed", range(5))
def test_a_run_killed_while_writing_a_checkpoint_resumes_exactly(cifar_dir, whole_3, tmp_path,
                                                                 seed):
    rng = np.random.default_rng(seed)
    stage = ["array", "rename", "renamed"][seed % 3]
    save_no, k = int(rng.integers(2, 12)), int(rng.integers(1, 40))
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_SAVE, str(save_no), stage, str(k),
         *_args(cifar_dir, out, "--epochs", "3", "--save-every", "3")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    leftovers = list(out.glob(".*.tmp"))
    assert bool(leftovers) == (stage != "renamed"), leftovers  # it did die inside the write
    _, saved = load_training_state(out / "last.npz")  # the previous or the new file, whole
    assert 0 < saved["run"]["global_step"] < 30
    assert cli.main(_args(cifar_dir, out, "--epochs", "3", "--save-every", "3", "--resume")) == 0
    _assert_same_run(whole_3, out)
    assert not list(out.glob(".*.tmp"))  # the resumed run removed the killed run's temporary


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(
        cifar_dir, tmp_path, monkeypatch, capsys):
    from mini_iformer.training import engine

    calls = {"n": 0}
    real = engine.F.cross_entropy

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(engine.F, "cross_entropy", poisoned)
    out = tmp_path / "nan"
    assert cli.main(_args(cifar_dir, out, "--epochs", "1", "--save-every", "2")) == 1
    err = capsys.readouterr().err
    assert "the loss is nan at epoch 1, step 5" in err and "last.npz" in err
    _, state = load_training_state(out / "last.npz")
    assert state["run"]["global_step"] == 4  # the last good step, saved before the bad one


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "--lr: must be positive"),
    (["--batch-size", "0"], "--batch-size: must be positive"),
    (["--model", "iformer_huge"], "invalid choice: 'iformer_huge'"),
    (["--drop-path", "1.5"], "--drop-path: must be below 1"),
])
def test_bad_arguments_exit_2_with_one_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_data_and_bad_resume_are_user_errors(tmp_path, cifar_dir, capsys):
    assert cli.main(["--data-dir", str(tmp_path / "nowhere"), "--no-download",
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and len(err.strip().splitlines()) == 1
    assert cli.main(_args(cifar_dir, tmp_path / "fresh", "--resume")) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_eval_only_and_validate_report_the_same_accuracy(cifar_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(_args(cifar_dir, out, "--epochs", "1")) == 0
    capsys.readouterr()
    assert cli.main(_args(cifar_dir, out, "--eval-only", "--checkpoint",
                          str(out / "best.npz"))) == 0
    line = capsys.readouterr().out
    from mini_iformer import validate

    assert validate.main(["--model", "iformer_cifar_tiny", "--checkpoint", str(out / "best.npz"),
                          "--dataset", "cifar10", "--data-dir", str(cifar_dir),
                          "--no-verify"]) == 0
    other = capsys.readouterr().out
    acc = line.split("Acc@1 ")[1].split()[0]
    assert f"Acc@1 {acc}" in other
    assert float(acc) == pytest.approx(_metrics(out)[-1]["test_acc1"] and
                                       float(_metrics(out)[-1]["test_acc1"]), abs=1e-3)


def test_resuming_with_other_options_is_refused_by_name(cifar_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(_args(cifar_dir, out, "--epochs", "1", "--subset", "64")) == 0
    capsys.readouterr()
    assert cli.main(_args(cifar_dir, out, "--epochs", "2", "--subset", "64", "--seed", "3",
                          "--resume")) == 2
    err = capsys.readouterr().err
    assert "--epochs 1 (now 2)" in err and "--seed 0 (now 3)" in err and "Traceback" not in err


# -- damaged training states ------------------------------------------------------------------
_ODD_VALUES = [None, "x", -1, 0, 1.5, -2.5, True, [], {}, [1, "a"], {"a": 1}, 10**12, float("nan")]


def _paths(tree: object, path: tuple = ()) -> list[tuple]:
    """Every path to a value in a nested dict/list tree (the root excluded)."""
    found = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else []
    for key, value in items:
        found.append((*path, key))
        found.extend(_paths(value, (*path, key)))
    return found


def _mutated(tree: dict, path: tuple, action: str, value: object) -> dict:
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    if action == "delete":
        del node[path[-1]]
    elif action == "reshape" and isinstance(node[path[-1]], np.ndarray):
        node[path[-1]] = np.zeros(node[path[-1]].size + 1, node[path[-1]].dtype)
    else:
        node[path[-1]] = value
    return tree


@pytest.fixture(scope="module")
def resumable(cifar_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resumable") / "run"
    assert cli.main(_args(cifar_dir, out, "--epochs", "2", "--save-every", "4")) == 0
    return out / "last.npz"


def test_damaged_training_states_resume_or_exit_2_naming_the_file(cifar_dir, resumable,
                                                                   tmp_path_factory):
    """Valid files whose training state is wrong in one place (a key gone, a value of another
    type or sign, an array of another shape): --resume either continues or exits with code 2
    and one line naming the file; never a traceback."""
    from unittest import mock

    from hypothesis import given, settings
    from hypothesis import strategies as st


    weights, saved = load_training_state(resumable)
    paths = _paths(saved)
    examples = max(20, settings.default.max_examples // 4)

    class Resumed(Exception):
        pass

    @settings(max_examples=examples)
    @given(path=st.sampled_from(paths), action=st.sampled_from(["delete", "set", "reshape"]),
           value=st.sampled_from(_ODD_VALUES))
    def check(path, action, value):
        folder = tmp_path_factory.mktemp("damaged")
        damaged = folder / "damaged.npz"
        save_training_state(damaged, weights, _mutated(saved, path, action, value))
        argv = _args(cifar_dir, folder / "out", "--epochs", "2", "--save-every", "4",
                     "--resume", str(damaged))
        err = io.StringIO()
        with mock.patch.object(cli, "_train_epoch", side_effect=Resumed), \
                mock.patch.object(sys, "stderr", err):
            try:
                code = cli.main(argv)
            except Resumed:
                code = 0
        if code != 0:
            lines = err.getvalue().strip().splitlines()
            assert code == 2 and len(lines) == 1, err.getvalue()
            assert lines[0].startswith("error: ") and str(damaged) in lines[0], lines[0]

    check()


def test_a_run_counter_of_the_wrong_type_is_named_with_the_file(cifar_dir, resumable, tmp_path, capsys):
    weights, saved = load_training_state(resumable)
    save_training_state(tmp_path / "bad.npz", weights,
                        _mutated(saved, ("run", "global_step"), "set", "7"))
    assert cli.main(_args(cifar_dir, tmp_path / "o", "--epochs", "2", "--save-every", "4",
                          "--resume", str(tmp_path / "bad.npz"))) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --resume: {tmp_path / 'bad.npz'} cannot be resumed: RunState: "
                   "global_step must be a non-negative int, got '7'\n")


def test_start_weights_of_another_model_exit_2_with_one_line(cifar_dir, tmp_path, capsys):
    from mini_iformer import checkpoint

    checkpoint.save(mi.create_model("iformer_cifar").state_dict(), tmp_path / "other.npz")
    assert cli.main(_args(cifar_dir, tmp_path / "o", "--epochs", "1",
                          "--checkpoint", str(tmp_path / "other.npz"))) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: --checkpoint: {tmp_path / 'other.npz'} does not fit --model "
                          "iformer_cifar_tiny: ")
    assert "pos_embed1: shape (1, 16, 16, 48) in the state dict" in err and "more" in err and not (tmp_path / "o" / "last.npz").exists()
