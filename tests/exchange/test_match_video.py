"""POST /api/v1/match with vpdq queries: video-to-video matching, end to end.

Videos go in as signed statements through the API, queries through HTTP. Every answer is
compared with a brute force written here from python-threatexchange's definition: the
good frames of a video are its distinct hashes of quality >= 50; query_match_percent is
the share of the query's good frames within max_distance of a good frame of the
candidate, compared_match_percent the share of the candidate's good frames within
max_distance of a good query frame (an image is a one-frame video); a candidate needs
one matched frame and both figures at or above their thresholds (defaults 80 and 0).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from django.test import override_settings

from exchange.matching.service import match_index_reset, match_index_snapshot
from exchange.models import Signal
from tests.exchange import match_support
from tests.factories import Party, make_group, make_party
from tests.members.problems import assert_problem
from tests.support.pdq_data import clustered_videos, flip_bits, to_hex, uniform_hashes

# The /match tests' shared fixtures: a fresh index per test (autouse), both search paths.
fresh_index = match_support.fresh_index
search_path = match_support.search_path

pytestmark = pytest.mark.django_db

U8 = npt.NDArray[np.uint8]
Frames = list[tuple[str, int]]  # (pdq hex, quality)
Figure = tuple[str, float, float, int]  # (value, query %, compared %, distance)


def vpdq(frames: Frames) -> str:
    return json.dumps([f"{h},{q},{float(i):.3}" for i, (h, q) in enumerate(frames)])


def as_frames(hashes: U8, quality: int = 100) -> Frames:
    return [(h, quality) for h in to_hex(hashes)]


def good(value: str) -> list[str]:
    """The reference's good frames: quality >= 50 kept, then duplicates dropped."""
    frames = [f.split(",") for f in json.loads(value)]
    return list(dict.fromkeys(h for h, q, _ in frames if int(q) >= 50))


def distances(a: list[str], b: list[str]) -> npt.NDArray[np.int64]:
    bits_a = np.unpackbits(np.frombuffer(bytes.fromhex("".join(a)), np.uint8).reshape(-1, 32), 1)
    bits_b = np.unpackbits(np.frombuffer(bytes.fromhex("".join(b)), np.uint8).reshape(-1, 32), 1)
    return (bits_a[:, None, :] != bits_b[None, :, :]).sum(axis=2).astype(np.int64)


def brute_force(
    query: str,
    corpus: dict[str, str],
    ids: dict[str, int],
    *,
    max_distance: int = 31,
    query_pct: float = 80.0,
    compared_pct: float = 0.0,
) -> list[Figure]:
    """The expected matches of a vpdq query among ``corpus`` (value -> signal type)."""
    q_frames = good(query)
    out: list[Figure] = []
    if not q_frames:
        return out
    for value, signal_type in corpus.items():
        c_frames = [value] if signal_type == "pdq" else good(value)
        if not c_frames:
            continue
        d = distances(q_frames, c_frames)
        near = d <= max_distance
        if not near.any():
            continue
        qp = int(near.any(axis=1).sum()) * 100 / len(q_frames)
        cp = int(near.any(axis=0).sum()) * 100 / len(c_frames)
        if qp >= query_pct and cp >= compared_pct:
            out.append((value, qp, cp, int(d[near].min())))
    return sorted(out, key=lambda m: (-m[1], -m[2], m[3], ids[m[0]]))


