"""Every lesson notebook runs top to bottom: a lesson that errors fails the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))


def test_the_lessons_are_there():
    assert NOTEBOOKS, f"no lessons found in {LESSONS}"
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(numbers) + 1)), f"lessons are not numbered 01, 02, ...: {numbers}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_runs_top_to_bottom(notebook, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # The kernel runs on NumPy whatever the test session selected.
    monkeypatch.delenv("MINI_IFORMER_BACKEND", raising=False)
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(LESSONS)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    assert os.environ.get("MINI_IFORMER_BACKEND") is None
