"""The replica and the known-benign list: it keeps each statement's benign mark, splits
its search results as the forum's /match does, and refetches a replica made before the
mark existed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client.benign import split_neighbours
from exchange.client.replica import DB_NAME, Replica
from tests.client.fakes import PDQ, forum_jwk, jwk_for, snapshot

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
JWKS = {"keys": [jwk_for(KEY, "acme"), jwk_for(OTHER, "globex"), forum_jwk()]}
NEAR = f"{int(PDQ, 16) ^ 0b1111:064x}"  # 4 bits from PDQ


def benign_snapshot(private_key: Ed25519PrivateKey, member: str, value: str) -> dict[str, Any]:
    shot = snapshot(private_key, member=member, signal_type="pdq", value=value, labels=("satire",))
    shot["benign"] = True
    shot["statements"][0]["benign"] = True
    return shot


def test_replica_keeps_the_mark_and_splits_like_the_forum(tmp_path: Path) -> None:
    """A benign statement is stored with its mark; ``search_pdq`` results split into a
    match flagged near_benign and the benign neighbour, as /match would answer."""
    page = {
        "changes": [
            snapshot(KEY, signal_type="pdq", value=PDQ),
            benign_snapshot(OTHER, "globex", NEAR),
        ],
        "cursor": "c1",
        "has_more": False,
    }
    with Replica(tmp_path) as replica:
        assert replica.apply_page(page, JWKS).refused == []
        stored = replica.signal("pdq", NEAR)
        assert stored is not None and stored["benign"] is True
        assert stored["statements"][0]["benign"] is True
        assert replica.signal("pdq", PDQ)["benign"] is False  # type: ignore[index]
        matches, benign = split_neighbours(replica.search_pdq(PDQ, 31), 31)
    assert [(m["distance"], m["signal"]["value"], m["near_benign"]) for m in matches] == [
        (0, PDQ, True)
    ]
    assert [(b["distance"], b["signal"]["value"]) for b in benign] == [(4, NEAR)]
    assert split_neighbours([(0, stored)], 3)[0] == []  # benign only: never a match


def test_replica_made_before_the_mark_is_refetched(tmp_path: Path) -> None:
    """A replica whose statements table lacks the benign column is emptied and its
    cursor dropped, so the next sync fetches every statement with its mark."""
    with Replica(tmp_path) as replica:
        replica.apply_page(
            {
                "changes": [benign_snapshot(OTHER, "globex", NEAR)],
                "cursor": "c1",
                "has_more": False,
            },
            JWKS,
        )
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("ALTER TABLE statements DROP COLUMN benign")
    with Replica(tmp_path) as replica:
        assert replica.cursor is None and replica.count_signals() == 0
        assert replica.execute("SELECT COUNT(*) FROM statements") == [(0,)]
        columns = {row[1] for row in replica.execute("PRAGMA table_info(statements)")}
        assert "benign" in columns
