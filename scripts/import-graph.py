"""Print which of the package's modules each module imports, and check the layout's two rules.

    python scripts/import-graph.py [PACKAGE_DIR]     (default: tap_autopilot/ beside scripts/)

One line per module: `module -> the package modules it imports`, then
the import cycles and the package imports made inside a function or class. Exits 1 when
there is either: modules import each other only at the top, so the order they load in
is plain; an import inside a function is allowed only with a measured reason written on
its line, as a comment starting `# measured:`. Imports under `if TYPE_CHECKING:` (names
for type annotations, never run) are left out.

Reads the source with ast: nothing is imported, so it runs with any Python 3.11.
tests/unit/test_layout.py runs the same checks.
"""

import ast
import sys
from pathlib import Path

MEASURED = "# measured:"


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
    inside functions too: a cycle they hide is still a cycle."""
    names = module_names(package_dir)
    known = set(names)
    graph: dict[str, list[str]] = {}
    nested: list[str] = []
    for module, path in names.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        edges: list[str] = []
        for statement in ast.parse(source).body:
            if _type_checking_only(statement):
                continue  # never run: names for annotations, which may point back (sync <-> streams)
            inside = isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            for node in ast.walk(statement):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                targets = _imported(node, module, path.name == "__init__.py", known)
                edges += [target for target in targets if target not in edges]
                if inside and targets and MEASURED not in lines[node.lineno - 1]:
                    nested += [f"{path}:{node.lineno} {module} -> {target}" for target in targets]
        graph[module] = sorted(edges)
    return graph, nested


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
    graph, nested = import_graph(package_dir)
    width = max(len(module) for module in graph)
    for module, targets in graph.items():
        print(f"{module:<{width}} -> {', '.join(targets) if targets else '(nothing from the package)'}")
    loops = cycles(graph)
    print("import cycles:", "; ".join("{" + ", ".join(group) + "}" for group in loops) if loops else "none")
    print("package imports inside a function:", ("\n  " + "\n  ".join(nested)) if nested else "none")
    return 1 if loops or nested else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
