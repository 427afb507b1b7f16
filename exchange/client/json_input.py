"""Reading JSON that clients send: one depth limit and one error, whichever parser reads it.

Python's ``json`` module recurses once per nesting level, so a 10 kB document nested a few
thousand levels deep (``[[[[...]]]]``) raises ``RecursionError``, which no caller expects
and which answered 500 (issue #13, item 5); orjson stops by itself at 1,024 levels. Nothing
Cordiale reads nests deeper than four levels (a match body: object, list, query, value), so
every document from a client is refused past ``MAX_DEPTH`` levels with ``InvalidJSON``, a
``ValueError`` that every caller already turns into its own 4xx (a request problem, a
``malformed`` statement, an ``invalid_value``, an ``invalid_cursor``)::

    >>> loads(b'{"queries": [{"signal_type": "md5", "value": "..."}]}')
    {'queries': [{'signal_type': 'md5', 'value': '...'}]}
    >>> loads(b"[" * 40 + b"]" * 40)
    Traceback (most recent call last):
    ...
    exchange.client.json_input.InvalidJSON: JSON nested deeper than 32 levels

This module imports nothing from Django: the JWS and signal type modules, which the
member-side client shares, read JSON through it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

MAX_DEPTH = 32


class InvalidJSON(ValueError):
    """Not JSON, or JSON nested deeper than ``MAX_DEPTH``; the message says which."""


def loads(data: bytes | str) -> Any:
    """Parse with orjson (the fast path: request bodies, cursors)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(str(exc)) from None
    check_depth(value)
    return value


def loads_with(
    text: str,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    parse_constant: Callable[[str], Any] | None = None,
) -> Any:
    """Parse with the standard library, for callers that need its hooks (duplicate
    member names refused in JWS parts, say). The hooks may raise ValueError."""
    try:
        value = json.loads(text, object_pairs_hook=object_pairs_hook, parse_constant=parse_constant)
    except RecursionError:
        raise InvalidJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidJSON(str(exc)) from None
    check_depth(value)
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Raise InvalidJSON if ``value`` nests lists and objects deeper than ``limit``.

    Iterative, so that it cannot itself run out of stack."""
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth >= limit:
                    raise InvalidJSON(f"JSON nested deeper than {limit} levels")
                stack.append((child, depth + 1))
