"""Build the course: the learner's notebooks from the solutions, both executed and saved.

Each lesson is written once, with its answers, as ``solutions/NN_name.ipynb``. Inside a code
cell, the answer to an exercise sits between two marker lines (nbgrader's convention)::

    def matmul_backward(a, b, grad):
        ### BEGIN SOLUTION
        return grad @ b.T, a.T @ grad
        ### END SOLUTION

and the answer to a written question, in a markdown cell, between ``<!-- BEGIN SOLUTION -->``
and ``<!-- END SOLUTION -->``. The learner's notebook ``NN_name.ipynb`` is the same notebook
with every such region replaced by a blank: ``raise NotImplementedError()`` under a
``# YOUR CODE HERE`` line (at the marker's indentation), or *Your answer here.* Nothing else
differs, so the two cannot drift apart.

    python lessons/build.py              # every lesson
    python lessons/build.py 01 05        # these lessons
    python lessons/build.py --check      # only verify, run nothing: exit 1 if out of date

Building executes each solutions notebook in its own folder (every check must pass), writes
the learner's notebook and executes it as shipped (where the only errors are the blanks'
``NotImplementedError``), and saves both with their outputs and figures, so that a reader sees
them without running anything. Each saved notebook records the SHA-256 of its code cells in its
metadata (``mini_iformer.code_sha256``); ``--check`` and the tests compare it with the code,
so a notebook edited after it was last executed is found. The kernel starts with
``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS`` set to 1 unless they are set already, so that
the lessons' timings compare like with like.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

LESSONS = Path(__file__).resolve().parent
SOLUTIONS = LESSONS / "solutions"
CODE_BEGIN, CODE_END = "### BEGIN SOLUTION", "### END SOLUTION"
TEXT_BEGIN, TEXT_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
CODE_BLANK = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_BLANK = "*Your answer here.*"
TIMEOUT_S = 600


def _blank(source: str, begin: str, end: str, blank: str, where: str) -> tuple[str, int]:
    """``source`` with each ``begin``..``end`` region replaced by ``blank`` (indented as the
    ``begin`` line), and the number of regions."""
    out: list[str] = []
    regions, inside = 0, False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise ValueError(f"{where}: {begin!r} inside another solution")
            inside, regions = True, regions + 1
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + b for b in blank.split("\n"))
        elif stripped == end:
            if not inside:
                raise ValueError(f"{where}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {begin!r} without {end!r}")
    return "\n".join(out), regions


def blank_cell(cell: dict[str, Any], where: str = "cell") -> tuple[str, int]:
    """The learner's source of one cell, and how many answers were blanked in it."""
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    if cell["cell_type"] == "code":
        return _blank(source, CODE_BEGIN, CODE_END, CODE_BLANK, where)
    if cell["cell_type"] == "markdown":
        return _blank(source, TEXT_BEGIN, TEXT_END, TEXT_BLANK, where)
    return source, 0


def learner_version(solution: Any) -> Any:
    """The learner's notebook: ``solution`` with every answer blanked and no outputs."""
    nb = copy.deepcopy(solution)
    for i, cell in enumerate(nb.cells):
        cell.source = blank_cell(cell, f"cell {i}")[0]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("mini_iformer", None)
    return nb


def count_exercises(solution: Any) -> tuple[int, int]:
    """(code answers, written answers) in a solutions notebook."""
    code = text = 0
    for i, cell in enumerate(solution.cells):
        n = blank_cell(cell, f"cell {i}")[1]
        if cell.cell_type == "code":
            code += n
        else:
            text += n
    return code, text


def code_hash(nb: Any) -> str:
    """SHA-256 of the notebook's code cells, in order (what an execution depends on)."""
    sources = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb.cells
        if c.cell_type == "code"
    ]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def stale(nb: Any) -> list[str]:
    """Why a saved notebook does not show a run of its current code (empty when it does)."""
    reasons = []
    recorded = nb.metadata.get("mini_iformer", {}).get("code_sha256")
    if recorded != code_hash(nb):
        reasons.append("its code changed after it was last executed")
    unrun = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and not c.execution_count]
    if unrun:
        reasons.append(f"code cells {unrun} hold no execution")
    return reasons


def execute(nb: Any, folder: Path, allow_errors: bool) -> Any:
    """Run ``nb`` in a fresh kernel started in ``folder``; record the code's hash."""
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: os.environ.get(k) or v for k, v in env.items()})
    try:
        client = NotebookClient(
            nb,
            timeout=TIMEOUT_S,
            kernel_name="python3",
            allow_errors=allow_errors,
            record_timing=False,
            resources={"metadata": {"path": str(folder)}},
        )
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    nb.metadata["mini_iformer"] = {"code_sha256": code_hash(nb)}
    return nb


def errors(nb: Any) -> list[tuple[int, str, str]]:
    """(cell index, exception name, message) of every error a run left in ``nb``."""
    return [
        (i, out.get("ename", ""), out.get("evalue", ""))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def lessons(selected: list[str]) -> list[Path]:
    """The solutions notebooks, all of them or those whose number is in ``selected``."""
    found = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    if selected:
        found = [p for p in found if p.name[:2] in {s.zfill(2) for s in selected}]
    return found


def build(solution_path: Path) -> None:
    solution = nbformat.read(solution_path, as_version=4)
    print(f"{solution_path.name}: running the solutions", flush=True)
    execute(solution, SOLUTIONS, allow_errors=False)
    nbformat.write(solution, solution_path)
    learner = learner_version(solution)
    print(f"{solution_path.name}: running the learner's notebook as shipped", flush=True)
    execute(learner, LESSONS, allow_errors=True)
    unexpected = [e for e in errors(learner) if e[1] != "NotImplementedError"]
    if unexpected:
        raise SystemExit(
            f"{solution_path.name}: as shipped, errors other than the blanks: {unexpected}"
        )
    nbformat.write(learner, LESSONS / solution_path.name)


def check(solution_path: Path) -> list[str]:
    """What is out of date for one lesson (empty when nothing is)."""
    problems = []
    solution = nbformat.read(solution_path, as_version=4)
    learner_path = LESSONS / solution_path.name
    if not learner_path.exists():
        return [f"{learner_path.name} is missing"]
    learner = nbformat.read(learner_path, as_version=4)
    for name, nb in ((f"solutions/{solution_path.name}", solution), (learner_path.name, learner)):
        problems += [f"{name}: {r}" for r in stale(nb)]
    expected = [blank_cell(c)[0] for c in solution.cells]
    shipped = ["".join(c.source) if isinstance(c.source, list) else c.source for c in learner.cells]
    if expected != shipped:
        problems.append(
            f"{learner_path.name} is not its solutions notebook with the answers blanked"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    parser.add_argument("--check", action="store_true", help="verify only; run nothing")
    args = parser.parse_args(argv)
    paths = lessons(args.lessons)
    if not paths:
        print(f"no lessons found in {SOLUTIONS} for {args.lessons}", file=sys.stderr)
        return 2
    if args.check:
        problems = [p for path in paths for p in check(path)]
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    for path in paths:
        build(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
