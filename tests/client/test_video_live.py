"""Videos end to end against a live forum: one member submits a generated video with
``cordiale submit`` (a row naming the file), another finds it from a re-uploaded copy with
``cordiale match`` and with the ``threatexchange`` CLI, each a real process that hashes the
copy locally. Unrelated videos find nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exchange.client.hashing import vpdq_hash_file
from tests.client.test_threatexchange_live import Threatexchange
from tests.support.live_server import LiveForum, LiveMember
from tests.support.videos import UNRELATED, make_source, need_video_tools, transform

SOURCE = "zoom-seahorse"
COPIES = ("trim", "watermark", "downscale")


def submit_videos(forum: LiveForum, member: LiveMember, directory: Path, *names: str) -> None:
    """``member`` submits the vPDQ and MD5 of each generated video, as rows naming the file."""
    rows = "".join(
        f"{signal_type},{name}.mp4,perpetrator-content,amber,forum,video\n"
        for name in names
        for signal_type in ("vpdq", "md5")
    )
    data = directory / "videos.csv"
    data.write_text("signal_type,file,labels,tlp,audience,content_type\n" + rows)
    run = forum.cli(member, "submit", str(data))
    assert run.returncode == 0, run.stderr
    assert run.last == {"accepted": 2 * len(names), "duplicate": 0, "stale": 0, "rejected": 0}


def answers(stdout: str) -> list[dict[str, Any]]:
    """The per-query JSON lines of ``cordiale match`` (the summary line left out)."""
    return [json.loads(line) for line in stdout.strip().splitlines()[:-1]]


@pytest.mark.slow
def test_a_submitted_video_is_matched_from_copies_by_another_members_cli(
    forum: LiveForum, tmp_path: Path
) -> None:
    """globex's ``cordiale match`` of a trimmed, a watermarked and a downscaled copy finds
    acme's video (by vPDQ: the copies' bytes differ, so no md5 matches) with the forum's
    two video figures; an unrelated video matches nothing."""
    need_video_tools()
    source = make_source(tmp_path, SOURCE)
    make_source(tmp_path, "cellauto")  # another video acme shares
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    submit_videos(forum, acme, tmp_path, SOURCE, "cellauto")
    expected = vpdq_hash_file(source).value

    copies = [transform(source, tmp_path, kind) for kind in COPIES]
    unrelated = make_source(tmp_path, "life")
    run = forum.cli(globex, "match", *map(str, copies), str(unrelated))
    assert run.returncode == 0, run.stderr
    # Per file: md5, sha256, vpdq. Only the copies' vpdq queries match, and only acme's video.
    assert run.last == {"queries": 3 * (len(copies) + 1), "matched": len(copies)}
    by_type: dict[str, list[list[dict[str, Any]]]] = {}
    for answer in answers(run.stdout):
        by_type.setdefault(answer["query"]["signal_type"], []).append(answer["matches"])
    assert all(matches == [] for matches in by_type["md5"] + by_type["sha256"])
    *found, nothing = by_type["vpdq"]
    assert nothing == []
    for kind, matches in zip(COPIES, found, strict=True):
        assert [m["signal"]["value"] for m in matches] == [expected], kind
        (match,) = matches
        assert [s["member"] for s in match["signal"]["statements"]] == ["acme"]
        assert match["distance"] <= 31
        # The forum compares whole videos, at the reference matcher's thresholds.
        assert match["query_match_percent"] >= 80, (kind, match)
        assert 0 < match["compared_match_percent"] <= 100, (kind, match)
        print(
            f"{kind}: {match['query_match_percent']:.1f} % of the copy's frames, "
            f"{match['compared_match_percent']:.1f} % of the original's, closest frame "
            f"{match['distance']} bits"
        )
        assert f"{kind}.mp4 vpdq (" in run.stderr
    assert "% of the query's frames in it" in run.stderr


@pytest.mark.slow
def test_the_threatexchange_cli_matches_a_copy_of_a_forum_video(
    forum: LiveForum, tmp_path: Path
) -> None:
    """With the extension, the ``threatexchange`` CLI knows ``vpdq`` as python-threatexchange's
    own vPDQ type: it fetches the forum's videos and matches a re-encoded copy with its own
    vPDQ index; an unrelated video matches nothing."""
    need_video_tools()
    source = make_source(tmp_path, SOURCE)
    others = [name for name in UNRELATED if name != "life"]
    for name in others:
        make_source(tmp_path, name)
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    submit_videos(forum, acme, tmp_path, SOURCE, *others)

    tx = Threatexchange(tmp_path, globex.api_key)
    added = tx("config", "extensions", "add", "exchange.client.threatexchange")
    assert added.returncode == 0, added.stderr
    assert "vpdq - VPDQSignal" in added.stdout
    created = tx(
        "config", "collab", "edit", "cordiale", "forum", "--create", "--server-url", forum.url
    )
    assert created.returncode == 0, created.stderr
    fetched = tx("fetch")
    assert fetched.returncode == 0, fetched.stderr
    dataset = tx("dataset", "--print-signals", "--print-signals-only", "-s", "vpdq")
    assert dataset.returncode == 0, dataset.stderr
    assert vpdq_hash_file(source).value in dataset.stdout.splitlines()

    for kind in ("bitrate", "framerate"):
        copy = transform(source, tmp_path, kind)
        result = tx("match", "video", str(copy))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        print(f"threatexchange match video {copy.name}: {lines}")
        assert len(lines) == 1 and "vpdq" in lines[0], lines
        assert "(forum) POSITIVE_CLASS" in lines[0] and "acme" in lines[0]
    miss = tx("match", "video", str(make_source(tmp_path, "life")))
    assert miss.returncode == 0, miss.stderr
    assert miss.stdout.strip() == ""
