"""The GPU benchmark script works end to end: its --smoke mode runs every row on the CPU
(NumPy and PyTorch CPU, tiny sizes) and writes the JSON the README's table is made from.
Nothing here judges speed."""

from __future__ import annotations

import json
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
