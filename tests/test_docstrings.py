"""Every test says what behaviour it expects: STYLE.md asks each test function for a
docstring stating it, and this keeps it so."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def undocumented(source: str) -> list[tuple[int, str]]:
    """(line, name) of each test function (module level, in a class, or async) in
    ``source`` without a docstring."""
    return [
        (node.lineno, node.name)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
        and not (ast.get_docstring(node) or "").strip()
    ]


def test_every_test_function_has_a_docstring() -> None:
    """Each test function under tests/ opens with a docstring stating the behaviour it
    expects; a failure lists those that do not."""
    missing = [
        f"{path.relative_to(TESTS.parent)}:{line} {name}"
        for path in sorted(TESTS.rglob("test_*.py"))
        for line, name in undocumented(path.read_text())
    ]
    assert missing == []


def test_a_test_without_docstring_is_found() -> None:
    """The check passes a documented test and finds the ones without a docstring, async
    and class methods included."""
    source = (
        "def test_documented():\n    '''Says what it expects.'''\n\n"
        "def helper():\n    pass\n\n"
        "async def test_bare():\n    pass\n\n"
        "class TestThings:\n    def test_method(self):\n        pass\n"
    )
    assert sorted(undocumented(source)) == [(7, "test_bare"), (11, "test_method")]