def match(party: Party, queries: list[str], **options: Any) -> list[list[Figure]]:
    body = {"queries": [{"signal_type": "vpdq", "value": v} for v in queries], **options}
    response = party.client.post("/api/v1/match", body, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    return [
        [
            (
                m["signal"]["value"],
                m["query_match_percent"],
                m["compared_match_percent"],
                m["distance"],
            )
            for m in r["matches"]
        ]
        for r in results
    ]


def corpus_and_queries(seed: int) -> tuple[dict[str, str], list[str]]:
    """Clustered videos (scenes of 4 frames) with poor and repeated frames, a few images,
    and queries: re-encoded copies with some frames pushed out of reach, trims, a mix of
    two videos, a still image as a video, unrelated videos and a poor-only video."""
    rng = np.random.default_rng(seed)
    videos = clustered_videos(rng, 10, frames=12, scene_frames=4)
    corpus: dict[str, str] = {}
    values: list[Frames] = []
    for i, video in enumerate(videos):
        frames = as_frames(video)
        frames[3] = (frames[3][0], 30)  # a poor frame
        if i % 2:
            frames.insert(5, frames[4])  # a repeated frame
            frames.insert(0, (frames[7][0], 20))  # a hash first seen poor, later good
        values.append(frames)
        corpus[vpdq(frames)] = "vpdq"
    images = [to_hex(flip_bits(rng, videos[0][2:3], [12]))[0], to_hex(uniform_hashes(rng, 1))[0]]
    corpus.update((image, "pdq") for image in images)
    queries = []
    for i, frames in enumerate(values[:6]):
        hashes = np.array([list(bytes.fromhex(h)) for h, _ in frames], dtype=np.uint8)
        flips = rng.integers(0, 25, len(frames))
        flips[rng.choice(len(frames), size=i % 4, replace=False)] = 60  # out of reach
        moved = to_hex(flip_bits(rng, hashes, flips))
        copy = [(h, q) for h, (_, q) in zip(moved, frames, strict=True)]
        queries.append(vpdq(copy[2 : 2 + 6 + i]))  # trimmed to 6..11 frames
    queries.append(vpdq(values[6][:6] + values[7][:4]))  # two videos, 60 % and 40 %
    queries.append(vpdq([(images[0], 100)] * 3 + [(images[1], 90)]))
    queries.append(vpdq(as_frames(clustered_videos(rng, 1, frames=8, scene_frames=4)[0])))
    queries.append(vpdq(as_frames(videos[8], quality=10)))  # no good frame
    return corpus, queries


def submit_corpus(party: Party, corpus: dict[str, str], **claims: Any) -> dict[str, int]:
    tokens = [party.statement(t, v, **claims) for v, t in corpus.items()]
    assert party.submit(*tokens)["accepted"] == len(tokens)
    return dict(Signal.objects.filter(value__in=list(corpus)).values_list("value", "id"))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"vpdq_query_match_percent": 0, "vpdq_compared_match_percent": 0},
        {"vpdq_query_match_percent": 50, "vpdq_compared_match_percent": 60.5},
        {"vpdq_query_match_percent": 100, "vpdq_compared_match_percent": 100},
        {"max_distance": 20, "vpdq_query_match_percent": 30},
    ],
    ids=["defaults", "frame-level", "50-60.5", "100-100", "d20-30"],
)
def test_figures_thresholds_and_order_equal_brute_force(
    search_path: str, options: dict[str, Any]
) -> None:
    """Each vpdq query's matches are exactly the brute-force candidates meeting both
    thresholds, with the same two percentages and closest-pair distance, ordered by
    query %, compared % (descending), distance, then signal id."""
    acme, globex = make_party(), make_party()
    corpus, queries = corpus_and_queries(seed=7)
    ids = submit_corpus(acme, corpus)
    answers = match(globex, queries, **options)
    thresholds = {
        "max_distance": options.get("max_distance", 31),
        "query_pct": options.get("vpdq_query_match_percent", 80.0),
        "compared_pct": options.get("vpdq_compared_match_percent", 0.0),
    }
    expected = [brute_force(q, corpus, ids, **thresholds) for q in queries]
    assert answers == expected
    if not options:  # the data are not trivial: partial figures, misses and poor frames
        assert sum(bool(a) for a in answers[:6]) >= 4 and answers[-2:] == [[], []]
        assert any(0 < m[2] < 100 for a in answers for m in a)
        assert any(80 <= m[1] < 100 for a in answers for m in a)


def test_frame_level_answer_includes_partial_videos_and_images() -> None:
    """Thresholds of 0 return every video or image sharing one frame with the query,
    including the two partial videos of a mixed query that the defaults drop, and a pdq
    image counts as a one-frame video (compared_match_percent 100)."""
    acme, globex = make_party(), make_party()
    corpus, queries = corpus_and_queries(seed=11)
    ids = submit_corpus(acme, corpus)
    mixed, still = queries[6], queries[7]
    default = match(globex, [mixed, still])
    frame_level = match(
        globex, [mixed, still], vpdq_query_match_percent=0, vpdq_compared_match_percent=0
    )
    assert default[0] == []
    assert len(frame_level[0]) == 2 and all(0 < m[1] < 80 for m in frame_level[0])
    image_matches = [m for m in frame_level[1] if corpus[m[0]] == "pdq"]
    assert len(image_matches) == 2 and all(m[1:3] == (50.0, 100.0) for m in image_matches)
    assert frame_level == [brute_force(q, corpus, ids, query_pct=0) for q in (mixed, still)]


def test_videos_outside_the_audience_are_never_matched() -> None:
    """A video shared with a group is matched by the group's members only; to anyone else
    its copy gets the answer of an unrelated video. A retracted video stops matching."""
    acme, initech, globex = make_party(), make_party(), make_party()
    make_group("acme-initech", acme, initech)
    rng = np.random.default_rng(3)
    hidden, public, gone = (
        as_frames(v) for v in clustered_videos(rng, 3, frames=10, scene_frames=1)
    )
    now = int(time.time())
    acme.submit(acme.statement("vpdq", vpdq(hidden), audience="group:acme-initech"))
    acme.submit(
        acme.statement("vpdq", vpdq(public)), acme.statement("vpdq", vpdq(gone), iat=now - 9)
    )
    acme.submit(acme.statement("vpdq", vpdq(gone), op="retract", iat=now - 5))
    unrelated = vpdq(as_frames(clustered_videos(rng, 1, frames=10)[0]))
    queries = [vpdq(hidden[1:]), vpdq(public), vpdq(gone), unrelated]
    everyone = {"vpdq_query_match_percent": 0, "vpdq_compared_match_percent": 0}
    for_globex = match(globex, queries, **everyone)
    assert for_globex[0] == for_globex[2] == for_globex[3] == []
    assert [m[0] for m in for_globex[1]] == [vpdq(public)]
    for_initech = match(initech, queries, **everyone)
    assert [m[:3] for m in for_initech[0]] == [(vpdq(hidden), 100.0, 90.0)]
    assert for_initech[2] == []


