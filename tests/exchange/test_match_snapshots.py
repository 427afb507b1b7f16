"""The match index survives bad snapshot files: a corrupt, truncated, foreign-version or
mismatched snapshot is refused, rebuilt from PostgreSQL and replaced, never used or
copied forward; a good one of any age is caught up from the feed position it carries.
In every case the answers of /match equal those of a fresh rebuild."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import override_settings

from exchange.matching import service, snapshots
from exchange.matching.pdq_index import PDQIndex
from exchange.matching.service import (
    MatchIndex,
    match_index_reset,
    match_index_snapshot,
    match_index_state,
)
from tests.factories import Party, make_party, pdq

# Real commits, as between web processes; the seeded labels are restored after each test.
pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def index_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    match_index_reset()
    monkeypatch.setattr(service, "_unwritable_logged", False)
    root = tmp_path / "match-index"
    with override_settings(CORDIALE_MATCH_INDEX_DIR=root):
        yield root
    if service._rewriter is not None:
        service._rewriter.join()
    match_index_reset()


def near(value: str, bits: int) -> str:
    """``value`` with its first ``bits`` bits flipped: a PDQ hash at that distance."""
    number = int(value, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return f"{number:064x}"


def answers(party: Party, values: list[str]) -> list[Any]:
    """The /match results for each value, exact (distance 0) and near (31)."""
    out = []
    for distance in (0, 31):
        queries = [{"signal_type": "pdq", "value": v} for v in values]
        body = {"queries": queries, "max_distance": distance}
        response = party.client.post("/api/v1/match", body, format="json")
        assert response.status_code == 200, response.content
        out.append(
            [
                sorted((m["distance"], m["signal"]["value"]) for m in r["matches"])
                for r in response.json()["results"]
            ]
        )
    return out


def rebuilt_answers(party: Party, values: list[str], root: Path) -> list[Any]:
    """What a process that builds from the database answers (a directory of its own)."""
    match_index_reset()
    with override_settings(CORDIALE_MATCH_INDEX_DIR=root):
        result = answers(party, values)
    match_index_reset()
    return result


@pytest.fixture
def forum() -> tuple[Party, Party, list[str]]:
    """Acme asserts 20 values and near duplicates of some; globex asks. Returns the
    parties and the values to ask about (asserted ones and unknown neighbours)."""
    acme, globex = make_party(), make_party()
    now = int(time.time())
    values = [pdq() for _ in range(20)]
    values += [near(values[0], 5), near(values[1], 30)]
    acme.submit(*(acme.statement("pdq", v, iat=now - 10) for v in values))
    return acme, globex, [*values, near(values[2], 12), near(values[3], 40), pdq()]


def rewrite_header(path: Path, **changes: Any) -> None:
    """Change header fields and re-seal the header's own checksum (the payload is kept)."""
    data = path.read_bytes()
    header = snapshots.read_header(path)
    header.update(changes)
    header["header_sha256"] = snapshots._header_digest(header)
    path.write_bytes(snapshots._encode_header(header) + data[snapshots.HEADER_BYTES :])


def flip_hash_byte(path: Path) -> None:
    """Flip every bit of the first byte of the smallest id's hash: if read, that value
    would no longer match itself at distance 0."""
    offset = snapshots.HEADER_BYTES + snapshots.read_header(path)["arrays"]["hashes"]["offset"]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    """Cut the file short, as a copy or a disk that ran out of space would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])


def wrong_version(path: Path) -> None:
    """A snapshot of another format version, its header otherwise sound."""
    rewrite_header(path, version=snapshots.VERSION + 1)


def checksum_mismatch(path: Path) -> None:
    """A sealed header whose payload checksum is not the payload's."""
    rewrite_header(path, sha256=hashlib.sha256(b"another payload").hexdigest())


def damaged_header(path: Path) -> None:
    """A header byte changed without re-sealing: another first digit of the cursor."""
    data = path.read_bytes()
    text = data[: snapshots.HEADER_BYTES].decode()
    start = text.index('"cursor":') + len('"cursor":')
    digit = b"1" if data[start : start + 1] == b"2" else b"2"
    path.write_bytes(data[:start] + digit + data[start + 1 :])


