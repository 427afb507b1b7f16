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

from collections.abc import Sequence
from typing import Any

Snapshot = dict[str, Any]
NEAR_TYPES = ("pdq", "vpdq")


def split_neighbours(
    neighbours: Sequence[tuple[int | dict[str, Any], Snapshot]], max_distance: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(matches, benign)`` of a query's neighbours, each closest first as given.

    A neighbour is ``(distance, snapshot)`` or ``(fields, snapshot)`` where ``fields`` is
    the match's figures (``distance`` and, for a vpdq query, the two match percentages),
    which both lists carry over.

    On /match's hot path: one pass over the statements, ``near_benign`` only computed
    when a benign neighbour exists (about 1 us per neighbour over building the list).
    """
    matches: list[dict[str, Any]] = []
    benign: list[dict[str, Any]] = []
    for figures, s in neighbours:
        fields = {"distance": figures} if isinstance(figures, int) else figures
        tvec = known_benign = False
        for statement in s["statements"]:
            if statement.get("benign") is True:
                known_benign = True
            else:
                tvec = True
        if tvec:
            matches.append({**fields, "signal": s, "near_benign": False})
        if known_benign:
            benign.append({**fields, "signal": s})
    if benign:
        near = [(b["distance"], b["signal"]) for b in benign]
        for match in matches:
            match["near_benign"] = near_benign(match["signal"], near, max_distance)
    return matches, benign


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
