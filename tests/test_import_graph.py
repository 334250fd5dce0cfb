"""The import graph of ``ww_ray/``: no cycle between its files, counting imports inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ww_ray"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the ``ww_ray`` modules it imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                # the longest prefix that is a file of the package: ``from ww_ray.zoos import spec`` → ww_ray.zoos.spec
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("ww_ray"):
                    graph[name].add(target)
        # lazy re-exports (``_EXPORTS = {"Name": "ww_ray.module"}``) are imports too
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in files \
                    and node.value != name and path.name == "__init__.py":
                graph[name].add(node.value)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_package_init(name: str) -> bool:
    return (PACKAGE.parent / Path(*name.split(".")) / "__init__.py").exists()


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert len(graph) > 50
    # ww_ray.api imports its zoos inside a function; the graph must still see the edge
    assert any(target.startswith("ww_ray.zoos") for target in graph["ww_ray.api"])


# The one cycle left on this branch: engine/progress.py ↔ engine/sweep.py (SweepResult), removed by the
# engine rewrite of the large-model issue (typed results in one engine module); delete this entry then.
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycle_between_files():
    graph = import_graph()
    # a package's __init__ re-exporting its modules is not a cycle through them: drop edges into an __init__
    # from its own submodules (``from ww_ray.zoos import x`` inside zoos/ names the file x, handled above)
    trimmed = {name: {t for t in targets if not (_is_package_init(t) and name.startswith(t + "."))}
               for name, targets in graph.items()}
    assert [c for c in _cycles(trimmed) if c not in KNOWN_CYCLES] == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
