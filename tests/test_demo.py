"""The engine demo (the README's main job until the training script exists)."""

from __future__ import annotations

import subprocess
import sys

from mini_iformer import demo


def test_demo_learns_the_spirals_and_passes_its_gradient_check(capsys):
    assert demo.main(["--steps", "1200", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    last = [line for line in out.splitlines() if line.startswith("step")][-1]
    assert float(last.split("accuracy")[1].strip().rstrip("%")) > 95.0, out
    assert "gradient check" in out


def test_demo_rejects_bad_arguments_with_exit_code_2():
    result = subprocess.run([sys.executable, "-m", "mini_iformer.demo", "--lr", "-1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--lr" in result.stderr and "Traceback" not in result.stderr
