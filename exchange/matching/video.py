"""Video-to-video matching of vPDQ values, with python-threatexchange's two figures.

A vPDQ value is a list of frames ``"<pdq hex>,<quality>,<seconds>"``. The reference
matcher (python-threatexchange's vpdq extension: ``vpdq_util``, ``VPDQIndex``) compares
two videos through their *good frames*: the distinct PDQ hashes of the frames of quality
``QUALITY_THRESHOLD`` (50) or more, low-quality frames dropped first and duplicates then
(``prepare_vpdq_feature``). A good frame of one video is *matched* in the other when some
good frame of the other is within the frame distance (31 by default, inclusive). Then

- ``query_match_percent`` = matched good frames of the query x 100 / its good frames;
- ``compared_match_percent`` = matched good frames of the candidate x 100 / its good frames;

and a candidate is a match when both reach their thresholds (defaults 80.0 and 0.0, the
reference's ``VPDQ_QUERY_MATCH_THRESHOLD_PERCENT`` and ``..._INDEX_...``), compared with
``>=``. A candidate needs at least one matched frame, so thresholds of 0 give every video
that shares one frame with the query: the frame-level answer. (The reference's brute-force
``match_VPDQ_hash_brute`` deduplicates before it filters quality, so a hash whose first
frame is poor and a later one good counts there as poor; the index, which matching at
scale uses, filters first. We follow the index.) A ``pdq`` signal is a one-frame video of
quality 100: it matches a video query on the share of query frames near it.

Index entries (int64 ids of the shared ``PDQIndex``)
----------------------------------------------------
A ``pdq`` signal is entry ``signal_id``. A ``vpdq`` signal is one entry per distinct
frame hash, good frames first, then the other distinct hashes (pdq queries find a video
by any of its frames)::

    entry = -((((signal_id << 1) | poor) << FRAME_BITS) | k) - 1

``k`` numbers the good (``poor`` = 0) or the poor (1) hashes from 0. So the good frames
of one signal are the ids of one contiguous range, and the index's ``count_between``
gives a candidate's number of good frames from the index alone (two binary searches),
with no side table to keep in step with it or with its snapshot files. Deduplicating per
video is what keeps clustered video data cheap: consecutive frames of a scene often have
the same hash, and each is stored and verified once.

Search
------
One near-neighbour search per distinct good query frame (``PDQIndex.search_arrays``,
every query of a request in one call), then numpy aggregation of the (query frame,
entry) pairs per (query, signal): distinct query frames matched, distinct candidate
frames matched, closest pair. Work: the searches (bounded by the match work budget like
pdq queries) plus O(pairs log pairs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from exchange.matching.pdq_index import HASH_BYTES, PDQIndex

QUALITY_THRESHOLD = 50
QUERY_MATCH_PERCENT = 80.0
COMPARED_MATCH_PERCENT = 0.0
FRAME_BITS = 20
MAX_FRAMES = 1 << FRAME_BITS  # distinct hashes of each kind indexed per video

IntArray = npt.NDArray[np.int64]
U8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class VideoFrames:
    """The distinct frame hashes of a vPDQ value: ``good`` (quality >= 50, as the
    reference matcher keeps them) and ``poor`` (only in frames below it), each in order
    of first appearance."""

    good: list[str]
    poor: list[str]


def video_frames(value: str, quality_threshold: int = QUALITY_THRESHOLD) -> VideoFrames:
    """The good and poor distinct hashes of a canonical vpdq value."""
    good: dict[str, None] = {}
    seen: dict[str, None] = {}
    for frame in json.loads(value):
        pdq_hex, quality, _ = frame.split(",", 2)
        seen[pdq_hex] = None
        if int(quality) >= quality_threshold:
            good[pdq_hex] = None
    poor = [h for h in seen if h not in good]
    return VideoFrames(list(good)[:MAX_FRAMES], poor[:MAX_FRAMES])


def frame_entry_id(signal_id: int, frame: int, *, poor: bool = False) -> int:
    return -((((signal_id << 1) | int(poor)) << FRAME_BITS) | frame) - 1


def video_entries(signal_id: int, value: str) -> tuple[list[int], list[str]]:
    """Entry ids and hex hashes of a vpdq signal: its good frames, then its poor ones."""
    frames = video_frames(value)
    ids = [frame_entry_id(signal_id, k) for k in range(len(frames.good))]
    ids += [frame_entry_id(signal_id, k, poor=True) for k in range(len(frames.poor))]
    return ids, frames.good + frames.poor


def entry_signal_ids(entry_ids: IntArray) -> IntArray:
    """The signal id of each entry id (pdq entries are signal ids, vpdq ones frames)."""
    return np.where(entry_ids >= 0, entry_ids, (-entry_ids - 1) >> (FRAME_BITS + 1))


def _is_poor(entry_ids: IntArray) -> npt.NDArray[np.bool_]:
    return (entry_ids < 0) & ((((-entry_ids - 1) >> FRAME_BITS) & 1) == 1)


def good_frame_counts(index: PDQIndex, signal_ids: IntArray) -> IntArray:
    """Number of good frames the index holds for each of these vpdq signals."""
    first = signal_ids << (FRAME_BITS + 1)
    return index.count_between(-first - MAX_FRAMES, -first - 1)


@dataclass(frozen=True)
class VideoMatch:
    signal_id: int
    distance: int  # closest pair of good frames
    query_match_percent: float
    compared_match_percent: float


def match_videos(
    index: PDQIndex,
    queries: list[list[str]],
    max_distance: int,
    *,
    query_match_percent: float = QUERY_MATCH_PERCENT,
    compared_match_percent: float = COMPARED_MATCH_PERCENT,
) -> list[list[VideoMatch]]:
    """Per query (its distinct good frame hashes), the signals meeting both thresholds,
    by query_match_percent, then compared_match_percent (both descending), then distance
    and signal id."""
    out: list[list[VideoMatch]] = [[] for _ in queries]
    sizes = np.array([len(q) for q in queries], dtype=np.int64)
    if not sizes.sum():
        return out
    raw = bytes.fromhex("".join(h for q in queries for h in q))
    hashes = np.frombuffer(raw, dtype=np.uint8).reshape(-1, HASH_BYTES)
    row_owner = np.repeat(np.arange(len(queries), dtype=np.int64), sizes)
    rows, entries, dist = index.search_arrays(hashes, max_distance)
    keep = ~_is_poor(entries)
    rows, entries, dist = rows[keep], entries[keep], dist[keep]
    if not rows.size:
        return out
    owner, signal = row_owner[rows], entry_signal_ids(entries)
    order = np.lexsort((signal, owner))
    owner, signal, rows, entries, dist = (a[order] for a in (owner, signal, rows, entries, dist))
    new = np.r_[True, (owner[1:] != owner[:-1]) | (signal[1:] != signal[:-1])]
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    g_owner, g_signal = owner[starts], signal[starts]
    best = np.minimum.reduceat(dist, starts)
    query_hits = _distinct_per_group(group, rows, len(starts))
    compared_hits = _distinct_per_group(group, entries, len(starts))
    image = entries[starts] >= 0
    frames = np.ones(len(starts), dtype=np.int64)
    if not image.all():
        frames[~image] = good_frame_counts(index, g_signal[~image])
    query_pct = query_hits * 100 / sizes[g_owner]
    compared_pct = compared_hits * 100 / frames
    ok = (query_pct >= query_match_percent) & (compared_pct >= compared_match_percent)
    ranked = np.lexsort((g_signal, best, -compared_pct, -query_pct, g_owner))
    for g in ranked[ok[ranked]].tolist():
        out[int(g_owner[g])].append(
            VideoMatch(int(g_signal[g]), int(best[g]), float(query_pct[g]), float(compared_pct[g]))
        )
    return out


def _distinct_per_group(group: IntArray, values: IntArray, n_groups: int) -> IntArray:
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    first = np.r_[True, (g[1:] != g[:-1]) | (v[1:] != v[:-1])]
    return np.bincount(g[first], minlength=n_groups).astype(np.int64)
