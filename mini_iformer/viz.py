"""``draw_graph(tensor)``: the computational graph behind a tensor, as Graphviz dot text.

    >>> from mini_iformer.viz import draw_graph
    >>> a = mi.tensor([1.0, 2.0], requires_grad=True)
    >>> b = mi.tensor([3.0, 4.0], requires_grad=True)
    >>> y = (a * b + a).sum()
    >>> print(draw_graph(y, names={a: "a", b: "b", y: "y"}))

The graph is the one :meth:`Tensor.backward` walks, drawn in the direction data flows. It has
two kinds of node:

* a **tensor** (a box): its name when one is known, its shape and dtype, and whether it is a
  leaf that requires a gradient (filled blue), a leaf that needs none (a constant: white), or
  an intermediate result (rounded corners); the tensor passed in is filled green;
* an **operation** (a grey ellipse): the ``name`` of its :class:`~mini_iformer.Function`,
  such as ``mul`` or ``conv2d``.

Edges go from each input tensor to the operation that used it, and from the operation to its
output. A tensor used several times (``a`` above) is one node with several outgoing edges, and
an operation that takes the same tensor twice (``v * v``) has two edges from it. Inputs that
were Python numbers or raw arrays are not recorded by the engine, so they are not drawn.

The walk is iterative (a breadth-first search from the output), so graphs of any depth work,
and node ids (``t0, t1, ...`` for tensors, ``op0, op1, ...`` for operations) are given in the
order the walk meets them: the same graph always gives the same text.

Draw before calling ``backward()``: backward frees the graph (unless ``retain_graph=True``), so
afterwards the last operation is drawn with the note "freed by backward" and nothing behind it.

Pictures need Graphviz (the ``dot`` program), which is optional. ``draw_graph(y, "graph")``
always writes ``graph.dot``; with Graphviz installed it also writes ``graph.png`` (or the
format asked for); without it, it warns and stops at the ``.dot`` file, unless an image format
was asked for explicitly, which then raises. Any ``.dot`` file can also be rendered later with
``dot -Tpng graph.dot -o graph.png`` or pasted into an online Graphviz viewer. In Jupyter the
returned :class:`DotGraph` shows as a picture when Graphviz is installed, else as its text.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .autograd import Function, Tensor

__all__ = ["draw_graph", "DotGraph"]

#: Tensors with at most this many elements have their values drawn when ``show_values=True``.
MAX_SHOWN_VALUES = 16

_TENSOR_STYLE = {
    "output": 'shape=box, style=filled, fillcolor="palegreen"',
    "grad_leaf": 'shape=box, style=filled, fillcolor="lightblue"',
    "constant": "shape=box",
    "intermediate": "shape=box, style=rounded",
}
_OP_STYLE = 'shape=ellipse, style=filled, fillcolor="lightgrey"'


class DotGraph(str):
    """Graphviz dot text (a ``str``), which Jupyter displays as a picture.

    ``print(graph)`` shows the text. In a notebook, a cell ending with the graph shows an SVG
    drawing when Graphviz's ``dot`` is on the PATH, and the text otherwise.
    """

    def save(self, path: str | Path, format: str | None = None) -> list[Path]:
        """Write the dot text to ``path`` with suffix ``.dot`` and, with Graphviz, render it.

        The image format is ``format`` if given, else the suffix of ``path`` (``"g.svg"``
        gives ``g.dot`` and ``g.svg``), else ``"png"``; ``format="dot"`` writes the text only.
        When Graphviz is missing, an image format asked for (by ``format`` or by the suffix)
        raises ``RuntimeError`` after the ``.dot`` file is written; the default ``png`` only
        warns. Returns the paths written, the ``.dot`` file first.
        """
        path = Path(path)
        suffix = path.suffix[1:].lower()
        if suffix == "dot":
            suffix = ""
        if format is not None:
            format = format.lower().lstrip(".")  # noqa: A001 - Graphviz's -T format, by name
            if not format or not format.replace(":", "").isalnum():
                raise ValueError(
                    f"format must be a Graphviz output format such as 'png', got {format!r}"
                )
            if suffix and suffix != format:
                raise ValueError(
                    f"the path {str(path)!r} ends in .{suffix} but format={format!r}; "
                    "give one or make them agree"
                )
        explicit = format is not None or bool(suffix)
        fmt = format or suffix or "png"

        dot_path = path.with_suffix(".dot")
        dot_path.write_text(str(self) + "\n", encoding="utf-8")
        written = [dot_path]
        if fmt == "dot":
            return written

        image_path = path.with_suffix("." + fmt.split(":")[0])
        dot_exe = shutil.which("dot")
        if dot_exe is None:
            message = (
                f"Graphviz's 'dot' program is not on the PATH, so {image_path} was not drawn; "
                f"the graph is in {dot_path}. Install Graphviz (e.g. 'apt install graphviz' or "
                "'conda install graphviz') or render the .dot file elsewhere."
            )
            if explicit:
                raise RuntimeError(message)
            warnings.warn(message, stacklevel=2)
            return written
        result = subprocess.run(
            [dot_exe, f"-T{fmt}", str(dot_path), "-o", str(image_path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"Graphviz failed to render {dot_path} as {fmt} into {image_path} "
                f"(exit status {result.returncode}): {result.stderr.strip()}"
            )
        written.append(image_path)
        return written

    def _repr_svg_(self) -> str | None:
        """The drawing as SVG for Jupyter, or ``None`` (show the text) without Graphviz."""
        dot_exe = shutil.which("dot")
        if dot_exe is None:
            return None
        result = subprocess.run([dot_exe, "-Tsvg"], input=str(self), capture_output=True, text=True)
        return result.stdout if result.returncode == 0 else None

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))  # the text itself, not a one-line quoted string


def draw_graph(
    tensor: Tensor,
    path: str | Path | None = None,
    *,
    format: str | None = None,
    names: Mapping[Any, Any] | Iterable[tuple[str, Tensor]] | None = None,
    show_values: bool = False,
) -> DotGraph:
    """The graph that produced ``tensor``, as dot text; also written to ``path`` if given.

    Parameters
    ----------
    tensor : Tensor
        The output to start from (often a loss).
    path : str or Path, optional
        Where to write: ``path`` with suffix ``.dot``, and an image next to it when Graphviz
        is installed (see :meth:`DotGraph.save` for ``format`` and what happens without it).
    format : str, optional
        Graphviz output format for the image: ``"png"`` (default), ``"svg"``, ``"pdf"``...
    names : mapping or iterable of pairs, optional
        Labels for tensors, as ``{tensor: "w"}``, ``{"w": tensor}`` or ``(name, tensor)``
        pairs, so ``model.named_parameters()`` names every weight of a model.
    show_values : bool
        Also print the values of tensors with at most ``MAX_SHOWN_VALUES`` elements.

    Returns
    -------
    DotGraph
        The dot text: a ``str`` that Jupyter shows as a picture when Graphviz is installed.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph() expects a mini_iformer Tensor, got {_type_name(tensor)}")
    known = _names_by_id(names)

    ids: dict[int, str] = {}  # id(tensor or function) -> node id
    keep: list[Any] = []  # keeps every object alive while its id() is in use
    counts = {"t": 0, "op": 0}
    nodes: list[str] = []
    edges: list[str] = []

    def node_id(obj: Any, prefix: str) -> tuple[str, bool]:
        """The node id of ``obj``, and whether it was just assigned (first meeting)."""
        key = id(obj)
        if key in ids:
            return ids[key], False
        ids[key] = f"{prefix}{counts[prefix]}"
        counts[prefix] += 1
        keep.append(obj)
        return ids[key], True

    queue: deque[Tensor] = deque([tensor])
    node_id(tensor, "t")
    while queue:
        t = queue.popleft()
        tid = ids[id(t)]
        nodes.append(
            f'{tid} [label="{_tensor_label(t, known, show_values)}", '
            f"{_TENSOR_STYLE[_tensor_kind(t, t is tensor)]}];"
        )
        fn = t._ctx
        if fn is None:
            continue
        fid, new = node_id(fn, "op")
        if new:
            nodes.append(f'{fid} [label="{_op_label(fn)}", {_OP_STYLE}];')
            for inp in fn.inputs:
                if inp is None:  # a Python number or raw array: not recorded
                    continue
                iid, first = node_id(inp, "t")
                if first:
                    queue.append(inp)
                edges.append(f"{iid} -> {fid};")
        edges.append(f"{fid} -> {tid};")

    lines = [
        "digraph autograd {",
        '  node [fontname="Helvetica", fontsize=11];',
        "  edge [arrowsize=0.7];",
        *("  " + line for line in nodes),
        *("  " + line for line in edges),
        "}",
    ]
    graph = DotGraph("\n".join(lines))
    if path is not None:
        graph.save(path, format)
    elif format is not None:
        raise ValueError("format= only applies when a path is given")
    return graph


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------
def _escape(text: str) -> str:
    """``text`` made safe inside a double-quoted dot string (one line per input line)."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return "\\n".join(text.splitlines()) if text else ""


def _label(lines: list[str]) -> str:
    return "\\n".join(_escape(line) for line in lines if line)


def _tensor_kind(t: Tensor, is_output: bool) -> str:
    if is_output:
        return "output"
    if t._ctx is not None:
        return "intermediate"
    return "grad_leaf" if t.requires_grad else "constant"


def _tensor_label(t: Tensor, known: dict[int, str], show_values: bool) -> str:
    lines = [known.get(id(t), ""), f"{t.shape} {t.dtype}"]
    if t._ctx is None:
        lines.append("leaf, requires grad" if t.requires_grad else "leaf, no grad")
    elif t._retains_grad:
        lines.append("retains grad")
    if show_values and t.size <= MAX_SHOWN_VALUES:
        lines.append(np.array2string(t.numpy(), precision=4, separator=", "))
    return _label(lines)


def _op_label(fn: Function) -> str:
    name = fn.name
    if name == Function.name:  # a subclass that did not set its own name
        name = type(fn).__name__
    return _label([name, "(freed by backward)" if fn._freed else ""])


def _names_by_id(names: Any) -> dict[int, str]:
    """``{id(tensor): name}`` from any of the forms ``draw_graph`` accepts."""
    if names is None:
        return {}
    pairs = names.items() if isinstance(names, Mapping) else names
    known: dict[int, str] = {}
    for pair in pairs:
        try:
            first, second = pair
        except (TypeError, ValueError):
            raise TypeError(
                "names must map tensors to names ({tensor: 'w'} or {'w': tensor}) or be "
                f"(name, tensor) pairs; got an item of type {_type_name(pair)}"
            ) from None
        if isinstance(first, Tensor) and isinstance(second, str):
            known[id(first)] = second
        elif isinstance(first, str) and isinstance(second, Tensor):
            known[id(second)] = first
        else:
            raise TypeError(
                "names must pair each tensor with a str name; got "
                f"({_type_name(first)}, {_type_name(second)})"
            )
    return known


def _type_name(x: Any) -> str:
    cls = type(x)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
