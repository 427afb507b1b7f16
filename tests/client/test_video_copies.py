"""Transformed copies of generated videos, hashed by ``cordiale``'s vPDQ and matched by the
reference, python-threatexchange's vPDQ matcher (the brute-force ``compare_hash`` and the
faiss ``VPDQIndex``), and by the forum's (``exchange.matching.video.match_videos`` over its
PDQ index, what ``/api/v1/match`` answers vpdq queries with), each at the reference's
default thresholds (frame distance 31, quality 50, 80 % of the query's frames). Every
re-encoded, rescaled, watermarked, trimmed or re-timed copy is found, no unrelated video
is, and both matchers give the same figures; they are printed (``pytest -s``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from exchange.client.hashing import vpdq_hash_file
from exchange.matching.pdq_index import DEFAULT_MAX_DISTANCE, HASH_BYTES, PDQIndex
from exchange.matching.video import match_videos, video_entries, video_frames
from tests.support.videos import (
    CROP_AREA,
    SOURCES,
    TRANSFORMS,
    UNRELATED,
    make_source,
    need_video_tools,
    transform,
)

# Every transform but crop, which PDQ does not survive (tests/support/videos.py); its
# figures are printed all the same.
FOUND = [kind for kind in TRANSFORMS if kind != "crop"]


def forum_matcher(
    corpus: dict[str, str], names: list[str]
) -> Callable[[str], dict[str, tuple[float, float]]]:
    """The forum's video matcher over an index of these videos: query value -> matched
    video -> (query_match_percent, compared_match_percent), default thresholds."""
    ids, hexes = [], []
    for signal_id, name in enumerate(names, start=1):
        entry_ids, entry_hexes = video_entries(signal_id, corpus[name])
        ids += entry_ids
        hexes += entry_hexes
    raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(-1, HASH_BYTES)
    index = PDQIndex.build(np.array(ids, dtype=np.int64), raw)

    def match(value: str) -> dict[str, tuple[float, float]]:
        (found,) = match_videos(index, [video_frames(value).good], DEFAULT_MAX_DISTANCE)
        return {
            names[m.signal_id - 1]: (m.query_match_percent, m.compared_match_percent) for m in found
        }

    return match


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """vPDQ values of the sources, their copies (``source.kind``) and the unrelated videos."""
    need_video_tools()
    directory = tmp_path_factory.mktemp("videos")
    values: dict[str, str] = {}
    for name in [*SOURCES, *UNRELATED]:
        path = make_source(directory, name)
        values[name] = vpdq_hash_file(path).value
        if name not in SOURCES:
            continue
        for kind in TRANSFORMS:
            values[f"{name}.{kind}"] = vpdq_hash_file(transform(path, directory, kind)).value
        area = transform(path, directory, "crop-area", CROP_AREA)
        values[f"{name}.crop-area"] = vpdq_hash_file(area).value
    return values


def test_every_transformed_copy_and_no_unrelated_video_is_found(corpus: dict[str, str]) -> None:
    """Each copy matches its source and no other video; unrelated videos match nothing."""
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    originals = [*SOURCES, *UNRELATED]
    index = VPDQSignal.get_index_cls().build([(corpus[name], name) for name in originals])
    forum = forum_matcher(corpus, originals)
    print(f"\n{'query':<26} {'query %':>8} {'source %':>9}  {'reference finds':<18} forum finds")
    missed = []
    for source in SOURCES:
        for kind in [*TRANSFORMS, "crop-area"]:
            query = corpus[f"{source}.{kind}"]
            result = VPDQSignal.compare_hash(query, corpus[source])
            info = result.distance
            found = sorted({match.metadata for match in index.query(query)})
            ours = forum(query)
            figures = {name: f"{q:.1f}/{c:.1f}" for name, (q, c) in ours.items()}
            print(
                f"{source + '.' + kind:<26} {info.query_match_percent:>8.1f} "
                f"{info.compared_match_percent:>9.1f}  {found!s:<18} {figures}"
            )
            if kind in FOUND and (not result.match or found != [source]):
                missed.append(f"{source}.{kind}")
            assert set(found) <= {source}, f"{source}.{kind} matched another video: {found}"
            # The forum's figures are the reference's (the copies' frames are all good).
            assert {name: figures for name, figures in ours.items()} == (
                {source: (info.query_match_percent, info.compared_match_percent)}
                if result.match
                else {}
            ), f"{source}.{kind}"
    assert missed == [], f"copies the reference matcher did not find: {missed}"

    for name in UNRELATED:
        found = sorted({match.metadata for match in index.query(corpus[name])} - {name})
        others = [VPDQSignal.compare_hash(corpus[name], corpus[s]).match for s in SOURCES]
        ours = sorted(set(forum(corpus[name])) - {name})
        print(f"{name:<26} unrelated: reference {found} (brute force {sum(others)}), forum {ours}")
        assert found == [] and not any(others) and ours == []
    for source in SOURCES:
        for other in SOURCES:
            if other != source:
                assert not VPDQSignal.compare_hash(corpus[source], corpus[other]).match
