"""draw_graph: the dot text of a known graph, names, escaping, determinism and the files it writes."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections import Counter

import numpy as np
import pytest

import mini_iformer as mi
from mini_iformer.viz import DotGraph, draw_graph

NODE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', re.MULTILINE)
EDGE = re.compile(r"^\s*(\w+) -> (\w+);", re.MULTILINE)


def parse(dot: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """``({node id: label}, [(tail, head), ...])`` from the dot text."""
    nodes = dict(NODE.findall(dot))
    assert len(nodes) == len(NODE.findall(dot)), "a node is declared twice"
    return nodes, EDGE.findall(dot)


def small_graph():
    """``y = (a * b + a).sum()``, with ``a`` used twice."""
    a = mi.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)  # float64
    b = mi.tensor([4.0, 5.0, 6.0], requires_grad=True)           # float32
    y = (a * b + a).sum()
    return a, b, y


def ops_of(nodes):
    return {k: v for k, v in nodes.items() if k.startswith("op")}


def test_a_known_graph_has_its_ops_tensors_and_edges():
    a, b, y = small_graph()
    dot = draw_graph(y, names={a: "a", b: "b"})
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    nodes, edges = parse(dot)

    assert sorted(ops_of(nodes).values()) == ["add", "mul", "sum"]
    tensors = {k: v for k, v in nodes.items() if k.startswith("t")}
    assert len(tensors) == 5                     # y, a*b+a, a*b, a, b
    assert len(nodes) == 8
    assert len(edges) == 8                       # 5 from inputs to ops, 3 from ops to outputs
    assert all(tail in nodes and head in nodes for tail, head in edges)

    by_label = {v.split("\\n")[0]: k for k, v in tensors.items()}
    a_id, b_id = by_label["a"], by_label["b"]
    out_edges = Counter(tail for tail, _ in edges)
    in_edges = Counter(head for _, head in edges)
    assert out_edges[a_id] == 2                  # a is one node, used by mul and by add
    assert {nodes[head] for tail, head in edges if tail == a_id} == {"mul", "add"}
    assert out_edges[b_id] == 1 and in_edges[a_id] == in_edges[b_id] == 0
    # Data flows from the leaves to the output: the output has an in-edge and no out-edge.
    assert out_edges["t0"] == 0 and in_edges["t0"] == 1
    # Every op has exactly one output edge.
    assert all(out_edges[op] == 1 for op in ops_of(nodes))


def test_labels_give_shape_dtype_and_kind():
    a, b, y = small_graph()
    nodes, _ = parse(draw_graph(y, names={a: "a", b: "b"}))
    labels = list(nodes.values())
    assert "a\\n(3,) float64\\nleaf, requires grad" in labels
    assert "b\\n(3,) float32\\nleaf, requires grad" in labels
    assert nodes["t0"] == "() float64"           # the output: float32 * float64 promotes
    const = mi.tensor([1.0, 2.0, 3.0])
    nodes, _ = parse(draw_graph(b * const))
    assert "(3,) float32\\nleaf, no grad" in nodes.values()


def test_names_in_every_accepted_form():
    a, b, y = small_graph()
    forms = [{a: "a", b: "b", y: "loss"}, {"a": a, "b": b, "loss": y}, [("a", a), ("b", b), ("loss", y)]]
    for names in forms:
        nodes, _ = parse(draw_graph(y, names=names))
        firsts = {v.split("\\n")[0] for v in nodes.values()}
        assert {"a", "b", "loss"} <= firsts, names
    with pytest.raises(TypeError, match="str name"):
        draw_graph(y, names={a: 3})


def test_model_parameters_are_named():
    layer = mi.nn.Linear(3, 2)
    out = layer(mi.tensor(np.ones((4, 3), np.float32))).sum()
    nodes, _ = parse(draw_graph(out, names=layer.named_parameters()))
    firsts = {v.split("\\n")[0] for v in nodes.values()}
    assert {"weight", "bias"} <= firsts


def test_a_leaf_alone_is_one_node():
    x = mi.tensor([[1.0, 2.0]], requires_grad=True)
    nodes, edges = parse(draw_graph(x))
    assert nodes == {"t0": "(1, 2) float32\\nleaf, requires grad"} and edges == []


def test_the_same_graph_gives_the_same_text():
    a, b, y = small_graph()
    first = draw_graph(y, names={a: "a"}, show_values=True)
    assert draw_graph(y, names={a: "a"}, show_values=True) == first
    a2, b2, y2 = small_graph()                   # new objects, same structure
    assert draw_graph(y2, names={a2: "a"}, show_values=True) == first
    assert "0x" not in first                     # no memory addresses


def test_quotes_backslashes_and_newlines_are_escaped():
    a, b, y = small_graph()
    dot = draw_graph(y, names={a: 'say "hi"\\', b: "two\nlines"})
    assert 'label="say \\"hi\\"\\\\\\n(3,) float64' in dot
    assert 'label="two\\nlines\\n(3,) float32' in dot
    nodes, _ = parse(dot)
    assert len(nodes) == 8                       # the quotes did not end a label early


def test_show_values_prints_small_tensors_only():
    a = mi.tensor(np.array([1.5, -2.0]), requires_grad=True)
    big = mi.tensor(np.zeros((50, 2)))
    nodes, _ = parse(draw_graph(a * 2.0 + big, show_values=True))
    assert any(v.endswith("[ 1.5, -2. ]") for v in nodes.values())
    assert not any("0., 0." in v for v in nodes.values())


def test_a_graph_freed_by_backward_says_so():
    a, b, y = small_graph()
    y.backward()
    nodes, edges = parse(draw_graph(y))
    assert nodes["op0"] == "sum\\n(freed by backward)" and len(nodes) == 2 and len(edges) == 1


def test_a_deep_graph_needs_no_recursion():
    x = mi.tensor(np.array(0.5), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0001
    nodes, edges = parse(draw_graph(y))
    assert len(nodes) == 6001 and len(edges) == 6000


def test_not_a_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="numpy.ndarray"):
        draw_graph(np.ones(3))
    with pytest.raises(TypeError, match="got list"):
        draw_graph([1.0, 2.0])


def test_the_result_is_a_str_for_print_and_jupyter():
    _, _, y = small_graph()
    dot = draw_graph(y)
    assert isinstance(dot, DotGraph) and isinstance(dot, str)
    assert str(dot) == dot and str(dot).startswith("digraph autograd {")


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def test_a_path_writes_the_dot_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-graphviz-here"))
    _, _, y = small_graph()
    with pytest.warns(UserWarning, match="Graphviz"):
        dot = draw_graph(y, tmp_path / "graph")
    assert (tmp_path / "graph.dot").read_text(encoding="utf-8") == dot + "\n"
    assert not (tmp_path / "graph.png").exists()
    assert DotGraph(dot).save(tmp_path / "only", format="dot") == [tmp_path / "only.dot"]


def test_an_image_asked_for_without_graphviz_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-graphviz-here"))
    _, _, y = small_graph()
    with pytest.raises(RuntimeError, match=r"not on the PATH.*graph\.svg"):
        draw_graph(y, tmp_path / "graph", format="svg")
    assert (tmp_path / "graph.dot").exists()     # the text is written all the same
    with pytest.raises(RuntimeError, match="not on the PATH"):
        draw_graph(y, tmp_path / "other.pdf")
    with pytest.raises(ValueError, match="format"):
        draw_graph(y, tmp_path / "g.svg", format="png")


def fake_dot(folder, script):
    """A stand-in ``dot`` executable in ``folder``, to check how Graphviz is called."""
    folder.mkdir()
    exe = folder / "dot"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.skipif(os.name != "posix", reason="the stand-in dot is a shell script")
def test_graphviz_is_called_on_the_dot_file(tmp_path, monkeypatch):
    # Writes its command line, "-Tsvg <in> -o <out>", into the output file.
    bin_dir = fake_dot(tmp_path / "bin", 'echo "$@" > "$4"\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    _, _, y = small_graph()
    written = draw_graph(y, tmp_path / "graph", format="svg")  # no warning: warnings are errors
    assert written.startswith("digraph")
    image = tmp_path / "graph.svg"
    assert image.read_text().split() == ["-Tsvg", str(tmp_path / "graph.dot"), "-o", str(image)]


@pytest.mark.skipif(os.name != "posix", reason="the stand-in dot is a shell script")
def test_a_graphviz_failure_names_the_file(tmp_path, monkeypatch):
    bin_dir = fake_dot(tmp_path / "bin", 'echo "syntax error in line 3" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    _, _, y = small_graph()
    with pytest.raises(RuntimeError, match=r"graph\.dot.*exit status 1.*syntax error in line 3"):
        draw_graph(y, tmp_path / "graph")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (the dot program) is not installed")
def test_graphviz_renders_an_image(tmp_path):
    a, b, y = small_graph()
    draw_graph(y, tmp_path / "graph", names={a: "a", b: "b"})
    png = (tmp_path / "graph.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    svg = draw_graph(y)._repr_svg_()
    assert "<svg" in svg and ">mul<" in svg
