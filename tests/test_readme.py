"""The README stays true: its quickstart runs and its two commands are where CI reads them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _block(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {marker} -->\n```\n(.+?)\n```\n<!-- /{marker} -->", text, re.S)
    assert match, f"README.md has no command between <!-- {marker} --> markers"
    return match.group(1).strip()


def test_the_two_commands_are_marked():
    assert "python -m pytest" in _block("test-command")
    assert _block("main-command").startswith("pip install")


def test_the_quickstart_runs(capsys):
    code = re.search(r"```python\n(.+?)\n```", README.read_text(), re.S)
    assert code, "README.md has no python quickstart"
    assert len(code.group(1).splitlines()) <= 12
    exec(compile(code.group(1), "README quickstart", "exec"), {})
    assert "float64" in capsys.readouterr().out
