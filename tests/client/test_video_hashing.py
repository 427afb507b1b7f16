"""vPDQ hashing of video files by the client: equal to the reference's, and how the CLI uses
it (``cordiale hash``, ``match VIDEO``, ``submit`` rows with a ``file``)."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import httpx
import pytest

from exchange.client import jws
from exchange.client.cli import main
from exchange.client.hashing import HashingUnavailable, vpdq_hash_file
from exchange.client.signal_types import get_signal_type
from tests.client.fakes import FakeForum, forum_transport, jwk_for, snapshot
from tests.support.videos import make_source, need_video_tools, transform


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORDIALE_URL", "https://forum.example")
    monkeypatch.setenv("CORDIALE_API_KEY", "key")
    monkeypatch.delenv("CORDIALE_SIGNING_KEY", raising=False)
    monkeypatch.delenv("CORDIALE_MEMBER", raising=False)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two short generated videos and a watermarked copy of the first."""
    need_video_tools()
    directory = tmp_path_factory.mktemp("clips")
    zoom = make_source(directory, "zoom-julia", seconds=5)
    return {
        "zoom": zoom,
        "life": make_source(directory, "life", seconds=4),
        "copy": transform(zoom, directory, "watermark"),
    }


@pytest.fixture
def without_vpdq(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the optional extra 'video' were not installed."""
    monkeypatch.setitem(sys.modules, "vpdq", None)


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.strip().splitlines()]


def test_vpdq_values_equal_the_references(videos: dict[str, Path]) -> None:
    """The value is python-threatexchange's ``VPDQSignal.hash_from_file``, byte for byte,
    one frame a second, and already in the forum's canonical form."""
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    for name, path in videos.items():
        ours = vpdq_hash_file(path)
        assert ours.value == VPDQSignal.hash_from_file(path), name
        assert get_signal_type("vpdq").validate(ours.value) == ours.value
        frames = json.loads(ours.value)
        assert ours.frames == len(frames) == (4 if name == "life" else 5)
        assert [frame.rsplit(",", 1)[1] for frame in frames[:3]] == ["0.0", "1.0", "2.0"]


def test_hash_prints_every_hash_of_a_video(
    videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``cordiale hash VIDEO`` prints md5, sha256 and vpdq, one JSON line each, offline."""
    path = videos["zoom"]
    assert main(["hash", str(path)]) == 0
    *hashes, last = lines(capsys.readouterr().out)
    assert last == {"files": 1, "hashes": 3}
    assert [(h["signal_type"], h["value"]) for h in hashes] == [
        ("md5", hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()),
        ("sha256", hashlib.sha256(path.read_bytes()).hexdigest()),
        ("vpdq", vpdq_hash_file(path).value),
    ]
    assert main(["hash", str(path), "--signal-type", "vpdq"]) == 0
    assert lines(capsys.readouterr().out)[-1] == {"files": 1, "hashes": 1}


def test_without_the_video_extra_the_message_says_what_to_install(
    videos: dict[str, Path], without_vpdq: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """No vpdq package: hashing a video names the extra and the FFmpeg packages it builds
    against; ``hash`` and ``match`` still give the file's md5 and sha256."""
    with pytest.raises(HashingUnavailable) as raised:
        vpdq_hash_file(videos["zoom"])
    assert raised.value.code == "vpdq_missing"
    assert "'video' extra" in str(raised.value) and "libavcodec-dev" in str(raised.value)

    assert main(["hash", str(videos["zoom"])]) == 0
    captured = capsys.readouterr()
    assert lines(captured.out)[-1] == {"files": 1, "hashes": 2}
    assert "no vpdq hash: hashing videos needs the optional package vpdq" in captured.err

    sent: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.extend(json.loads(request.content)["queries"])
        results = [{"index": i, "matches": []} for i in range(len(sent))]
        return httpx.Response(200, json={"results": results})

    assert main(["match", str(videos["zoom"])], transport=forum_transport(handler)) == 0
    assert [query["signal_type"] for query in sent] == ["md5", "sha256"]
    assert "'video' extra" in capsys.readouterr().err


def test_match_video_sends_its_vpdq_and_prints_the_figures(
    videos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``match VIDEO`` queries its md5, sha256 and vpdq with the caller's video thresholds,
    and prints a video match with its two percentages."""
    query = vpdq_hash_file(videos["copy"]).value
    original = vpdq_hash_file(videos["zoom"]).value
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        video = {
            "distance": 12,
            "query_match_percent": 100.0,
            "compared_match_percent": 80.0,
            "signal": {"signal_type": "vpdq", "value": original, "statements": []},
        }
        return httpx.Response(
            200,
            json={
                "results": [
                    {"index": 0, "matches": []},
                    {"index": 1, "matches": []},
                    {"index": 2, "matches": [video]},
                ]
            },
        )

    argv = ["match", str(videos["copy"]), "--vpdq-query-match-percent", "90"]
    assert main(argv, transport=forum_transport(handler)) == 0
    (body,) = bodies
    assert body["queries"][2] == {"signal_type": "vpdq", "value": query}  # type: ignore[index]
    assert body["vpdq_query_match_percent"] == 90.0
    assert "vpdq_compared_match_percent" not in body
    captured = capsys.readouterr()
    assert lines(captured.out)[-1] == {"queries": 3, "matched": 1}
    assert "100% of the query's frames in it, 80% of its frames matched" in captured.err
    assert "[5 frames]" in captured.err


def test_submit_rows_with_a_file_hash_it_locally(
    videos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row with a ``file`` (relative to the input) is signed with the file's value for its
    signal type; a missing file, a value and a file together, or a type no file gives are
    that row's rejection only. A re-run sends nothing again, unless the file changed."""
    main(["keygen", "--out", str(tmp_path / "k.pem")])
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "attack.mp4").write_bytes(videos["zoom"].read_bytes())
    data = tmp_path / "videos.csv"
    data.write_text(
        "signal_type,file,value,labels,tlp,audience,content_type\n"
        "vpdq,clips/attack.mp4,,violent-attack,amber,forum,video\n"
        "md5,clips/attack.mp4,,violent-attack,amber,forum,video\n"
        "vpdq,clips/missing.mp4,,violent-attack,amber,forum,video\n"
        "md5,clips/attack.mp4,d41d8cd98f00b204e9800998ecf8427e,violent-attack,amber,forum,\n"
        "url,clips/attack.mp4,,violent-attack,amber,forum,\n"
    )
    forum = FakeForum()
    argv = ["submit", str(data), "--signing-key", str(tmp_path / "k.pem")]
    assert main(argv, transport=forum.transport()) == 1
    captured = capsys.readouterr()
    assert lines(captured.out)[-1] == {"accepted": 2, "duplicate": 0, "stale": 0, "rejected": 3}
    claims = [jws.parse_compact(token).claims for token in forum.seen_jtis.values()]
    assert [(c["signal_type"], c["value"], c["content_type"]) for c in claims] == [
        ("vpdq", vpdq_hash_file(videos["zoom"]).value, "video"),
        (
            "md5",
            hashlib.md5(videos["zoom"].read_bytes(), usedforsecurity=False).hexdigest(),
            "video",
        ),
    ]
    with (tmp_path / "videos.csv.rejected.csv").open(newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert [(row["file"], row["code"]) for row in rejected] == [
        ("clips/missing.mp4", "unreadable_file"),
        ("clips/attack.mp4", "malformed"),
        ("clips/attack.mp4", "malformed"),
    ]
    assert "value or a file, not both" in rejected[1]["detail"]

    # Run again: every row has its answer in the journal, nothing is sent (or hashed) again.
    assert main(argv, transport=forum.transport()) == 1
    assert len(forum.submitted) == 1
    # The video replaced by another: its rows are hashed and signed afresh.
    (clips / "attack.mp4").write_bytes(videos["life"].read_bytes())
    assert main(argv, transport=forum.transport()) == 1
    resent = [jws.parse_compact(token).claims for token in forum.submitted[-1]]
    assert [(c["signal_type"], c["value"]) for c in resent] == [
        ("vpdq", vpdq_hash_file(videos["life"]).value),
        ("md5", hashlib.md5(videos["life"].read_bytes(), usedforsecurity=False).hexdigest()),
    ]


def test_submit_without_the_video_extra_stops_before_sending(
    videos: dict[str, Path],
    tmp_path: Path,
    without_vpdq: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A video row without the vpdq package is no bad row: the run stops, names the extra,
    and sends nothing."""
    main(["keygen", "--out", str(tmp_path / "k.pem")])
    data = tmp_path / "videos.jsonl"
    row = {"signal_type": "vpdq", "file": str(videos["zoom"]), "labels": ["violent-attack"]}
    data.write_text(json.dumps({**row, "tlp": "amber", "audience": "forum"}) + "\n")
    forum = FakeForum()
    argv = ["submit", str(data), "--signing-key", str(tmp_path / "k.pem")]
    assert main(argv, transport=forum.transport()) == 1
    captured = capsys.readouterr()
    assert lines(captured.out)[-1]["error"]["code"] == "vpdq_missing"  # type: ignore[index]
    assert "'video' extra" in captured.err
    assert forum.submitted == []


def test_replica_search_matches_a_copy_offline_as_the_reference_does(
    videos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a sync, ``replica search VIDEO`` finds the synced video from a watermarked copy
    with python-threatexchange's two figures, and an unrelated video finds nothing."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    original = vpdq_hash_file(videos["zoom"]).value
    key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(key, "acme")]
    forum.add_page([snapshot(key, signal_type="vpdq", value=original)], has_more=False)
    state = str(tmp_path / "state")
    assert main(["sync", "--state", state], transport=forum.transport()) == 0
    capsys.readouterr()

    argv = ["replica", "search", str(videos["copy"]), str(videos["life"]), "--state", state]
    assert main(argv) == 0
    out = lines(capsys.readouterr().out)
    assert out[-1] == {"queries": 6, "matched": 1}
    (video,) = [line for line in out[:-1] if line["query"]["signal_type"] == "vpdq"][:1]  # type: ignore[index]
    (match,) = video["matches"]  # type: ignore[misc]
    reference = VPDQSignal.compare_hash(vpdq_hash_file(videos["copy"]).value, original).distance
    assert match["signal"]["value"] == original
    assert (match["query_match_percent"], match["compared_match_percent"]) == (
        reference.query_match_percent,
        reference.compared_match_percent,
    )
    assert main([*argv, "--vpdq-compared-match-percent", "100.1"]) == 0
    assert lines(capsys.readouterr().out)[-1] == {"queries": 6, "matched": 0}
