"""The known-benign list on the member side, against a live forum: the HMA /
python-threatexchange extension reads benign statements as negative opinions (so HMA
does not act on them), and ``cordiale match`` / ``cordiale replica search`` show benign
neighbours apart from matches and mark matches near them; the forum's own entries come
from ``manage.py assert_benign`` with its member account's key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management.base import CommandError
from threatexchange.exchanges import fetch_state as state
from threatexchange.signal_type.pdq.signal import PdqSignal

from exchange.client import CordialeClient, build_statement, load_private_key, sign_statement
from exchange.client.threatexchange import (
    CordialeCollabConfig,
    CordialeCredentials,
    CordialeSignalExchangeAPI,
    CordialeSignalMetadata,
    DropPolicy,
    FileMD5Signal,
)
from members.forum_key import forum_key
from tests.factories import pdq, random_hex
from tests.support.live_server import LiveForum, LiveMember, manage

Aggregate = state.AggregateSignalOpinionCategory


def send(member: LiveMember, signal_type: str, value: str, labels: list[str]) -> None:
    claims = build_statement(
        issuer=member.slug,
        signal_type=signal_type,
        value=value,
        labels=labels,
        tlp="green",
        audience="forum",
    )
    token = sign_statement(claims, load_private_key(member.key_path))
    with CordialeClient(member.url, member.api_key) as client:
        (result,) = client.submit([token])["results"]
    assert result["status"] == "accepted", result


def fetch_all(
    forum: LiveForum, member: LiveMember, drop: DropPolicy = DropPolicy.NONE
) -> dict[tuple[str, str], CordialeSignalMetadata]:
    collab = CordialeCollabConfig(name="forum", server_url=forum.url, drop=drop)
    api = CordialeSignalExchangeAPI.for_collab(collab, CordialeCredentials(member.api_key))
    fetched: dict[tuple[str, str], CordialeSignalMetadata] = {}
    for delta in api.fetch_iter([PdqSignal, FileMD5Signal], None):
        api.naive_fetch_merge(fetched, delta.updates)  # type: ignore[arg-type]
    return fetched


@pytest.mark.slow
def test_hma_extension_reads_benign_statements_as_negative(
    forum: LiveForum, tmp_path: Path
) -> None:
    """A signal only asserted benign aggregates to NEGATIVE_CLASS (tagged with its labels
    and member), one asserted TVEC and benign to DISPUTED, a TVEC one stays
    POSITIVE_CLASS; the drop policies leave the benign ones out."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    initech = forum.member("initech", tmp_path)
    benign, both, tvec = random_hex(32), random_hex(32), random_hex(32)
    send(globex, "md5", benign, ["news-reporting"])
    send(acme, "md5", both, ["recruitment"])
    send(globex, "md5", both, ["satire"])
    send(acme, "md5", tvec, ["recruitment"])

    fetched = fetch_all(forum, initech)
    aggregate = {value: m.get_as_aggregate_opinion().category for (_, value), m in fetched.items()}
    assert aggregate == {
        benign: Aggregate.NEGATIVE_CLASS,
        both: Aggregate.DISPUTED,
        tvec: Aggregate.POSITIVE_CLASS,
    }
    (opinion,) = fetched[("md5", benign)].get_as_opinions()
    assert opinion.category == state.SignalOpinionCategory.NEGATIVE_CLASS
    assert opinion.tags == {"news-reporting", "member:globex"}
    assert "known-benign" in str(fetched[("md5", benign)])

    assert set(fetch_all(forum, initech, DropPolicy.NEGATIVE)) == {("md5", tvec)}
    assert set(fetch_all(forum, initech, DropPolicy.DISPUTED)) == {("md5", tvec), ("md5", benign)}


def answers(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.strip().splitlines()[:-1]]


