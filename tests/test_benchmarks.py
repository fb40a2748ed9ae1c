"""The GPU benchmark and verification scripts work end to end: their --smoke modes run every
row and step on the CPU (NumPy and PyTorch CPU, tiny sizes) and write what the README's tables
are made from. Nothing here judges speed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_every_row_and_writes_its_json(tmp_path):
    out = tmp_path / "smoke.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert [r["row"] for r in data["rows"]] == [
        "iformer_small train step", "iformer_small inference", "iformer_cifar train step"]
    for row in data["rows"]:
        for side in ("ours", "torch"):
            assert row[side]["ms"] > 0 and row[side]["images_per_s"] > 0
        assert abs(row["ratio"] - row["ours"]["ms"] / row["torch"]["ms"]) < 1e-9
    assert "iformer_cifar train step" in result.stdout


def test_the_pytorch_counterpart_of_iformer_cifar_has_the_same_shapes():
    """The benchmark's PyTorch iformer_cifar (reference model, stride-1 first stem conv) is
    our network: the same parameter shapes, and the same logits from the same weights."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.pop(0)
    import mini_iformer as mi

    theirs = {k: tuple(v.shape) for k, v in gpu.torch_model("iformer_cifar").state_dict().items()}
    ours = {k: tuple(v.shape)
            for k, v in mi.models.create_model("iformer_cifar").state_dict().items()}
    assert theirs == ours
    import numpy as np
    import torch

    mi.random.manual_seed(0)
    model = mi.models.create_model("iformer_cifar")
    twin = gpu.torch_model("iformer_cifar")
    twin.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    model.eval()
    twin.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with mi.no_grad(), torch.no_grad():
        np.testing.assert_allclose(model(mi.tensor(x)).numpy(), twin(torch.tensor(x)).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_the_gpu_verification_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_verify.sh")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# What the real unpacker does with cifar10_jpeg.npz (write the official batches into the folder
# it is given), done here with the package's own writer on 96 random images.
_UNPACK = """
import sys
import numpy as np
from mini_iformer.data.testing import write_cifar_batches
rng = np.random.default_rng(0)
write_cifar_batches(sys.argv[1], rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8),
                    rng.integers(0, 10, 96), test_size=32)
"""


def test_the_gpu_verification_runs_every_step_in_smoke_mode(tmp_path):
    """On the CPU (--smoke): the GPU tests are collected (and skip), the benchmark runs at toy
    sizes, and a one-epoch CIFAR run trains from the data folder; summary.txt says so."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "cifar10_jpeg.npz").write_bytes(b"")  # stands in for the real archive
    (data / "build_batches.py").write_text(_UNPACK)
    out = tmp_path / "out"
    env = dict(os.environ, GPU_VERIFY_DATA=str(data), PYTHON=sys.executable)
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_verify.sh"), str(out),
                             "--smoke"], capture_output=True, text=True, timeout=600, env=env)
    summary = (out / "summary.txt").read_text()
    assert result.returncode == 0, summary + result.stderr
    for name in ("tests", "benchmark", "cifar"):
        assert re.search(rf"^{name} +passed", summary, re.M), summary
    (written,) = out.glob("gpu_*.json")  # named for the device
    assert json.loads(written.read_text())["rows"]
    assert (out / "cifar-metrics.csv").read_text().startswith("epoch,train_loss")
    assert "python" in (out / "env.txt").read_text()


def test_the_gpu_verification_refuses_a_wrong_argument(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_verify.sh"), str(tmp_path),
                             "--fast"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
