"""The package's layout rules, read from its source (scripts/import-graph.py prints the graph):
modules never import each other in a cycle, nor a module of a higher layer (LAYERS, written
once, in the script), not even for annotations; a package import inside a function needs a
measured reason beside it, no module outgrows what one reader takes in; and the base
classes say what a subclass must implement."""

import importlib.util
from pathlib import Path

from tap_autopilot.streams.base import PageScan, ScanReader, Stream

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tap_autopilot"
MAX_LINES = 450

_spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import-graph.py")
assert _spec is not None and _spec.loader is not None
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)


def test_no_import_cycle_in_the_package():
    graph, _ = import_graph.import_graph(PACKAGE)
    assert "tap_autopilot.cli" in graph and "tap_autopilot.sandbox.server" in graph  # it read the package
    assert import_graph.cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert import_graph.cycles(graph) == [["a", "b", "c"]]


def test_no_package_import_inside_a_function_without_a_measured_reason():
    _, nested = import_graph.import_graph(PACKAGE)
    assert nested == []


def package_of(tmp_path: Path, a: str, b: str) -> Path:
    """A package `pkg` with the modules a and b."""
    package = tmp_path / "pkg"
    package.mkdir()
    for name, source in {"__init__": "", "a": a, "b": b}.items():
        (package / f"{name}.py").write_text(source)
    return package


def test_an_import_inside_a_function_is_found(tmp_path):
    package = package_of(
        tmp_path,
        "def f():\n    from pkg import b\n\n\ndef g():\n    import pkg.b  # measured: x\n",
        "from . import a\n",
    )
    graph, nested = import_graph.import_graph(package)
    assert graph["pkg.a"] == ["pkg.b"] and graph["pkg.b"] == ["pkg.a"]
    assert nested == [f"{package / 'a.py'}:2 pkg.a -> pkg.b"]
    assert import_graph.cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_module_over_450_lines():
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}


def test_imports_for_type_annotations_only_are_edges_too(tmp_path):
    """They name the module above all the same: a reader needs it to follow the code."""
    package = package_of(
        tmp_path,
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg import b\n",
        "from pkg import a\n",
    )
    graph, nested = import_graph.import_graph(package)
    assert graph["pkg.a"] == ["pkg.b"] and graph["pkg.b"] == ["pkg.a"] and nested == []
    assert import_graph.annotation_only_edges(package) == {"pkg": [], "pkg.a": ["pkg.b"], "pkg.b": []}
    assert import_graph.cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_module_imports_a_module_of_a_higher_layer():
    graph, _ = import_graph.import_graph(PACKAGE)
    assert import_graph.upward_imports(graph) == []


def test_every_module_has_a_layer_and_the_streams_sit_between_the_runner_and_what_they_use():
    layer = import_graph.layer_of
    assert layer("tap_autopilot.cli") < layer("tap_autopilot.runner") < layer("tap_autopilot.streams.contacts")
    assert (
        layer("tap_autopilot.streams.base") < layer("tap_autopilot.http.client") == layer("tap_autopilot.state.changes")
    )
    assert layer("tap_autopilot.output") == layer("tap_autopilot.runner") and layer("tap_autopilot.sync") is None
    graph, _ = import_graph.import_graph(PACKAGE)
    assert [module for module in graph if layer(module) is None] == []


def test_the_layer_check_finds_an_import_of_a_higher_layer_and_a_module_in_no_layer():
    layers = (("pkg.top",), ("pkg.low", "pkg"))
    graph = {"pkg": [], "pkg.top": ["pkg.low"], "pkg.low": ["pkg.top"], "pkg.low.leaf": ["pkg.top"], "other": []}
    assert import_graph.upward_imports(graph, layers) == [
        "pkg.low -> pkg.top",
        "pkg.low.leaf -> pkg.top",
        "other: in no layer",
    ]


def test_the_base_classes_name_what_a_subclass_must_implement():
    assert Stream.__abstractmethods__ == {"sync"}
    assert PageScan.__abstractmethods__ == {"start_cursor", "read_page", "restart", "finish"}
    assert ScanReader.__abstractmethods__ == {"saved_cursor", "read", "save", "restart", "completed"}
