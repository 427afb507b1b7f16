"""Reading input files and resumable submission."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from exchange.client import jws
from exchange.client.api import CordialeClient
from exchange.client.statements import generate_key
from exchange.client.submission import (
    InputError,
    progress_path,
    read_rows,
    rejected_path,
    row_claims,
    submit_file,
    write_rejected,
)
from tests.client.fakes import FORUM_URL, FakeForum

HEADER = "signal_type,value,labels,tlp,audience,exp,content_type,ref\n"


def write_csv(path: Path, rows: int, bad_row: int | None = None) -> Path:
    lines = [HEADER]
    for n in range(1, rows + 1):
        value = "not-hex" if n == bad_row else f"{n:032X}"  # upper case: normalised
        lines.append(f"md5,{value},violent-attack|isis,GREEN,forum,,file,ref-{n}\n")
    path.write_text("".join(lines))
    return path


def test_csv_rows_become_normalised_claims(tmp_path: Path) -> None:
    """A CSV row becomes statement claims with the value normalised, labels split, tlp and ref kept,
    and no expiry unless given."""
    rows = read_rows(write_csv(tmp_path / "in.csv", 2))
    claims = row_claims(rows[0], issuer="acme", iat=1, jti="j")
    assert claims["value"] == f"{1:032x}" and claims["labels"] == ["violent-attack", "isis"]
    assert claims["tlp"] == "green" and claims["ref"] == "ref-1" and "exp" not in claims


def test_jsonl_rows_accept_label_lists_and_report_bad_lines(tmp_path: Path) -> None:
    """JSON Lines rows take label lists and an expiry, blank lines are skipped, and a line that is
    not an object is an error naming it."""
    path = tmp_path / "in.jsonl"
    good = {
        "signal_type": "url",
        "value": "HTTPS://A.example",
        "labels": ["a", "b"],
        "tlp": "red",
        "audience": "group:g",
        "exp": 1_900_000_000,
    }
    path.write_text(json.dumps(good) + "\n\n[1, 2]\n")
    rows = read_rows(path)
    assert len(rows) == 2
    claims = row_claims(rows[0], issuer="acme")
    assert claims["value"] == "https://a.example/" and claims["exp"] == 1_900_000_000
    with pytest.raises(Exception, match="not a JSON object"):
        row_claims(rows[1], issuer="acme")


def test_a_csv_without_the_required_header_is_refused(tmp_path: Path) -> None:
    """A CSV without the required columns is refused, naming the missing one."""
    path = tmp_path / "in.csv"
    path.write_text("type,hash\nmd5,00\n")
    with pytest.raises(InputError, match="lacks signal_type"):
        read_rows(path)


def test_bad_rows_are_rejected_locally_and_written_beside_the_input(tmp_path: Path) -> None:
    """An invalid row is rejected before sending, the others go in batches, and the rejected row is
    written beside the input with its code and detail."""
    forum = FakeForum()
    key = generate_key(tmp_path / "k.pem")
    path = write_csv(tmp_path / "in.csv", 5, bad_row=3)
    client = CordialeClient(FORUM_URL, "k", transport=forum.transport())
    summary = submit_file(client, path, issuer="acme", private_key=key, batch_size=2)
    assert summary.totals() == {"accepted": 4, "duplicate": 0, "stale": 0, "rejected": 1}
    assert [len(batch) for batch in forum.submitted] == [2, 2]
    write_rejected(path, summary)
    with rejected_path(path).open() as handle:
        (rejected,) = list(csv.DictReader(handle))
    assert rejected["value"] == "not-hex" and rejected["code"] == "invalid_value"
    assert "32 lowercase hex" in rejected["detail"]


def test_an_interrupted_submit_resumes_with_the_same_signed_statements(tmp_path: Path) -> None:
    """After a crash mid-batch, a re-run skips confirmed batches and re-sends the same JWS."""
    key = generate_key(tmp_path / "k.pem")
    path = write_csv(tmp_path / "in.csv", 5)
    forum = FakeForum()
    forum.fail_submit_after = 1  # the server commits the second batch; its answer is lost
    client = CordialeClient(FORUM_URL, "k", transport=forum.transport())
    with pytest.raises(KeyboardInterrupt):
        submit_file(client, path, issuer="acme", private_key=key, batch_size=2)
    assert len(forum.submitted) == 2
    signed = [json.loads(line) for line in progress_path(path).read_text().splitlines()]
    in_flight = {r["jti"] for r in signed if r.get("row") in (3, 4)}
    forum.fail_submit_after = None
    summary = submit_file(client, path, issuer="acme", private_key=key, batch_size=2)
    resent = forum.submitted[2:]
    assert [len(batch) for batch in resent] == [2, 1]  # rows 1-2 were confirmed: not re-sent
    assert resent[0] == forum.submitted[1]  # byte for byte the statements signed before
    assert {jws.parse_compact(t).claims["jti"] for t in resent[0]} == in_flight
    assert summary.resumed == 2
    assert summary.totals() == {"accepted": 3, "duplicate": 2, "stale": 0, "rejected": 0}
    assert len(forum.seen_jtis) == 5  # nothing stored twice
    # A third run has nothing left to send and reports the same totals.
    again = submit_file(client, path, issuer="acme", private_key=key, batch_size=2)
    assert len(forum.submitted) == 4 and again.totals() == summary.totals()


def test_a_resent_statement_the_server_already_has_counts_as_duplicate(tmp_path: Path) -> None:
    """The same JWS re-sent after a lost answer is a safe retry, not a second statement."""
    key = generate_key(tmp_path / "k.pem")
    path = write_csv(tmp_path / "in.csv", 2)
    forum = FakeForum()
    client = CordialeClient(FORUM_URL, "k", transport=forum.transport())
    submit_file(client, path, issuer="acme", private_key=key)
    # Lose the answer: drop the results record but keep the signing records.
    lines = progress_path(path).read_text().splitlines()
    progress_path(path).write_text("\n".join(ln for ln in lines if '"results"' not in ln) + "\n")
    summary = submit_file(client, path, issuer="acme", private_key=key)
    assert forum.submitted[1] == forum.submitted[0]
    assert summary.totals() == {"accepted": 0, "duplicate": 2, "stale": 0, "rejected": 0}


def test_rows_rejected_unknown_key_are_sent_again_others_only_when_asked(tmp_path: Path) -> None:
    """A re-run resends rows the forum rejected ``unknown_key`` (the key may be approved
    since), keeps other rejections final, and resends those too with ``retry_rejected``."""
    data = write_csv(tmp_path / "in.csv", 3)
    key = generate_key(tmp_path / "k.pem")
    forum = FakeForum()
    forum.rejecting = {f"{1:032x}": "unknown_key", f"{2:032x}": "unknown_label"}
    client = CordialeClient(FORUM_URL, "k", transport=forum.transport())

    def run(**kwargs: bool) -> dict[str, int]:
        return submit_file(client, data, issuer="acme", private_key=key, **kwargs).totals()

    assert run() == {"accepted": 1, "duplicate": 0, "stale": 0, "rejected": 2}
    forum.rejecting = {}
    before = len(forum.submitted)
    assert run() == {"accepted": 2, "duplicate": 0, "stale": 0, "rejected": 1}
    assert [jws.parse_compact(t).claims["value"] for t in forum.submitted[before]] == [f"{1:032x}"]
    assert run() == {"accepted": 2, "duplicate": 0, "stale": 0, "rejected": 1}
    assert len(forum.submitted) == before + 1
    assert run(retry_rejected=True) == {"accepted": 3, "duplicate": 0, "stale": 0, "rejected": 0}
