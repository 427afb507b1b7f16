"""Video-to-video comparison of vPDQ values, as python-threatexchange's vPDQ matcher does,
for ``cordiale replica search VIDEO`` (offline; the forum's ``/match`` does the same at
scale, exchange/matching/video.py).

A video is compared through its *good frames*: the distinct PDQ hashes of its frames of
quality ``QUALITY_THRESHOLD`` (50) or more. A good frame is matched in the other video when
one of the other's good frames is within ``max_distance`` bits (31). Then
``query_match_percent`` is the share of the query's good frames matched in the candidate,
``compared_match_percent`` the share of the candidate's matched by the query, and the
candidate matches when both reach their thresholds (80 and 0, the reference's defaults)
and at least one frame matched. Pure Python: a replica's videos are a member's own
look-ups, tens of thousands of frame comparisons a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

QUALITY_THRESHOLD = 50
QUERY_MATCH_PERCENT = 80.0
COMPARED_MATCH_PERCENT = 0.0


def good_frames(value: str) -> list[int]:
    """The distinct hashes of a vpdq value's frames of quality 50 or more, in order."""
    frames: dict[int, None] = {}
    for frame in json.loads(value):
        pdq_hex, quality, _ = frame.split(",", 2)
        if int(quality) >= QUALITY_THRESHOLD:
            frames[int(pdq_hex, 16)] = None
    return list(frames)


@dataclass(frozen=True)
class VideoComparison:
    distance: int  # the closest pair of good frames
    query_match_percent: float
    compared_match_percent: float


def compare_videos(
    query: list[int], candidate: list[int], max_distance: int
) -> VideoComparison | None:
    """The two figures for good frames ``query`` against ``candidate``; None when no frame
    is within ``max_distance``."""
    if not query or not candidate:
        return None
    query_hits: set[int] = set()
    candidate_hits: set[int] = set()
    closest = 257
    for i, q in enumerate(query):
        for j, c in enumerate(candidate):
            distance = (q ^ c).bit_count()
            if distance <= max_distance:
                query_hits.add(i)
                candidate_hits.add(j)
                closest = min(closest, distance)
    if not query_hits:
        return None
    return VideoComparison(
        closest,
        len(query_hits) * 100 / len(query),
        len(candidate_hits) * 100 / len(candidate),
    )