def ahead_of_the_feed(path: Path) -> None:
    """A sound file whose position the database's feed never reached (a restore from
    an older backup): what it holds may be gone from PostgreSQL."""
    rewrite_header(path, cursor=10**12)


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "corrupt byte": (flip_hash_byte, "checksum"),
    "truncated": (truncate, "truncated"),
    "wrong version": (wrong_version, "version"),
    "checksum mismatch": (checksum_mismatch, "checksum"),
    "damaged header": (damaged_header, "corrupt"),
    "ahead of the feed": (ahead_of_the_feed, "ahead"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_bad_snapshot_is_refused_rebuilt_and_replaced(
    damage: str,
    forum: tuple[Party, Party, list[str]],
    index_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A damaged snapshot is refused with a warning and a counted reason; the process
    builds from the database, answers like a fresh rebuild, and writes a sound file
    over the bad one."""
    _, globex, values = forum
    path = match_index_snapshot()
    damage_file, reason = DAMAGES[damage]
    damage_file(path)
    bad = path.read_bytes()
    refused: list[str] = []
    monkeypatch.setattr(service, "record_snapshot_refused", refused.append)
    builds: list[MatchIndex] = []
    from_database = MatchIndex.from_database

    def counted() -> MatchIndex:
        builds.append(from_database())
        return builds[-1]

    monkeypatch.setattr(MatchIndex, "from_database", counted)
    match_index_reset()  # a process starting on the damaged file
    with caplog.at_level(logging.WARNING, logger="exchange.matching.service"):
        loaded = answers(globex, values)
    assert refused == [reason]
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert len(builds) == 1
    assert loaded[0][0] == [(0, values[0])]  # the damaged entry still matches itself
    # The bad file was replaced by a sound one of this database, not copied forward.
    assert path.read_bytes() != bad
    good = snapshots.read(path, database=service._database_name())
    assert good.cursor == builds[0].cursor
    state = match_index_state()
    assert state is not None and state.snapshot == good.checksum
    monkeypatch.setattr(MatchIndex, "from_database", from_database)
    assert loaded == rebuilt_answers(globex, values, tmp_path / "fresh")


@pytest.mark.parametrize("damage", ["corrupt byte", "checksum mismatch"])
def test_snapshot_writer_never_copies_a_bad_snapshot_forward(
    damage: str,
    forum: tuple[Party, Party, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The explicit snapshot writer (the Celery task's service) refuses a bad current
    file and writes one built from the database instead."""
    _, globex, values = forum
    path = match_index_snapshot()
    good = snapshots.read(path, database=service._database_name()).checksum
    DAMAGES[damage][0](path)
    builds: list[MatchIndex] = []
    from_database = MatchIndex.from_database

    def counted() -> MatchIndex:
        builds.append(from_database())
        return builds[-1]

    monkeypatch.setattr(MatchIndex, "from_database", counted)
    match_index_snapshot()
    assert len(builds) == 1
    monkeypatch.undo()
    rewritten = snapshots.read(path, database=service._database_name())
    assert rewritten.checksum == good  # the same content again, from PostgreSQL
    match_index_reset()
    assert answers(globex, values) == rebuilt_answers(globex, values, tmp_path / "fresh")


def test_snapshot_behind_the_feed_is_caught_up(
    forum: tuple[Party, Party, list[str]],
    index_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sound snapshot from an older feed position is used (no rebuild) and caught up
    from the position it carries: later assertions appear, later retractions go."""
    acme, globex, values = forum
    path = match_index_snapshot()
    behind = snapshots.read_header(path)["cursor"]
    now = int(time.time())
    added = near(values[5], 20)
    acme.submit(acme.statement("pdq", added, iat=now - 5))
    acme.submit(acme.statement("pdq", values[0], op="retract", iat=now - 5))
    values.append(added)

    match_index_reset()

    def no_rebuild() -> MatchIndex:
        raise AssertionError("rebuilt from the database instead of loading the snapshot")

    monkeypatch.setattr(MatchIndex, "from_database", no_rebuild)
    loaded = answers(globex, values)
    state = match_index_state()
    assert state is not None and state.snapshot_cursor == behind < state.cursor
    assert loaded[0][0] == [] and loaded[0][-1] == [(0, added)]
    monkeypatch.undo()
    assert loaded == rebuilt_answers(globex, values, tmp_path / "fresh")


def test_unwritable_directory_works_from_memory(
    forum: tuple[Party, Party, list[str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A snapshot directory that cannot be created or written (here: under a regular
    file, which stops root too) is logged once; matching works from memory."""
    _, globex, values = forum
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with (
        override_settings(CORDIALE_MATCH_INDEX_DIR=blocker / "match-index"),
        caplog.at_level(logging.WARNING, logger="exchange.matching.service"),
    ):
        first = answers(globex, values)
        match_index_reset()  # the next start of the process builds again, silently
        second = answers(globex, values)
        with pytest.raises(OSError):
            match_index_snapshot()
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1
    assert first == second == rebuilt_answers(globex, values, tmp_path / "fresh")


def test_process_rewrites_the_snapshot_when_it_is_far_behind(
    forum: tuple[Party, Party, list[str]],
    index_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process whose state is REWRITE_FEED_ROWS past its snapshot writes a new one in
    the background, at its own position; the next process starts from that."""
    acme, globex, values = forum
    path = match_index_snapshot()
    first = snapshots.read_header(path)
    monkeypatch.setattr(service, "REWRITE_FEED_ROWS", 1)
    assert answers(globex, values)  # loads the snapshot: nothing to rewrite yet
    assert service._rewriter is None
    added = pdq()
    acme.submit(acme.statement("pdq", added))
    time.sleep(service.REFRESH_SECONDS)
    assert answers(globex, [added])[0] == [[(0, added)]]
    assert service._rewriter is not None
    service._rewriter.join(timeout=30)
    rewritten = snapshots.read(path, database=service._database_name())
    state = match_index_state()
    assert state is not None and rewritten.cursor == state.cursor > first["cursor"]
    assert rewritten.header["entries"] == first["entries"] + 1


# Two writers in separate processes (the module is Django-free), each replacing the
# file with its own index many times.
WRITER = """
import sys
from pathlib import Path
import numpy as np
from exchange.matching import snapshots
from exchange.matching.pdq_index import PDQIndex

path, seed, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
n = 20_000 + seed
index = PDQIndex.build(np.arange(n), rng.integers(0, 256, (n, 32), dtype=np.uint8))
for _ in range(rounds):
    header = snapshots.write(path, index, cursor=seed, database="test")
print(header["sha256"])
"""


def test_concurrent_writers_leave_a_valid_file(tmp_path: Path) -> None:
    """Two processes replacing the snapshot over and over: a reader meanwhile always
    finds a complete, verified file; at the end it is one of theirs, whole, and no
    temporary file is left."""
    path = tmp_path / "pdq.snapshot"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(seed), "25"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    reads = 0
    while any(w.poll() is None for w in writers):
        try:
            snapshot = snapshots.read(path, database="test")
        except FileNotFoundError:
            continue  # not written yet
        assert snapshot.cursor in (1, 2) and len(snapshot.index) == 20_000 + snapshot.cursor
        reads += 1
    written = set()
    for writer in writers:
        out, _ = writer.communicate()
        assert writer.returncode == 0
        written.add(out.strip())
    final = snapshots.read(path, database="test")
    assert final.checksum in written and len(written) == 2
    assert reads > 0
    assert [p.name for p in tmp_path.iterdir()] == ["pdq.snapshot"]


def test_round_trip_keeps_every_answer(tmp_path: Path) -> None:
    """A written and read snapshot answers exactly like the index it was written from,
    and its header counts pdq entries and vpdq frames."""
    rng = np.random.default_rng(5)
    ids = np.concatenate([np.arange(1, 3001), -np.arange(1, 201)])
    hashes = rng.integers(0, 256, (len(ids), 32), dtype=np.uint8)
    index = PDQIndex.build(ids, hashes)
    index.remove(np.array([1, 2]))
    index.add(np.array([5000]), hashes[:1])
    header = snapshots.write(tmp_path / "s", index, cursor=42, database="db")
    assert header["entries"] == 3199 and header["pdq"] == 2999 and header["vpdq_frames"] == 200
    loaded = snapshots.read(tmp_path / "s", database="db")
    assert loaded.cursor == 42 and not loaded.index._hashes.flags.writeable
    queries = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    queries[:10] = hashes[:10]
    for distance in (0, 31, 64):
        assert loaded.index.query_many(queries, distance) == index.query_many(queries, distance)
    with pytest.raises(snapshots.SnapshotRefused, match="foreign"):
        (tmp_path / "x").write_bytes(json.dumps(header).encode())
        snapshots.read(tmp_path / "x", database="db")
