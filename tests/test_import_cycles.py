"""No import cycle among the modules of ``forum``, ``members`` and ``exchange``.

The graph is built from the source with ``ast``: an edge for each import executed when a
module loads (module level, ``try`` and ``if`` blocks included, ``if TYPE_CHECKING:``
excluded), relative imports resolved, ``from pkg import module`` pointing at the module.

Two checks. At load time, an import inside a function is no edge. Deferred, it is one too,
except to or from a ``tasks`` module: a service publishes its task from inside a function
and the task calls the service, the one cycle allowed (the Celery task↔service pattern);
any other deferred import that closes a cycle only hides it (``exchange/feed.py`` waking
webhook endpoints is one).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("forum", "members", "exchange")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name → source file, for every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _load_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(test):
                yield from _load_time_imports(node.orelse)
                continue
            yield from _load_time_imports(node.body)
            yield from _load_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _load_time_imports(block)
            for handler in node.handlers:
                yield from _load_time_imports(handler.body)


def _deferred_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports inside the functions and classes of ``body``: run when called."""
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for node in ast.walk(statement):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    yield node


def _is_tasks(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "tasks"


def import_graph(modules: dict[str, Path], *, deferred: bool = False) -> dict[str, set[str]]:
    """Module → the modules of the packages it imports when it loads; with ``deferred``,
    also those it imports inside functions, except to or from a ``tasks`` module (the
    Celery task↔service pattern)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        body = ast.parse(path.read_text()).body
        targets: set[str] = set()
        loaded = [(node, False) for node in _load_time_imports(body)]
        later = [(node, True) for node in _deferred_imports(body)] if deferred else []
        for node, in_function in loaded + later:
            if isinstance(node, ast.Import):
                named = {alias.name for alias in node.names}
            else:
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1])
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                named = {
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                }
            if in_function and _is_tasks(name):
                continue
            targets.update(t for t in named if not (in_function and _is_tasks(t)))
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or through others (the
    strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle in each group of modules that import each other, as
    ``[a, b, ..., a]``."""
    found = []
    for component in components(graph):
        start = min(component)
        paths = {start: [start]}
        frontier = [start]
        cycle: list[str] | None = None
        while frontier and cycle is None:
            following = []
            for node in frontier:
                for nxt in sorted(graph[node] & component):
                    if nxt == start:
                        cycle = [*paths[node], start]
                        break
                    if nxt not in paths:
                        paths[nxt] = [*paths[node], nxt]
                        following.append(nxt)
                if cycle is not None:
                    break
            frontier = following
        assert cycle is not None
        found.append(cycle)
    return sorted(found)


def test_the_graph_sees_load_time_imports_only(tmp_path: Path) -> None:
    """Relative and ``from pkg import module`` imports become edges to the module; imports
    under ``if TYPE_CHECKING:`` never do, imports inside functions only in the deferred
    graph and never from a task to its service; a cycle is reported once."""
    files = {
        "forum/__init__.py": "",
        "forum/a.py": "from . import b\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from forum import c\n",
        "forum/b.py": "from .c import thing\n",
        "forum/c.py": "import forum.a\ndef later():\n    from forum import b\n",
        "forum/d.py": "def later():\n    from forum import a\n",
        "forum/e.py": "from forum import d\n",
        "forum/services.py": "from forum import tasks\n",
        "forum/tasks.py": "def run():\n    from forum import services\n",
        "members/__init__.py": "",
        "exchange/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(module_files(tmp_path))
    assert graph["forum.a"] == {"forum.b"}
    assert graph["forum.b"] == {"forum.c"}
    assert graph["forum.c"] == {"forum.a"}
    assert graph["forum.d"] == set()
    assert cycles(graph) == [["forum.a", "forum.b", "forum.c", "forum.a"]]
    deferred = import_graph(module_files(tmp_path), deferred=True)
    assert deferred["forum.d"] == {"forum.a"} and deferred["forum.tasks"] == set()
    assert cycles(deferred) == [["forum.a", "forum.b", "forum.c", "forum.a"]]


def _report(graph: dict[str, set[str]]) -> str:
    groups = sorted(sorted(c) for c in components(graph))
    return "\n".join(
        f"{len(group)} modules {group}; e.g. {' → '.join(cycle)}"
        for group, cycle in zip(groups, cycles(graph), strict=True)
    )


def test_no_import_cycle_at_load_time() -> None:
    """No module of forum, members or exchange imports, when it loads, a module that
    imports it back, directly or through others; a failure names each cycle."""
    graph = import_graph(module_files())
    assert components(graph) == [], _report(graph)


def test_no_import_cycle_with_deferred_imports() -> None:
    """Counting imports inside functions too, only a Celery task and its service may import
    each other; no other group of modules imports each other; a failure names each cycle."""
    graph = import_graph(module_files(), deferred=True)
    assert components(graph) == [], _report(graph)
