"""The sessions modules form a ladder (CONTRIBUTING.md, "Conventions"): no import circle, counting
imports inside functions and under TYPE_CHECKING, and no `_private` name imported from another module."""

import ast
from pathlib import Path

import sessions

PACKAGE = Path(sessions.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), filename=str(path))
            for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import anywhere in the file, for the sessions
    modules only: `from . import x`, `from .x import y`, `import sessions.x`, `from sessions.x import y`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level == 1 and node.module is None:
                found += [(name, []) for name in names]
            elif node.level == 1:
                found.append((node.module.split(".")[0], names))
            elif node.level == 0 and node.module and node.module.split(".")[0] == "sessions":
                parts = node.module.split(".")
                if len(parts) == 1:
                    found += [(name, []) for name in names]
                else:
                    found.append((parts[1], names))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sessions" and len(parts) > 1:
                    found.append((parts[1], []))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {imported for imported, _ in _imports(tree) if imported in modules and imported != name}
            for name, tree in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_sessions_modules_import_each_other_without_a_circle():
    assert _cycle(_graph()) is None, " → ".join(_cycle(_graph()) or [])


def test_no_private_name_crosses_a_file_of_the_sessions_app():
    crossing = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                crossing += [f"{name}: from {'.' * node.level}{node.module or ''} import {alias.name}"
                             for alias in node.names if alias.name.startswith("_")]
    assert crossing == []


def test_the_tasks_module_only_wires_tasks_to_services():
    """Nothing below tasks.py imports it: the broker hand-off names the tasks instead."""
    graph = _graph()
    assert [name for name, imported in graph.items() if "tasks" in imported and name != "apps"] == []


def test_the_checker_sees_a_circle_hidden_in_a_function():
    tree = ast.parse("def f():\n    from .b import g\n")
    assert _imports(tree) == [("b", ["g"])]
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
