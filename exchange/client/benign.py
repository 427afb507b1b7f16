"""The known-benign list as a match reads it: which neighbours of a query are matches,
which are known benign, and which matches lie near a known-benign value.

A statement is *benign* when its labels are of kind ``benign`` (``GET /api/v1/labels``;
the forum marks it ``"benign": true`` in snapshots). Of a query's neighbours (snapshots
at a distance, closest first):

- ``matches`` are those with a TVEC statement (at least one statement not benign);
- ``benign`` are those with a benign statement (a signal with both is in both lists);
- a match is ``near_benign`` when a value of ``benign`` lies within ``max_distance`` of
  it (``near_benign``).

The forum's ``/match`` (``exchange/matching/selectors.py``) and the member's replica
(``cordiale replica search``) both split with ``split_neighbours``, so they agree.

This module imports nothing from Django: the client imports it.
"""

from __future__ import annotations

from typing import Any

Snapshot = dict[str, Any]
NEAR_TYPES = ("pdq", "vpdq")


def has_benign(snapshot: Snapshot) -> bool:
    """Some statement of the snapshot puts the value on the known-benign list."""
    return any(statement.get("benign") is True for statement in snapshot["statements"])


def has_tvec(snapshot: Snapshot) -> bool:
    """Some statement of the snapshot asserts the value TVEC."""
    return any(statement.get("benign") is not True for statement in snapshot["statements"])


def split_neighbours(
    neighbours: list[tuple[int, Snapshot]], max_distance: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(matches, benign)`` of a query's neighbours, each closest first as given."""
    benign = [(d, s) for d, s in neighbours if has_benign(s)]
    matches = [
        {
            "distance": d,
            "signal": s,
            "near_benign": bool(benign) and near_benign(s, benign, max_distance),
        }
        for d, s in neighbours
        if has_tvec(s)
    ]
    return matches, [{"distance": d, "signal": s} for d, s in benign]


def near_benign(signal: Snapshot, benign: list[tuple[int, Snapshot]], max_distance: int) -> bool:
    """Whether a benign neighbour of the query lies within ``max_distance`` of ``signal``:
    the signal itself, a pdq value by Hamming distance, or, where a vpdq value is on
    either side (its frames have no single distance to a value), any pdq or vpdq benign
    neighbour, since both are that near the query."""
    for _, other in benign:
        if other["signal_type"] == signal["signal_type"] and other["value"] == signal["value"]:
            return True
        kinds = (signal["signal_type"], other["signal_type"])
        if kinds == ("pdq", "pdq"):
            if (int(signal["value"], 16) ^ int(other["value"], 16)).bit_count() <= max_distance:
                return True
        elif all(kind in NEAR_TYPES for kind in kinds):
            return True
    return False
