"""train_cifar.py's run folders, with real processes on a tiny dataset in the CIFAR format.

* Without --out, each new run gets a new folder runs/train/exp, exp2, ... and says which; two
  runs started at the same moment get different ones; --resume continues the latest.
* An --out that holds a run is refused (exit 2, one line, its files unchanged byte for byte)
  unless --resume continues it or --overwrite replaces it.
* A live run locks its folder: a second run there, with or without --resume, exits 2 naming
  the first one's PID; once the first is SIGKILLed, --resume works (the kernel dropped the
  lock; the lock file left behind blocks no one).
* --resume of a run killed before its first checkpoint says so and says how to start afresh.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mini_iformer.data.testing import write_cifar_batches
from mini_iformer.training import cli, load_training_state, runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 384)
    images = rng.integers(0, 256, (384, 32, 32, 3), dtype=np.uint8)
    write_cifar_batches(root, images, labels, test_size=64)
    return root


def _argv(cifar_dir: Path, *extra: str, subset: int = 32) -> list[str]:
    """A run of one step per epoch (``subset`` 32) on the tiny model."""
    return ["--model", "iformer_cifar_tiny", "--data-dir", str(cifar_dir), "--no-verify",
            "--no-download", "--batch-size", "32", "--subset", str(subset), "--test-subset",
            "32", "--workers", "1", "--no-progress", *extra]


def _start(cwd: Path, argv: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / "train_cifar.py"), *argv], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _run(cwd: Path, argv: list[str]) -> tuple[int, str]:
    proc = _start(cwd, argv)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _refused(result: tuple[int, str], *parts: str) -> str:
    """The one error line of a refused run, checked to hold every one of ``parts``."""
    code, err = result
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def test_default_runs_get_numbered_folders_and_resume_takes_the_latest(cifar_dir, tmp_path):
    argv = _argv(cifar_dir, "--epochs", "1")
    _refused(_run(tmp_path, [*argv, "--resume"]), "no run to resume under runs/train")
    assert not (tmp_path / "runs").exists()  # nothing created

    pair = [_start(tmp_path, argv) for _ in range(2)]  # started at the same moment
    results = [(p.communicate(timeout=300)[1], p.returncode, p.pid) for p in pair]
    chosen = []
    for err, code, pid in results:
        assert code == 0, err
        folder = err.split("run folder: ", 1)[1].split()[0]
        chosen.append(folder)
        out = tmp_path / folder
        assert (out / "last.npz").is_file() and _config(out)["out"] == folder
        assert (out / runs.LOCK_NAME).read_text().strip() == str(pid)  # and no one else's
    assert sorted(chosen) == ["runs/train/exp", "runs/train/exp2"]
    exp = tmp_path / "runs" / "train" / "exp"
    before = _files(exp)

    code, err = _run(tmp_path, argv)
    assert code == 0 and "run folder: runs/train/exp3" in err, err
    code, err = _run(tmp_path, [*argv, "--resume"])
    assert code == 0, err
    assert "resuming runs/train/exp3/last.npz (the latest run under runs/train)" in err
    other = tmp_path / "other.npz"  # not a run's last.npz: continued in a new folder
    other.write_bytes((exp / "last.npz").read_bytes())
    code, err = _run(tmp_path, [*argv, "--resume", str(other)])
    assert code == 0 and "run folder: runs/train/exp4" in err, err
    assert _files(exp) == before


def test_numbered_folders_are_claimed_atomically(tmp_path):
    got, barrier = [], threading.Barrier(8)

    def claim_one() -> None:
        barrier.wait()
        got.append(runs.new_numbered_folder(tmp_path).name)

    threads = [threading.Thread(target=claim_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(["exp", *(f"exp{n}" for n in range(2, 9))])
    (tmp_path / "exp2" / runs.LOCK_NAME).write_text("123\n")  # a lock file is not a run
    (tmp_path / "exp5" / "metrics.csv").write_text("epoch\n")
    assert not runs.holds_run(tmp_path / "exp2") and runs.latest_run(tmp_path).name == "exp5"


def test_an_out_holding_a_run_is_refused_unless_resumed_or_overwritten(cifar_dir, tmp_path):
    out = tmp_path / "run"
    argv = _argv(cifar_dir, "--epochs", "1", "--out", str(out))
    code, err = _run(tmp_path, argv)
    assert code == 0 and f"run folder: {out}" in err, err
    (out / "notes.txt").write_text("mine\n")  # not a run's file: kept, even by --overwrite
    (out / ".last.npz.0123456789ab.tmp").write_bytes(b"a killed write")
    before = _files(out)

    _refused(_run(tmp_path, argv), str(out), "already holds a run", "add --resume to continue "
             "it or --overwrite to replace it")
    other = tmp_path / "other.npz"
    other.write_bytes((out / "last.npz").read_bytes())
    _refused(_run(tmp_path, [*argv, "--resume", str(other)]), "--overwrite")
    _refused(_run(tmp_path, [*argv, "--resume", "--overwrite"]), "give one of them")
    assert _files(out) == before

    code, err = _run(tmp_path, [*argv, "--overwrite", "--seed", "1"])
    assert code == 0 and f"run folder: {out} (replacing the run it held" in err, err
    assert (out / "notes.txt").read_text() == "mine\n"
    assert not list(out.glob(".*.tmp"))
    assert _config(out)["seed"] == 1
    assert load_training_state(out / "last.npz")[1]["config"]["seed"] == 1
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # header and one epoch


def _wait_for(proc, path, timeout=120):
    """Until ``path`` exists, while ``proc`` runs (its stderr if it ends first)."""
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1]
        time.sleep(0.005)


def test_a_live_run_locks_its_folder_until_it_is_killed(cifar_dir, tmp_path):
    argv = _argv(cifar_dir, "--epochs", "4", "--save-every", "1")
    exp = tmp_path / "runs" / "train" / "exp"
    first = _start(tmp_path, argv)
    try:
        _wait_for(first, exp / "last.npz")
        first.send_signal(signal.SIGSTOP)  # alive, holding the lock, using no CPU
        holder = f"PID {first.pid}"
        for extra in (["--out", str(exp)], ["--out", str(exp), "--resume"], ["--resume"],
                      ["--out", str(exp), "--overwrite"]):
            _refused(_run(tmp_path, [*argv, *extra]), "is in use by another run", holder)
    finally:
        first.kill()  # SIGKILL: the kernel releases the lock
        first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert (exp / runs.LOCK_NAME).read_text().strip() == str(first.pid)  # left behind
    code, err = _run(tmp_path, [*argv, "--resume", "runs/train/exp/last.npz"])
    assert code == 0 and "resuming runs/train/exp/last.npz: epoch" in err, err
    assert "run folder" not in err  # it continues there
    assert len((exp / "metrics.csv").read_text().splitlines()) == 1 + 4


def test_resuming_a_run_killed_before_its_first_checkpoint_says_how_to_start_afresh(
        cifar_dir, tmp_path):
    out = tmp_path / "early"
    argv = _argv(cifar_dir, "--epochs", "1", "--out", str(out), "--save-every", "1000",
                 subset=96)
    proc = _start(tmp_path, argv)
    try:
        _wait_for(proc, out / "config.json")
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert not (out / "last.npz").exists()  # three steps and an evaluation to go
    _refused(_run(tmp_path, [*argv, "--resume"]), f"no checkpoint at {out / 'last.npz'}",
             f"--out {out} --overwrite")
    _refused(_run(tmp_path, argv), "already holds a run", "--overwrite")
    code, err = _run(tmp_path, [*argv, "--overwrite"])
    assert code == 0 and (out / "last.npz").is_file(), err


def test_without_file_locks_the_command_line_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(runs, "fcntl", None)
    assert cli.main(["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "POSIX" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
