"""Print which of the package's modules each module imports, and check the layout's three rules.

    python scripts/import-graph.py [PACKAGE_DIR]     (default: tap_autopilot/ beside scripts/)

One line per module: `module -> the package modules it imports` (those imported only under
`if TYPE_CHECKING:`, for annotations, marked so: they are edges all the same), then the
import cycles, the imports of a higher layer (LAYERS), and the package imports made inside
a function or class. Exits 1 when there is any: dependencies point one way, down LAYERS,
so that a module is read knowing only the layers below it; modules import each other only
at the top, so the order they load in is plain; an import inside a function is allowed
only with a measured reason written on its line, as a comment starting `# measured:`.

Reads the source with ast: nothing is imported, so it runs with any Python 3.11.
tests/unit/test_layout.py runs the same checks.
"""

import ast
import sys
from pathlib import Path

MEASURED = "# measured:"

# The package's layers, top down: a module imports from its own layer and those below,
# never from one above. A name stands for the module and everything under it (the
# package itself, "tap_autopilot", for its __init__.py only).
LAYERS = (
    ("tap_autopilot.__main__", "tap_autopilot.cli"),  # the command line
    (  # the runner and what it uses
        "tap_autopilot.runner",
        "tap_autopilot.output",
        "tap_autopilot.catalog",
        "tap_autopilot.discover",
        "tap_autopilot.progress",
        "tap_autopilot.scheduler",
        "tap_autopilot.run_start",
    ),
    ("tap_autopilot.streams",),  # the streams
    ("tap_autopilot.http", "tap_autopilot.state", "tap_autopilot.values"),  # what the streams use
    (  # the ground floor, and the sandbox (a program of its own)
        "tap_autopilot.config",
        "tap_autopilot.errors",
        "tap_autopilot.schema_files",
        "tap_autopilot.sandbox",
        "tap_autopilot",
    ),
)
ANNOTATIONS_ONLY = " (annotations only)"


def module_names(package_dir: Path) -> dict[str, Path]:
    """{dotted module name: file} for every .py file of the package ('pkg' for pkg/__init__.py)."""
    package = package_dir.name
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The package modules an import statement names (a `from x import y` names x.y when y is a module)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = []
    for target in targets:
        while target and target not in known:  # `import a.b.c` names a.b.c, or its package
            target = target.rpartition(".")[0]
        if target and target != module and target not in found:
            found.append(target)
    return found


def import_graph(package_dir: Path) -> tuple[dict[str, list[str]], list[str]]:
    """({module: package modules it imports}, ['file:line module -> target' for each package
    import inside a function or class without a measured reason]). The graph has the imports
    inside functions and those for annotations only (annotation_only_edges) too: a cycle or
    an upward dependency they hide is still one."""
    graph, _, nested = _read(package_dir)
    return graph, nested


def annotation_only_edges(package_dir: Path) -> dict[str, list[str]]:
    """{module: package modules it imports only under `if TYPE_CHECKING:`}."""
    return _read(package_dir)[1]


def _read(package_dir: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    names = module_names(package_dir)
    known = set(names)
    graph: dict[str, list[str]] = {}
    annotations: dict[str, list[str]] = {}
    nested: list[str] = []
    for module, path in names.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        edges: list[str] = []
        typing_edges: list[str] = []
        for statement in ast.parse(source).body:
            typing_only = _type_checking_only(statement)
            inside = isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            for node in ast.walk(statement):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                targets = _imported(node, module, path.name == "__init__.py", known)
                (typing_edges if typing_only else edges).extend(targets)
                if inside and targets and MEASURED not in lines[node.lineno - 1]:
                    nested += [f"{path}:{node.lineno} {module} -> {target}" for target in targets]
        graph[module] = sorted(set(edges) | set(typing_edges))
        annotations[module] = sorted(set(typing_edges) - set(edges))
    return graph, annotations, nested


def layer_of(module: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int | None:
    """The index in `layers` (0: the top) of the longest name that is the module or holds it."""
    best: tuple[int, int] | None = None
    for index, names in enumerate(layers):
        for name in names:
            holds = "." in name and module.startswith(name + ".")
            if (module == name or holds) and (best is None or len(name) > best[0]):
                best = (len(name), index)
    return None if best is None else best[1]


def upward_imports(graph: dict[str, list[str]], layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """'module -> target' for each import of a module in a higher layer, and 'module: in no
    layer' for each module LAYERS does not place."""
    found = []
    for module, targets in graph.items():
        level = layer_of(module, layers)
        if level is None:
            found.append(f"{module}: in no layer")
            continue
        for target in targets:
            target_level = layer_of(target, layers)
            if target_level is not None and target_level < level:
                found.append(f"{module} -> {target}")
    return found


def _type_checking_only(statement: ast.stmt) -> bool:
    """`if TYPE_CHECKING:` with no else: imports for type annotations only."""
    if not isinstance(statement, ast.If) or statement.orelse:
        return False
    test = statement.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, []):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def main(argv: list[str]) -> int:
    package_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "tap_autopilot"
    if not any(package_dir.glob("*.py")):
        print(f"import-graph: {package_dir} is not a package folder (no .py files); give the package's folder.")
        return 2
    graph, annotations, nested = _read(package_dir)
    width = max(len(module) for module in graph)
    for module, targets in graph.items():
        shown = [target + (ANNOTATIONS_ONLY if target in annotations[module] else "") for target in targets]
        print(f"{module:<{width}} -> {', '.join(shown) if shown else '(nothing from the package)'}")
    loops = cycles(graph)
    print("import cycles:", "; ".join("{" + ", ".join(group) + "}" for group in loops) if loops else "none")
    upward = upward_imports(graph) if package_dir.name == "tap_autopilot" else []
    print("imports of a higher layer:", ("\n  " + "\n  ".join(upward)) if upward else "none")
    print("package imports inside a function:", ("\n  " + "\n  ".join(nested)) if nested else "none")
    return 1 if loops or upward or nested else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
