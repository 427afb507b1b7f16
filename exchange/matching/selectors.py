"""``POST /api/v1/match``: what a member may see of the signals at or near its values.

Request::

    {"queries": [{"signal_type": "pdq", "value": "f8f8...9b22"}],
     "max_distance": 31, "limit": 100}

Response, one result per query in input order, matches closest first (then by signal
id)::

    {"results": [{"index": 0, "truncated": false,
                  "matches": [{"distance": 3, "near_benign": false, "signal": <snapshot>}],
                  "benign": [{"distance": 9, "signal": <snapshot>}]}]}

Known benign (``exchange.selectors``: statements with labels of kind ``benign``): the
visible neighbours of a query are split (``exchange.client.benign``, shared with the
member's replica). ``matches`` holds those with at least one visible TVEC statement,
``benign`` those with at least one visible benign statement (a signal with both is in
both lists); a signal the caller sees only as benign is never a match, so a member
acting on ``matches`` does not act on the known-benign list. A match carries
``near_benign: true`` when a value in ``benign`` lies within ``max_distance`` of it:
the content may be the news photo or the counter-speech video rather than the TVEC it
resembles, and deserves a human look. ``limit`` counts neighbours of
both kinds, closest first; ``truncated`` says more exist.

- ``pdq`` queries return every active pdq signal within ``max_distance`` (0..64,
  default 31) bits, with its exact Hamming distance, and every vpdq signal with a
  frame that near (at the distance of its closest frame).
- ``vpdq`` queries search each distinct frame of the query the same way; a signal's
  distance is the smallest over all (query frame, indexed hash) pairs. This answers
  "does any frame of my video look like a flagged image or a frame of a flagged
  video"; deciding that two videos are the same (share most frames, as
  python-threatexchange's vpdq matcher does) is left to the member, who has both
  frame lists.
- Every other type matches by equality (distance 0).

Visibility: candidates pass through ``exchange.selectors.snapshots`` for the caller,
the one visibility rule, and only then is ``limit`` (matches per query, 1..1,000,
default 100; ``truncated`` says more visible matches exist) applied. So a query
near only values the caller may not see gets exactly the answer of a query near
nothing: ``{"index": i, "truncated": false, "matches": [], "benign": []}``.

Errors: a request that is not of this shape, has no queries or more than 1,000, or a
bad ``max_distance`` or ``limit``, gets a 4xx problem; so does one whose PDQ search
would compare more indexed hashes than ``CORDIALE_MATCH_WORK_BUDGET`` (413
``match_too_costly``: query hashes x index size where the index cannot prune, see
``exchange.matching.service.match_search``). One bad query (unknown type,
value not in canonical form) rejects that query only (DESIGN invariant 7): its result
is ``{"index": i, "truncated": false, "matches": [], "benign": [], "error": {"code":
"invalid_value", "detail": "..."}}`` and the other queries are answered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from exchange.client.benign import split_neighbours
from exchange.client.signal_types import (
    query_value_error,
)
from exchange.feed import Reader
from exchange.matching.pdq_index import DEFAULT_MAX_DISTANCE, HASH_BYTES, MAX_DISTANCE
from exchange.matching.service import match_search, vpdq_frame_hashes
from exchange.selectors import Snapshot, snapshots, visible_signal_ids
from forum.errors import DomainError

MAX_QUERIES = 1_000
MAX_HASHES = 100_000  # PDQ hashes searched per request; each distinct vpdq frame counts
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
SNAPSHOT_BATCH = 5_000
NEAR_TYPES = ("pdq", "vpdq")


@dataclass
class MatchQuery:
    index: int
    signal_type: str = ""
    value: str = ""
    hashes: list[str] = field(default_factory=list)  # pdq and vpdq: the hashes to search
    error: dict[str, str] | None = None


def _problem(detail: str, *, code: str, field: str, status: int = 400) -> DomainError:
    return DomainError(
        detail, code=code, status=status, errors=[{"field": field, "code": code, "detail": detail}]
    )


def _bounded_int(
    body: dict[str, Any], name: str, default: int, low: int, high: int, *, code: str
) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _problem(f"{name} must be an integer from {low} to {high}.", code=code, field=name)
    return value


def match_request_parse(body: Any) -> tuple[list[MatchQuery], int, int]:
    """Queries, max_distance and limit of a request body; a DomainError if malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("queries"), list):
        raise _problem(
            'The body must be {"queries": [{"signal_type": ..., "value": ...}, ...]}.',
            code="invalid_request",
            field="queries",
        )
    raw = body["queries"]
    if not raw:
        raise _problem("Send at least one query.", code="invalid_request", field="queries")
    if len(raw) > MAX_QUERIES:
        raise _problem(
            f"At most {MAX_QUERIES} queries per request; got {len(raw)}.",
            code="too_many_queries",
            field="queries",
            status=413,
        )
    max_distance = _bounded_int(
        body, "max_distance", DEFAULT_MAX_DISTANCE, 0, MAX_DISTANCE, code="invalid_max_distance"
    )
    limit = _bounded_int(body, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, code="invalid_limit")
    queries = [_parse_query(i, q) for i, q in enumerate(raw)]
    searched = sum(len(q.hashes) for q in queries)
    if searched > MAX_HASHES:
        raise _problem(
            f"At most {MAX_HASHES} PDQ hashes per request (each distinct vpdq frame counts "
            f"one); got {searched}. Split the queries over several requests.",
            code="too_many_hashes",
            field="queries",
            status=413,
        )
    return queries, max_distance, limit


