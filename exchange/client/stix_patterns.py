"""
STIX patterns that name one value of a signal type: what ``cordiale submit`` signs.

Read with the ``stix2`` library's pattern parser (the ``stix`` extra), never with regular
expressions::

    [file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']          → md5
    [file:hashes.'SHA-256' = '…']  or  [file:hashes.SHA256 = '…']    → sha256
    [file:hashes.PDQ = '…']  and  [file:hashes.vPDQ = '["…,100,0.0"]'] → pdq, vpdq
    [url:value = 'https://example.com/a']                           → url

The hash names are those the forum's own mapping writes (``exchange.client.stix``), plus
MISP's ``SHA256``, matched without regard to case. Several comparisons joined by ``AND``
in one observation are accepted when exactly one of them is a supported ``=``
comparison (MISP's ``filename|md5``: ``[file:name = 'a.jpg' AND file:hashes.MD5 = '…']``);
the others are returned as notes. The same value in every branch of an ``OR`` is one
value. Anything else raises ``PatternUnsupported`` with the reason: no supported object
path, two values, ``OR`` with other conditions, qualifiers, ``FOLLOWEDBY``, operators
other than ``=``, ``NOT``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from exchange.client import stix

# STIX hash names (lower case) that name one value of a signal type: those the forum's
# own mapping writes (exchange.client.stix.PATTERN_PATHS) and the spelling MISP uses.
HASH_SIGNAL_TYPES: Mapping[str, str] = {
    **{
        path.removeprefix("file:hashes.").strip("'").lower(): signal_type
        for signal_type, path in stix.PATTERN_PATHS.items()
        if path.startswith("file:hashes.")
    },
    "sha256": "sha256",
}
URL_PATH = ("url", ("value",))


class PatternUnsupported(ValueError):
    """A pattern that does not name exactly one supported value; the message says why."""


def parse_pattern(pattern: str, *, version: str = "2.1") -> tuple[str, str, list[str]]:
    """The signal type and value one STIX pattern names, and notes on what was ignored.

    >>> parse_pattern("[file:name = 'a.jpg' AND file:hashes.MD5 = 'D41D8CD98F00B204E9800998E']")
    ('md5', 'D41D8CD98F00B204E9800998E', ["ignored the condition file:name = 'a.jpg'"])

    The value is as written (``cordiale submit`` normalises it before signing); raise
    PatternUnsupported if the pattern does not name exactly one supported value.
    """
    from stix2 import patterns
    from stix2.pattern_visitor import create_pattern_object

    try:
        tree = create_pattern_object(pattern, version=version)
    except Exception as exc:  # the ANTLR parser raises several kinds
        raise PatternUnsupported(f"the pattern does not parse: {exc}") from exc
    observations = _observations(tree, patterns)
    comparisons: list[Any] = []
    has_or = len(observations) > 1
    for observation in observations:
        has_or |= _flatten(observation.operand, comparisons, patterns)
    named: dict[tuple[str, str], Any] = {}
    others: list[Any] = []
    for comparison in comparisons:
        signal = _signal_of(comparison, patterns)
        if signal is None:
            others.append(comparison)
        else:
            named.setdefault(signal, comparison)
    if not named:
        paths = ", ".join(sorted({str(c.lhs) for c in others if hasattr(c, "lhs")}))
        raise PatternUnsupported(
            f"no supported observable in the pattern ({paths or pattern}); the forum takes "
            "file:hashes.MD5, file:hashes.'SHA-256', file:hashes.PDQ, file:hashes.vPDQ, url:value"
        )
    if len(named) > 1:
        kinds = ", ".join(f"{kind} {value[:16]}…" for kind, value in named)
        raise PatternUnsupported(
            f"the pattern names {len(named)} values ({kinds}); export one indicator per value"
        )
    if has_or and others:
        raise PatternUnsupported(
            "other conditions joined by OR or in other observations: the pattern is more "
            "than the value"
        )
    (signal_type, value), _ = next(iter(named.items()))
    notes = [f"ignored the condition {comparison}" for comparison in others]
    return signal_type, value, notes


def _observations(tree: Any, patterns: Any) -> list[Any]:
    """The observation expressions of a pattern joined by ``OR``/``AND`` (the same value
    observed twice is still one value); raise PatternUnsupported on anything else."""
    if isinstance(tree, patterns.ObservationExpression):
        return [tree]
    if isinstance(tree, patterns.QualifiedObservationExpression):
        raise PatternUnsupported(f"qualified pattern ({tree.qualifier}): not one value")
    if isinstance(tree, patterns.FollowedByObservationExpression):
        raise PatternUnsupported("FOLLOWEDBY pattern: a sequence, not one value")
    if isinstance(tree, patterns.ParentheticalExpression):
        return _observations(tree.expression, patterns)
    if isinstance(tree, patterns.OrObservationExpression | patterns.AndObservationExpression):
        return [o for operand in tree.operands for o in _observations(operand, patterns)]
    raise PatternUnsupported(f"unexpected pattern structure {type(tree).__name__}")


def _flatten(expression: Any, out: list[Any], patterns: Any) -> bool:
    """Append the comparisons of ``expression`` to ``out``; True if an ``OR`` joins some."""
    if isinstance(expression, patterns.ParentheticalExpression):
        return _flatten(expression.expression, out, patterns)
    if isinstance(expression, patterns.OrBooleanExpression):
        for operand in expression.operands:
            _flatten(operand, out, patterns)
        return True
    if isinstance(expression, patterns.AndBooleanExpression):
        return any([_flatten(operand, out, patterns) for operand in expression.operands])
    out.append(expression)
    return False


def _signal_of(comparison: Any, patterns: Any) -> tuple[str, str] | None:
    """(signal type, value) of a supported comparison; None for another object path;
    raise PatternUnsupported for a supported path compared in another way."""
    lhs = getattr(comparison, "lhs", None)
    if lhs is None:
        return None
    path = [getattr(component, "property_name", None) for component in lhs.property_path]
    signal_type: str | None = None
    if lhs.object_type_name == "file" and len(path) == 2 and path[0] == "hashes":
        signal_type = HASH_SIGNAL_TYPES.get(str(path[1]).lower())
    elif (lhs.object_type_name, tuple(path)) == URL_PATH:
        signal_type = "url"
    if signal_type is None:
        return None
    rhs = comparison.rhs
    if not isinstance(comparison, patterns.EqualityComparisonExpression) or comparison.negated:
        raise PatternUnsupported(f"{comparison}: only '=' names one value")
    if isinstance(rhs, patterns.StringConstant):
        return signal_type, _unescape(str(rhs.value))
    if isinstance(rhs, patterns.HexConstant) and signal_type != "url":
        return signal_type, str(rhs.value)
    raise PatternUnsupported(f"{comparison}: the value is not a string")


def _unescape(text: str) -> str:
    """A STIX pattern string literal's value: ``\\'`` is ``'`` and ``\\\\`` is ``\\``."""
    return re.sub(r"\\(['\\])", r"\1", text)
