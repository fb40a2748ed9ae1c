"""The package's layering: no import cycles, no private names taken across modules, short modules.

Read from the source with ``ast`` (nothing is imported), so an import inside a function counts
as much as one at the top, and importing ``a.b.c`` counts as importing the packages ``a.b`` and
``a`` too (Python runs their ``__init__`` first). Imports under ``if TYPE_CHECKING:`` count
as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mini_iformer"
#: A module longer than this is split by what a reader looks for.
MAX_LINES = 520


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import of the package's own."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in modules:  # ``from . import backend``: the module itself
                    out.append((full, "", node.lineno))
                else:
                    out.append((source, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((alias.name, "", node.lineno) for alias in node.names)
    return [entry for entry in out if entry[0].split(".")[0] == "mini_iformer"]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(name, path, modules):
            parts = target.split(".")
            for k in range(2, len(parts) + 1):  # a.b.c runs a.b's __init__ first
                step = ".".join(parts[:k])
                if step in modules and step != name and not name.startswith(step + "."):
                    graph[name].add(step)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    taken = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name} from {source}"
        for module, path in modules.items()
        for source, name, line in _imports(module, path, modules)
        if name.startswith("_") and not name.startswith("__") and source != module
    ]
    assert taken == []


def test_modules_are_short():
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
