"""``POST /api/v1/match``: what a member may see of the signals at or near its values.

Request::

    {"queries": [{"signal_type": "pdq", "value": "f8f8...9b22"}],
     "max_distance": 31, "limit": 100,
     "vpdq_query_match_percent": 80, "vpdq_compared_match_percent": 0}

Response, one result per query in input order, matches closest first (then by signal
id)::

    {"results": [{"index": 0, "truncated": false,
                  "matches": [{"distance": 3, "signal": <signal snapshot>}]}]}

- ``pdq`` queries return every active pdq signal within ``max_distance`` (0..64,
  default 31) bits, with its exact Hamming distance, and every vpdq signal with a
  frame that near (at the distance of its closest frame).
- ``vpdq`` queries match videos to videos, as python-threatexchange's vPDQ matcher does
  (``exchange/matching/video.py``): each match also carries ``query_match_percent``
  (share of the query's good frames, quality >= 50 and deduplicated, with a frame of the
  candidate within ``max_distance``) and ``compared_match_percent`` (share of the
  candidate's good frames matched by the query), and is kept when they reach
  ``vpdq_query_match_percent`` and ``vpdq_compared_match_percent`` (numbers 0..100,
  defaults 80 and 0, the reference's). Matches come by query_match_percent, then
  compared_match_percent (both descending), then distance (the closest pair of good
  frames) and signal id. A ``pdq`` signal is a one-frame video: it matches when enough
  of the query's frames are near it. Frame-level answers: both thresholds 0 give every
  video and image with at least one frame within ``max_distance`` of a good query frame;
  a ``pdq`` query of one frame finds every video holding a frame near it (any quality).
- Every other type matches by equality (distance 0).

Visibility: candidates pass through ``exchange.selectors.snapshots`` for the caller,
the one visibility rule, and only then is ``limit`` (matches per query, 1..1,000,
default 100; ``truncated`` says more visible matches exist) applied. So a query
near only values the caller may not see gets exactly the answer of a query near
nothing: ``{"index": i, "truncated": false, "matches": []}``.

Errors: a request that is not of this shape, has no queries or more than 1,000, or a
bad ``max_distance``, ``limit`` or vpdq threshold, gets a 4xx problem; so does one whose PDQ search
would compare more indexed hashes than ``CORDIALE_MATCH_WORK_BUDGET`` (413
``match_too_costly``: query hashes x index size where the index cannot prune, see
``exchange.matching.service.match_search``). One bad query (unknown type,
value not in canonical form) rejects that query only (DESIGN invariant 7): its result
is ``{"index": i, "truncated": false, "matches": [], "error": {"code":
"invalid_value", "detail": "..."}}`` and the other queries are answered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from exchange.client.signal_types import (
    query_value_error,
)
from exchange.feed import Reader
from exchange.matching.pdq_index import DEFAULT_MAX_DISTANCE, HASH_BYTES, MAX_DISTANCE
from exchange.matching.service import match_state, vpdq_frame_hashes
from exchange.matching.video import COMPARED_MATCH_PERCENT, QUERY_MATCH_PERCENT
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


@dataclass(frozen=True)
class MatchOptions:
    """The request's search parameters besides its queries."""

    max_distance: int = DEFAULT_MAX_DISTANCE
    limit: int = DEFAULT_LIMIT
    vpdq_query_match_percent: float = QUERY_MATCH_PERCENT
    vpdq_compared_match_percent: float = COMPARED_MATCH_PERCENT


def _percent(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 100
    ):
        raise _problem(
            f"{name} must be a number from 0 to 100.", code="invalid_match_percent", field=name
        )
    return float(value)


def _bounded_int(
    body: dict[str, Any], name: str, default: int, low: int, high: int, *, code: str
) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _problem(f"{name} must be an integer from {low} to {high}.", code=code, field=name)
    return value


