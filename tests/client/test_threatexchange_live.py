"""The forum through the real python-threatexchange: its CLI, and its API for HMA.

The ``threatexchange`` command runs as a subprocess with its own state directory and home,
adds ``exchange.client.threatexchange`` as an extension, fetches from the live forum into
its local index and matches with pytx's own PDQ index.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from threatexchange.exchanges import fetch_state as state
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.utils import dataclass_json

from exchange.client import CordialeClient, build_statement, load_private_key, sign_statement
from exchange.client.threatexchange import (
    CordialeCheckpoint,
    CordialeCollabConfig,
    CordialeCredentials,
    CordialeSignalExchangeAPI,
    CordialeSignalMetadata,
    DropPolicy,
    FileMD5Signal,
)
from tests.factories import pdq
from tests.support.live_server import CliRun, LiveForum, LiveMember, run

MD5 = "9e107d9d372bb6826bd81d3542a419d6"
PDQ_EXAMPLE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def next_second() -> None:
    """Statements of one member on one signal are ordered by their iat, in seconds."""
    time.sleep(1 - time.time() % 1 + 0.01)


def send(member: LiveMember, signal_type: str, value: str, op: str = "assert") -> None:
    key = load_private_key(member.key_path)
    extra = {"labels": ["recruitment"], "tlp": "green", "audience": "forum"}
    claims = build_statement(
        issuer=member.slug,
        signal_type=signal_type,
        value=value,
        op=op,
        **(extra if op == "assert" else {}),  # type: ignore[arg-type]
    )
    with CordialeClient(member.url, member.api_key) as client:
        (result,) = client.submit([sign_statement(claims, key)])["results"]
    assert result["status"] == "accepted", result


def send_many(member: LiveMember, signal_type: str, values: list[str]) -> None:
    key = load_private_key(member.key_path)
    tokens = [
        sign_statement(
            build_statement(
                issuer=member.slug,
                signal_type=signal_type,
                value=value,
                op="assert",
                labels=["recruitment"],
                tlp="green",
                audience="forum",
            ),
            key,
        )
        for value in values
    ]
    with CordialeClient(member.url, member.api_key) as client:
        assert client.submit(tokens)["accepted"] == len(values)


class Threatexchange:
    """The ``threatexchange`` CLI with an isolated state directory and home."""

    def __init__(self, tmp_path: Path, api_key: str) -> None:
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.env = {
            "HOME": str(self.home),
            "TX_STATEDIR": str(tmp_path / "tx-state"),
            "TX_CORDIALE_API_KEY": api_key,
        }
        self.tmp_path = tmp_path

    def __call__(self, *args: str) -> CliRun:
        return run(["-m", "threatexchange.cli.main", *args], self.env)

    def match(self, signal_type: str, *values: str) -> list[str]:
        """The lines ``threatexchange match`` prints for these hashes."""
        hashes = self.tmp_path / "queries.txt"
        hashes.write_text("\n".join(values) + "\n")
        result = self("match", "--hashes", "-S", signal_type, "photo", str(hashes))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()

    def fetched(self, signal_type: str) -> list[str]:
        """The signals of a type in the CLI's fetched state (``threatexchange dataset``)."""
        result = self("dataset", "--print-signals", "--print-signals-only", "-s", signal_type)
        assert result.returncode == 0, result.stderr
        return sorted(result.stdout.split())


def pdq_matches(fetched: list[str], *queries: str) -> list[str]:
    """What pytx's own PDQ index, built from the fetched signals, finds for the queries."""
    index = PdqSignal.get_index_cls().build([(value, value) for value in fetched])
    return [match.metadata for query in queries for match in index.query(query)]