def match_request_cost(queries: list[MatchQuery]) -> int:
    """Units of the ``match_hashes`` throttle: one per query, or per distinct frame of a
    vpdq query (each is a PDQ search)."""
    return sum(max(1, len(q.hashes)) for q in queries)


def _parse_query(index: int, raw: Any) -> MatchQuery:
    query = MatchQuery(index)
    if not isinstance(raw, dict) or not all(
        isinstance(raw.get(k), str) for k in ("signal_type", "value")
    ):
        query.error = {
            "code": "invalid_query",
            "detail": 'A query is {"signal_type": "<name>", "value": "<canonical value>"}.',
        }
        return query
    query.signal_type, query.value = raw["signal_type"], raw["value"]
    query.error = query_value_error(query.signal_type, query.value)
    if query.error is not None:
        return query
    if query.signal_type == "pdq":
        query.hashes = [query.value]
    elif query.signal_type == "vpdq":
        query.hashes = vpdq_frame_hashes(query.value)
    return query


def signals_match(
    *, member_id: int, queries: list[MatchQuery], max_distance: int, limit: int
) -> list[dict[str, Any]]:
    """One result per query: the visible signals at or near its value, closest first."""
    reader = Reader(member_id)
    candidates = _near_candidates(queries, max_distance)
    for query, exact in zip(queries, _exact_candidates(reader, queries), strict=True):
        if exact is not None:
            candidates[query.index] = exact
    found = _visible(reader, candidates, limit + 1)
    results: list[dict[str, Any]] = []
    for query, neighbours in zip(queries, found, strict=True):
        matches, benign = split_neighbours(neighbours[:limit], max_distance)
        result: dict[str, Any] = {
            "index": query.index,
            "truncated": len(neighbours) > limit,
            "matches": matches,
            "benign": benign,
        }
        if query.error is not None:
            result["error"] = query.error
        results.append(result)
    return results


Candidates = list[tuple[int, int]]  # (signal id, distance), closest first


def _near_candidates(queries: list[MatchQuery], max_distance: int) -> list[Candidates]:
    owners = [q.index for q in queries for _ in q.hashes]
    out: list[Candidates] = [[] for _ in queries]
    if not owners:
        return out
    raw = bytes.fromhex("".join(h for q in queries for h in q.hashes))
    hashes = np.frombuffer(raw, dtype=np.uint8).reshape(-1, HASH_BYTES)
    best: dict[int, dict[int, int]] = {}
    found_per_hash = match_search(hashes, max_distance, budget=settings.CORDIALE_MATCH_WORK_BUDGET)
    for owner, found in zip(owners, found_per_hash, strict=True):
        seen = best.setdefault(owner, {})
        for signal_id, distance in found:
            if distance < seen.get(signal_id, MAX_DISTANCE + 1):
                seen[signal_id] = distance
    for owner, seen in best.items():
        out[owner] = sorted(seen.items(), key=lambda m: (m[1], m[0]))
    return out


def _exact_candidates(reader: Reader, queries: list[MatchQuery]) -> list[Candidates | None]:
    """Visible signal ids of the exact-type queries' values (None for the other queries).

    Visibility is checked in the same statement as the look-up (``visible_signal_ids``),
    so a value the caller may not see costs exactly what an absent one does.
    """
    by_type: dict[str, set[str]] = {}
    for q in queries:
        if q.error is None and q.signal_type not in NEAR_TYPES:
            by_type.setdefault(q.signal_type, set()).add(q.value)
    ids: dict[tuple[str, str], int] = {}
    now = int(time.time())
    for signal_type, values in sorted(by_type.items()):
        found = visible_signal_ids(
            reader=reader, signal_type=signal_type, values=sorted(values), now=now
        )
        ids.update(((signal_type, value), signal_id) for value, signal_id in found.items())
    out: list[Candidates | None] = []
    for q in queries:
        if q.error is not None or q.signal_type in NEAR_TYPES:
            out.append(None)
        else:
            signal_id = ids.get((q.signal_type, q.value))
            out.append([] if signal_id is None else [(signal_id, 0)])
    return out


def _visible(
    reader: Reader, candidates: list[Candidates], wanted: int
) -> list[list[tuple[int, Snapshot]]]:
    """Per query, its first ``wanted`` candidates that the reader may see, with snapshots.

    Candidates are checked closest first, in rounds: each round asks for the snapshots
    of just enough unchecked candidates to fill every query that is still short, so a
    query near many invisible values costs more rounds, never a wrong answer.
    """
    now = int(time.time())
    seen: dict[int, Snapshot | None] = {}
    found: list[list[tuple[int, Snapshot]]] = [[] for _ in candidates]
    pos = [0] * len(candidates)
    pending = [i for i, c in enumerate(candidates) if c]
    while pending:
        ask = list(
            dict.fromkeys(
                signal_id
                for i in pending
                for signal_id, _ in candidates[i][pos[i] : pos[i] + wanted - len(found[i])]
                if signal_id not in seen
            )
        )
        for start in range(0, len(ask), SNAPSHOT_BATCH):
            chunk = ask[start : start + SNAPSHOT_BATCH]
            visible = snapshots(reader=reader, signal_ids=chunk, now=now)
            seen.update((signal_id, visible.get(signal_id)) for signal_id in chunk)
        still: list[int] = []
        for i in pending:
            window = candidates[i][pos[i] : pos[i] + wanted - len(found[i])]
            for signal_id, distance in window:
                snapshot = seen[signal_id]
                if snapshot is not None:
                    found[i].append((distance, snapshot))
            pos[i] += len(window)
            if len(found[i]) < wanted and pos[i] < len(candidates[i]):
                still.append(i)
        pending = still
    return found
