"""The course: every lesson runs both ways, and what is committed is what a run shows.

Each lesson is ``lessons/solutions/NN_name.ipynb`` (with the answers) and ``lessons/NN_name.ipynb``
(the learner's: the same with every answer blanked, made by ``lessons/build.py``). Here:

* the solutions run top to bottom and every check in them passes;
* the learner's notebook, run as shipped, fails only at its blanks (``NotImplementedError``),
  and it is exactly the solutions notebook with the answers blanked;
* each lesson has at least two exercises where the learner writes code;
* both notebooks were saved executed, after their last code change (a hash of the code cells
  recorded at execution), so a reader sees every output without running anything;
* the course speaks only of the repository and uses public names only, and timings are taken
  with BLAS threads fixed.

No test compares an output's text: outputs (numbers, timings, figures) differ between machines.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
SOLUTIONS = sorted((LESSONS / "solutions").glob("[0-9][0-9]_*.ipynb"))
SHIPPED = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
MIN_LESSONS, MIN_EXERCISES, MIN_WITH_PICTURES = 11, 2, 8


def _build():
    spec = importlib.util.spec_from_file_location("lessons_build", LESSONS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build()


def _read(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_the_course_is_there_and_numbered():
    numbers = [int(p.name[:2]) for p in SOLUTIONS]
    assert numbers == list(range(1, len(numbers) + 1)), f"lessons not numbered 01, 02, ...: {numbers}"
    assert len(numbers) >= MIN_LESSONS
    assert [p.name for p in SHIPPED] == [p.name for p in SOLUTIONS], "a lesson lacks one of its two notebooks"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_the_solutions_run_and_every_check_passes(solution):
    nb = build.execute(_read(solution), solution.parent, allow_errors=False)
    assert build.errors(nb) == []


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_as_shipped_the_only_errors_are_the_blanks(solution):
    shipped = _read(LESSONS / solution.name)
    nb = build.execute(shipped, LESSONS, allow_errors=True)
    failures = build.errors(nb)
    assert failures, "the learner's notebook ran without reaching a blank"
    assert {name for _, name, _ in failures} == {"NotImplementedError"}, failures


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_the_learners_notebook_is_the_solutions_with_the_answers_blanked(solution):
    ours, shipped = _read(solution), _read(LESSONS / solution.name)
    assert [build.blank_cell(c)[0] for c in ours.cells] == [c.source for c in shipped.cells]
    code, _written = build.count_exercises(ours)
    assert code >= MIN_EXERCISES, f"{solution.name}: {code} exercise(s) with code to write"


@pytest.mark.parametrize("path", SOLUTIONS + SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_committed_notebooks_show_a_run_of_their_current_code(path):
    assert build.stale(_read(path)) == [], f"run: python lessons/build.py {path.name[:2]}"


def test_most_lessons_draw_pictures():
    drawn = [
        p.name
        for p in SOLUTIONS
        if any(
            "image/png" in out.get("data", {})
            for cell in _read(p).cells
            if cell.cell_type == "code"
            for out in cell.get("outputs", [])
        )
    ]
    assert len(drawn) >= MIN_WITH_PICTURES, drawn


_PRIVATE = re.compile(r"\b(?:mi|mini_iformer|F|nn|ops|data|optim)(?:\.\w+)*\._[a-z]\w*|import\s+_[a-z]")
_OUTSIDE = re.compile(r"ARCHITECTURE\.md|\.\./\.\./|\bshared/")
_TIMING = re.compile(r"perf_counter|timeit|time\.time\(")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_lessons_use_public_names_and_stay_in_the_repository(path):
    nb = _read(path)
    code = "\n".join(_code(nb))
    assert not _PRIVATE.findall(code), _PRIVATE.findall(code)
    text = "\n".join(c.source for c in nb.cells)
    assert not _OUTSIDE.findall(text), _OUTSIDE.findall(text)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_timings_are_taken_with_blas_threads_fixed(path):
    cells = _code(_read(path))
    timed = [i for i, c in enumerate(cells) if _TIMING.search(c)]
    if timed:
        fixed = [i for i, c in enumerate(cells) if "OPENBLAS_NUM_THREADS" in c]
        assert fixed and fixed[0] < timed[0], "set OPENBLAS_NUM_THREADS before importing NumPy"


def test_the_course_index_lists_every_lesson():
    index = (LESSONS / "README.md").read_text()
    readme = (LESSONS.parent / "README.md").read_text()
    for p in SOLUTIONS:
        assert p.name in index, f"lessons/README.md does not list {p.name}"
        assert p.stem in readme, f"README.md does not list {p.stem}"


def test_the_blanking_rule():
    cell = {"cell_type": "code", "source": "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"}
    assert build.blank_cell(cell) == ("def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n", 1)
    text = {"cell_type": "markdown", "source": "Why?\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->"}
    assert build.blank_cell(text) == ("Why?\n*Your answer here.*", 1)
    with pytest.raises(ValueError, match="without"):
        build.blank_cell({"cell_type": "code", "source": "### BEGIN SOLUTION\nx = 1\n"})


def test_a_notebook_edited_after_its_run_is_found(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nb.cells[0].execution_count = 1
    nb.metadata["mini_iformer"] = {"code_sha256": build.code_hash(nb)}
    assert build.stale(nb) == []
    nb.cells[0].source = "x = 2"
    assert build.stale(nb) == ["its code changed after it was last executed"]
    nb.metadata["mini_iformer"] = {"code_sha256": build.code_hash(nb)}
    nb.cells[0].execution_count = None
    assert build.stale(nb) == ["code cells [0] hold no execution"]
    assert json.dumps(nb.metadata["mini_iformer"])


def test_the_exercise_check_says_what_is_wrong(capsys):
    import numpy as np

    import mini_iformer as mi
    from mini_iformer.exercises import check, check_true, rel_error

    expected = np.arange(6.0).reshape(2, 3)
    check("same", mi.tensor(expected), expected)
    assert capsys.readouterr().out.startswith("same: OK")
    with pytest.raises(AssertionError, match=r"shape \(3, 2\), expected \(2, 3\)"):
        check("shape", expected.T, expected)
    with pytest.raises(AssertionError, match="dtype float32, expected float64"):
        check("dtype", expected.astype(np.float32), expected)
    wrong = expected.copy()
    wrong[1, 2] = 0.0
    with pytest.raises(AssertionError, match=r"1 of 6 values differ .* index \(1, 2\)"):
        check("values", wrong, expected)
    with pytest.raises(AssertionError, match="forget to return"):
        check("none", None, expected)
    with pytest.raises(AssertionError, match="flat: the hint"):
        check_true("flat", False, "the hint")
    assert rel_error(expected, expected) == 0.0 and rel_error(wrong, expected) == 1.0