def test_index_updates_and_snapshots_keep_the_figures() -> None:
    """A video submitted after the index opened (its delta) and one in the snapshot's base
    get the same figures; a retracted base video stops matching; a process that reopens
    the index from the snapshot answers the same."""
    acme, globex = make_party(), make_party()
    rng = np.random.default_rng(5)
    first, second, third = (
        as_frames(v) for v in clustered_videos(rng, 3, frames=8, scene_frames=1)
    )
    now = int(time.time())
    acme.submit(
        acme.statement("vpdq", vpdq(first), iat=now - 9), acme.statement("vpdq", vpdq(second))
    )
    queries = [vpdq(first[:4]), vpdq(second[2:]), vpdq(third + third[:2])]
    assert [[m[:3] for m in a] for a in match(globex, queries)] == [
        [(vpdq(first), 100.0, 50.0)],
        [(vpdq(second), 100.0, 75.0)],
        [],
    ]
    acme.submit(acme.statement("vpdq", vpdq(third)))
    acme.submit(acme.statement("vpdq", vpdq(first), op="retract", iat=now - 5))
    time.sleep(0.25)  # the index catches up at most every REFRESH_SECONDS
    after = match(globex, queries)
    assert [[m[:3] for m in a] for a in after] == [
        [],
        [(vpdq(second), 100.0, 75.0)],
        [(vpdq(third), 100.0, 100.0)],
    ]
    match_index_snapshot()
    match_index_reset()
    assert match(globex, queries) == after


@override_settings(CORDIALE_MATCH_WORK_BUDGET=1_000)
def test_video_frames_count_against_the_work_budget() -> None:
    """Each distinct good frame of a video query is a PDQ search: with 60 frames indexed
    (a full scan each) and a budget of 1,000, a 20-frame query is refused with a 413
    match_too_costly problem; the same video with 15 of its frames poor (5 searched) and
    one with every frame repeated (dedup: 10 searched) are answered."""
    acme = make_party()
    rng = np.random.default_rng(9)
    indexed = clustered_videos(rng, 1, frames=60, scene_frames=1)[0]
    acme.submit(acme.statement("vpdq", vpdq(as_frames(indexed))))
    query = as_frames(indexed[:20])
    body = {"queries": [{"signal_type": "vpdq", "value": vpdq(query)}]}
    assert_problem(acme.client.post("/api/v1/match", body, format="json"), 413, "match_too_costly")
    poor = [(h, 100 if i < 5 else 40) for i, (h, _) in enumerate(query)]
    repeated = query[:10] * 2
    answers = match(acme, [vpdq(poor)])
    assert [m[1:3] for m in answers[0]] == [(100.0, 5 * 100 / 60)]
    assert [m[1:3] for m in match(acme, [vpdq(repeated)])[0]] == [(100.0, 10 * 100 / 60)]


def test_bad_thresholds_and_values_are_problems() -> None:
    """Thresholds that are not numbers from 0 to 100 get a 400 invalid_match_percent
    problem naming the field; a malformed vpdq value is a per-query invalid_value; a video
    of only poor frames matches nothing, without error."""
    acme = make_party()
    q = {
        "signal_type": "vpdq",
        "value": vpdq(as_frames(uniform_hashes(np.random.default_rng(1), 2))),
    }
    for field in ("vpdq_query_match_percent", "vpdq_compared_match_percent"):
        for bad in (-0.5, 100.5, "80", True, None, [80]):
            response = acme.client.post(
                "/api/v1/match", {"queries": [q], field: bad}, format="json"
            )
            data = assert_problem(response, 400, "invalid_match_percent")
            assert data["errors"][0]["field"] == field
    bad_values = ["[]", '["abc,100,0.0"]', json.dumps([q["value"]]), "{}"]
    body = {"queries": [{"signal_type": "vpdq", "value": v} for v in bad_values]}
    results = acme.client.post("/api/v1/match", body, format="json").json()["results"]
    assert [r["error"]["code"] for r in results] == ["invalid_value"] * len(bad_values)
    poor = vpdq(as_frames(uniform_hashes(np.random.default_rng(2), 3), quality=49))
    acme.submit(acme.statement("vpdq", poor))
    assert match(acme, [poor], vpdq_query_match_percent=0) == [[]]