@pytest.mark.slow
def test_threatexchange_cli_fetches_matches_and_forgets_retracted(
    forum: LiveForum, tmp_path: Path
) -> None:
    """extensions add, collab create, fetch, match; after a retraction a fetch unmatches."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    value = pdq()
    send(acme, "pdq", value)
    # pytx's stored PDQ index loses a tiny index on its save/load round trip (one entry
    # finds nothing after loading; 200 do): give the collab a realistic number of hashes.
    others = [pdq() for _ in range(199)]
    send_many(acme, "pdq", others)
    send(acme, "md5", MD5)

    tx = Threatexchange(tmp_path, globex.api_key)
    added = tx("config", "extensions", "add", "exchange.client.threatexchange")
    assert added.returncode == 0, added.stderr
    assert "cordiale" in added.stdout and "md5" in added.stdout
    created = tx(
        "config", "collab", "edit", "cordiale", "forum", "--create", "--server-url", forum.url
    )
    assert created.returncode == 0, created.stderr
    fetched = tx("fetch")
    assert fetched.returncode == 0, fetched.stderr

    near = f"{int(value, 16) ^ 0b111:064x}"  # three bits away
    far = f"{int(value, 16) ^ (2**128 - 1):064x}"
    assert tx.fetched("pdq") == sorted([value, *others])
    assert pdq_matches(tx.fetched("pdq"), value, near, far) == [value, value]
    for query in (value, near):  # the CLI prints each matched signal once
        lines = tx.match("pdq", query)
        assert len(lines) == 1 and "(forum) POSITIVE_CLASS" in lines[0], lines
        assert "recruitment" in lines[0] and "acme" in lines[0]
    assert tx.match("pdq", far) == []
    md5_lines = tx.match("md5", MD5.upper())  # the file MD5 type the extension ships
    assert len(md5_lines) == 1 and "(forum) POSITIVE_CLASS" in md5_lines[0]

    next_second()
    send(acme, "pdq", value, op="retract")
    refetched = tx("fetch")
    assert refetched.returncode == 0, refetched.stderr
    assert tx.fetched("pdq") == sorted(others)
    assert pdq_matches(tx.fetched("pdq"), value, near) == []
    assert tx.match("pdq", value, near) == []
    assert len(tx.match("md5", MD5)) == 1


@pytest.mark.slow
def test_api_checkpoints_opinions_and_drop_policy(forum: LiveForum, tmp_path: Path) -> None:
    """The API HMA drives: JSON checkpoints that resume, opinions, feedback, filtering."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    initech = forum.member("initech", tmp_path)
    first, second = pdq(), pdq()
    send(acme, "pdq", first)

    def api(member: LiveMember, drop: DropPolicy = DropPolicy.NONE) -> CordialeSignalExchangeAPI:
        collab = CordialeCollabConfig(name="forum", server_url=forum.url, drop=drop)
        api = CordialeSignalExchangeAPI.for_collab(collab, CordialeCredentials(member.api_key))
        api.page_size = 1
        return api

    fetched: dict[tuple[str, str], CordialeSignalMetadata] = {}

    def fetch(
        api: CordialeSignalExchangeAPI, checkpoint: CordialeCheckpoint | None
    ) -> CordialeCheckpoint | None:
        for delta in api.fetch_iter([PdqSignal], checkpoint):
            assert delta.checkpoint.get_progress_timestamp() >= (
                checkpoint.get_progress_timestamp() if checkpoint else 0
            )
            api.naive_fetch_merge(fetched, delta.updates)  # type: ignore[arg-type]
            checkpoint = delta.checkpoint
        return checkpoint

    checkpoint = fetch(api(globex), None)
    assert checkpoint is not None
    stored = dataclass_json.dataclass_dumps(checkpoint)
    assert dataclass_json.dataclass_loads(stored, CordialeCheckpoint) == checkpoint
    (metadata,) = fetched.values()
    (opinion,) = metadata.get_as_opinions()
    assert opinion.category == state.SignalOpinionCategory.POSITIVE_CLASS
    assert opinion.tags == {"recruitment", "member:acme"} and not opinion.is_mine

    # globex reports a false positive; initech a true positive: the signal is disputed.
    api(globex).report_opinion(
        PdqSignal,
        first,
        state.SignalOpinion(True, state.SignalOpinionCategory.NEGATIVE_CLASS, set()),
    )
    api(initech).report_opinion(
        PdqSignal,
        first,
        state.SignalOpinion(True, state.SignalOpinionCategory.POSITIVE_CLASS, set()),
    )
    send(acme, "pdq", second)
    checkpoint = fetch(api(globex), dataclass_json.dataclass_loads(stored, CordialeCheckpoint))
    assert set(fetched) == {("pdq", first), ("pdq", second)}
    disputed = fetched[("pdq", first)]
    aggregate = disputed.get_as_aggregate_opinion()
    assert aggregate.category == state.AggregateSignalOpinionCategory.DISPUTED
    assert any(
        o.is_mine and o.category == state.SignalOpinionCategory.NEGATIVE_CLASS
        for o in disputed.get_as_opinions()
    )

    # A collab that drops disputed signals does not hold it; the undisputed one stays.
    fetched.clear()
    fetch(api(initech, DropPolicy.DISPUTED), None)
    assert set(fetched) == {("pdq", second)}
    signals = CordialeSignalExchangeAPI.naive_convert_to_signal_type(
        [PdqSignal, FileMD5Signal], CordialeCollabConfig("forum", forum.url), fetched
    )
    assert set(signals[PdqSignal]) == {second}
