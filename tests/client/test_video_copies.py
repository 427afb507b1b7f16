"""Transformed copies of generated videos, hashed by ``cordiale``'s vPDQ and matched by the
reference: python-threatexchange's vPDQ matcher (the brute-force ``compare_hash`` and the
faiss ``VPDQIndex``), at its default thresholds (frame distance 31, quality 50, 80 % of the
query's frames). Every re-encoded, rescaled, watermarked, trimmed or re-timed copy is found,
no unrelated video is; the figures are printed (``pytest -s``).
"""

from __future__ import annotations

import pytest

from exchange.client.hashing import vpdq_hash_file
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
    print(f"\n{'query':<28} {'source':<14} {'query %':>8} {'source %':>9}  index finds")
    missed = []
    for source in SOURCES:
        for kind in [*TRANSFORMS, "crop-area"]:
            query = corpus[f"{source}.{kind}"]
            result = VPDQSignal.compare_hash(query, corpus[source])
            info = result.distance
            found = sorted({match.metadata for match in index.query(query)})
            print(
                f"{source + '.' + kind:<28} {source:<14} {info.query_match_percent:>8.1f} "
                f"{info.compared_match_percent:>9.1f}  {found}"
            )
            if kind in FOUND and (not result.match or found != [source]):
                missed.append(f"{source}.{kind}")
            assert set(found) <= {source}, f"{source}.{kind} matched another video: {found}"
    assert missed == [], f"copies the reference matcher did not find: {missed}"

    for name in UNRELATED:
        found = sorted({match.metadata for match in index.query(corpus[name])} - {name})
        others = [VPDQSignal.compare_hash(corpus[name], corpus[s]).match for s in SOURCES]
        print(f"{name:<28} unrelated: index finds {found}, brute force matches {sum(others)}")
        assert found == [] and not any(others)
    for source in SOURCES:
        for other in SOURCES:
            if other != source:
                assert not VPDQSignal.compare_hash(corpus[source], corpus[other]).match