@pytest.mark.slow
def test_cli_match_and_replica_show_benign_neighbours(forum: LiveForum, tmp_path: Path) -> None:
    """``cordiale match`` lists benign neighbours apart and marks the TVEC match near
    one; ``cordiale replica search`` answers the same from the synced replica; a benign
    only value is not counted as matched."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    initech = forum.member("initech", tmp_path)
    query = pdq()
    tvec = f"{int(query, 16) ^ 0b111:064x}"  # 3 bits from the query
    benign = f"{int(query, 16) ^ (0b11111 << 100):064x}"  # 5 bits from it, 8 from tvec
    benign_md5 = random_hex(32)
    send(acme, "pdq", tvec, ["recruitment"])
    send(globex, "pdq", benign, ["counter-speech"])
    send(globex, "md5", benign_md5, ["news-reporting"])

    run = forum.cli(initech, "match", f"pdq:{query}", f"md5:{benign_md5}")
    assert run.returncode == 0, run.stderr
    assert run.last == {"queries": 2, "matched": 1}
    near, exact = answers(run.stdout)
    assert [(m["distance"], m["near_benign"]) for m in near["matches"]] == [(3, True)]
    assert [(b["distance"], b["signal"]["value"]) for b in near["benign"]] == [(5, benign)]
    assert exact["matches"] == [] and exact["benign"][0]["signal"]["value"] == benign_md5
    assert "[near a known-benign value" in run.stderr
    assert f"known benign (counter-speech), distance 5: pdq:{benign} from globex" in run.stderr

    state_dir = tmp_path / "replica"
    synced = forum.cli(initech, "sync", "--state", str(state_dir))
    assert synced.returncode == 0, synced.stderr
    local = forum.cli(
        initech, "replica", "search", "--state", str(state_dir), f"pdq:{query}", f"md5:{benign_md5}"
    )
    assert local.returncode == 0, local.stderr
    assert local.last == {"queries": 2, "matched": 1}
    assert _same_shape(answers(local.stdout), [near, exact])


def _same_shape(local: list[dict[str, Any]], remote: list[dict[str, Any]]) -> bool:
    """The replica's answers name the same values, distances and flags as the forum's
    (its snapshots hold what it stores: no opinions, receipts as stored)."""

    def shape(answer: dict[str, Any]) -> Any:
        return (
            [(m["distance"], m["signal"]["value"], m["near_benign"]) for m in answer["matches"]],
            [(b["distance"], b["signal"]["value"]) for b in answer["benign"]],
        )

    return [shape(a) for a in local] == [shape(a) for a in remote]


def _pem(private_key: Any, path: Path) -> Path:
    path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.mark.slow
def test_forum_asserts_benign_with_its_member_account(forum: LiveForum, tmp_path: Path) -> None:
    """``assert_benign`` signs with the forum's member account's key: the statement is on
    the list for every member and verifies offline against that member's published key;
    TVEC labels and the forum's own key are refused."""
    staff = forum.member("forum-staff", tmp_path)
    acme = forum.member("acme", tmp_path)
    value = random_hex(64)
    result = manage(
        "assert_benign", "sha256", value.upper(), "--labels", "news-reporting",
        "--member", "forum-staff", "--signing-key", str(staff.key_path), "--ref", "case-17",
    )  # fmt: skip
    assert result["status"] == "accepted" and result["value"] == value

    state_dir = tmp_path / "replica"
    assert forum.cli(acme, "sync", "--state", str(state_dir)).returncode == 0
    verified = forum.cli(acme, "verify", "--state", str(state_dir))
    assert verified.last == {"verified": 1, "failed": 0}, verified.stderr
    with CordialeClient(forum.url, acme.api_key) as client:
        snapshot = client.lookup("sha256", value)
    assert snapshot["benign"] is True
    assert [s["member"] for s in snapshot["statements"]] == ["forum-staff"]
    assert snapshot["statements"][0]["jws"] == result["jws"]

    with pytest.raises(CommandError, match="kind 'benign'"):
        manage(
            "assert_benign", "sha256", random_hex(64), "--labels", "recruitment",
            "--member", "forum-staff", "--signing-key", str(staff.key_path),
        )  # fmt: skip
    forum_pem = _pem(forum_key().private_key, tmp_path / "forum.pem")
    with pytest.raises(CommandError, match="forum's own key"):
        manage(
            "assert_benign", "sha256", random_hex(64), "--labels", "satire",
            "--member", "forum-staff", "--signing-key", str(forum_pem),
        )  # fmt: skip