def match_request_parse(body: Any) -> tuple[list[MatchQuery], MatchOptions]:
    """Queries and options of a request body; a DomainError if malformed."""
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
    options = MatchOptions(
        max_distance,
        limit,
        _percent(body, "vpdq_query_match_percent", QUERY_MATCH_PERCENT),
        _percent(body, "vpdq_compared_match_percent", COMPARED_MATCH_PERCENT),
    )
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
    return queries, options


def match_request_cost(queries: list[MatchQuery]) -> int:
    """Units of the ``match_hashes`` throttle: one per query, or per distinct good frame
    of a vpdq query (each is a PDQ search)."""
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
    *, member_id: int, queries: list[MatchQuery], options: MatchOptions
) -> list[dict[str, Any]]:
    """One result per query: the visible signals at or near its value, best first."""
    reader = Reader(member_id)
    candidates = _near_candidates(queries, options)
    for query, exact in zip(queries, _exact_candidates(reader, queries), strict=True):
        if exact is not None:
            candidates[query.index] = exact
    limit = options.limit
    found = _visible(reader, candidates, limit + 1)
    results: list[dict[str, Any]] = []
    for query, matches in zip(queries, found, strict=True):
        result: dict[str, Any] = {
            "index": query.index,
            "truncated": len(matches) > limit,
            "matches": [{**fields, "signal": s} for fields, s in matches[:limit]],
        }
        if query.error is not None:
            result["error"] = query.error
        results.append(result)
    return results


# (signal id, the match's fields but the signal), best first
Candidates = list[tuple[int, dict[str, Any]]]


def _near_candidates(queries: list[MatchQuery], options: MatchOptions) -> list[Candidates]:
    out: list[Candidates] = [[] for _ in queries]
    images = [q for q in queries if q.signal_type == "pdq" and q.hashes]
    videos = [q for q in queries if q.signal_type == "vpdq" and q.hashes]
    count = sum(len(q.hashes) for q in images + videos)
    if not count:
        return out
    state = match_state(count, options.max_distance, budget=settings.CORDIALE_MATCH_WORK_BUDGET)
    if images:
        raw = bytes.fromhex("".join(q.hashes[0] for q in images))
        hashes = np.frombuffer(raw, dtype=np.uint8).reshape(-1, HASH_BYTES)
        for query, found in zip(images, state.search(hashes, options.max_distance), strict=True):
            out[query.index] = [(signal_id, {"distance": d}) for signal_id, d in found]
    if videos:
        found_videos = state.search_videos(
            [q.hashes for q in videos],
            options.max_distance,
            query_match_percent=options.vpdq_query_match_percent,
            compared_match_percent=options.vpdq_compared_match_percent,
        )
        for query, matches in zip(videos, found_videos, strict=True):
            out[query.index] = [
                (
                    m.signal_id,
                    {
                        "distance": m.distance,
                        "query_match_percent": m.query_match_percent,
                        "compared_match_percent": m.compared_match_percent,
                    },
                )
                for m in matches
            ]
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
            out.append([] if signal_id is None else [(signal_id, {"distance": 0})])
    return out


def _visible(
    reader: Reader, candidates: list[Candidates], wanted: int
) -> list[list[tuple[dict[str, Any], Snapshot]]]:
    """Per query, its first ``wanted`` candidates that the reader may see, with snapshots.

    Candidates are checked closest first, in rounds: each round asks for the snapshots
    of just enough unchecked candidates to fill every query that is still short, so a
    query near many invisible values costs more rounds, never a wrong answer.
    """
    now = int(time.time())
    seen: dict[int, Snapshot | None] = {}
    found: list[list[tuple[dict[str, Any], Snapshot]]] = [[] for _ in candidates]
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
            for signal_id, fields in window:
                snapshot = seen[signal_id]
                if snapshot is not None:
                    found[i].append((fields, snapshot))
            pos[i] += len(window)
            if len(found[i]) < wanted and pos[i] < len(candidates[i]):
                still.append(i)
        pending = still
    return found
