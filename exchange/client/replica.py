"""
A member's local replica of the forum's feed, in SQLite inside a state directory.

``replica.sqlite3`` holds the feed cursor, the cached JWKS, the pinned keys
(``exchange.client.pins``), and the last snapshot of every signal: its statements (the
verbatim JWS and the forum's receipt next to the fields the server showed, the
known-benign mark included) and its opinion counts. Applying a page of the feed is one
SQLite transaction that writes the snapshots and the page's cursor together, so a sync
interrupted at any point resumes from the last applied page: nothing is lost and, since
the last snapshot of a signal wins, nothing is duplicated.

A forum restored from a backup may answer our cursor with ``resync_required`` (410): the
cursor points at feed positions the restored forum does not hold. The replica then reads
the feed again from the beginning, noting every signal the read returns (in the table
``resync_seen``, with the pages, so an interrupted resync resumes); when the read reaches
the end, every signal it did not return is marked deleted, since the restored forum does
not know of it, and the replica again equals what the forum shows us.

Every statement is verified, with its receipt, against the JWKS as the pins allow before
it is stored; one that fails is refused and reported. A signal none of whose statements
verifies is kept as not live (``deleted``), since nothing in it can be trusted.

The replica holds what other members shared with us, TLP:AMBER and group-only signals
included, so the state directory is kept at mode 0700 and its SQLite files at 0600 (and
tightened when found looser), whatever the process's umask.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from exchange.client.api import CordialeError
from exchange.client.pins import Pin, PinCheck, pins_check
from exchange.client.verify import (
    KeyReport,
    VerificationResult,
    index_jwks,
    kids_named,
    verify_snapshot,
    verify_statement,
)
from exchange.client.video_match import (
    COMPARED_MATCH_PERCENT,
    QUERY_MATCH_PERCENT,
    VideoComparison,
    compare_videos,
    good_frames,
)

if TYPE_CHECKING:
    from exchange.client.api import CordialeClient

# The problem code of a cursor the forum's (restored) feed does not hold.
RESYNC_REQUIRED = "resync_required"

DB_NAME = "replica.sqlite3"
# SQLite's companions of the database file; it creates them with the database's mode.
_DB_COMPANIONS = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signals (
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    updated_at TEXT,
    PRIMARY KEY (signal_type, value)
);
CREATE TABLE IF NOT EXISTS statements (
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    member TEXT NOT NULL,
    kid TEXT NOT NULL,
    jti TEXT,
    iat INTEGER NOT NULL,
    labels TEXT NOT NULL,
    tlp TEXT,
    audience TEXT,
    exp INTEGER,
    jws TEXT NOT NULL,
    receipt TEXT,
    benign INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (signal_type, value, member)
);
CREATE TABLE IF NOT EXISTS pinned_keys (
    kid TEXT PRIMARY KEY,
    member TEXT,
    x TEXT NOT NULL,
    present INTEGER NOT NULL,
    revoked_since REAL
);
CREATE TABLE IF NOT EXISTS resync_seen (
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (signal_type, value)
);
CREATE TABLE IF NOT EXISTS opinions (
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    positive INTEGER NOT NULL DEFAULT 0,
    negative INTEGER NOT NULL DEFAULT 0,
    investigation INTEGER NOT NULL DEFAULT 0,
    disputed INTEGER NOT NULL DEFAULT 0,
    mine TEXT,
    PRIMARY KEY (signal_type, value)
);
"""


@dataclass
class PageResult:
    """What applying one page did."""

    changes: int = 0
    refused: list[VerificationResult] = field(default_factory=list)
    key_reports: list[KeyReport] = field(default_factory=list)


@dataclass
class SyncResult:
    """What a sync did: changes applied, statements refused, key set changes (each once),
    where the cursor now is."""

    changes: int = 0
    pages: int = 0
    refused: list[VerificationResult] = field(default_factory=list)
    key_reports: list[KeyReport] = field(default_factory=list)
    cursor: str | None = None
    resynced: bool = False  # the forum asked for a resync and the replica did one
    removed: int = 0  # signals the resync found gone from the forum

    def add_key_reports(self, reports: list[KeyReport]) -> None:
        seen = {(report.change, report.kid) for report in self.key_reports}
        self.key_reports += [r for r in reports if (r.change, r.kid) not in seen]


class Replica:
    """The replica in ``state_dir``; created on first use."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _make_private(self.state_dir, 0o700)
        db_path = self.state_dir / DB_NAME
        # Created before SQLite opens it, so that SQLite never makes it with the umask's mode.
        os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        for path in [db_path, *(Path(f"{db_path}{suffix}") for suffix in _DB_COMPANIONS)]:
            if path.exists():
                _make_private(path, 0o600)
        self._db = sqlite3.connect(db_path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._add_receipts_column()
        self._add_benign_column()

    def _add_receipts_column(self) -> None:
        """Upgrade a replica made before receipts: its statements cannot be verified any
        more, so it is emptied and the next sync fetches the feed again from the start."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(statements)")}
        if "receipt" in columns:
            return
        with self._transaction() as db:
            db.execute("ALTER TABLE statements ADD COLUMN receipt TEXT")
            for table in ("statements", "signals", "opinions"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM meta WHERE key = 'cursor'")

    def _add_benign_column(self) -> None:
        """Upgrade a replica made before the known-benign list: its statements carry no
        benign mark (an older client dropped it), so it is emptied and the next sync
        fetches the feed again from the start, as for receipts."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(statements)")}
        if "benign" in columns:
            return
        with self._transaction() as db:
            db.execute("ALTER TABLE statements ADD COLUMN benign INTEGER NOT NULL DEFAULT 0")
            for table in ("statements", "signals", "opinions"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM meta WHERE key = 'cursor'")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # Metadata

    def _get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def cursor(self) -> str | None:
        """The cursor after the last applied page (None before the first sync)."""
        return self._get_meta("cursor")

    @property
    def jwks(self) -> dict[str, Any]:
        """The cached JWK set (empty before the first sync)."""
        raw = self._get_meta("jwks")
        return json.loads(raw) if raw else {"keys": []}

    def store_jwks(self, jwks: dict[str, Any]) -> list[KeyReport]:
        """Cache ``jwks``, pinning its new keys; what changed since the last one."""
        with self._transaction() as db:
            return self._store_jwks(db, jwks).reports

    def _store_jwks(self, db: sqlite3.Connection, jwks: dict[str, Any]) -> PinCheck:
        check = pins_check(jwks=jwks, pins=self.pins())
        self._set_meta(db, "jwks", json.dumps(jwks, sort_keys=True))
        db.executemany(
            "INSERT OR REPLACE INTO pinned_keys VALUES (?, ?, ?, ?, ?)",
            [(p.kid, p.member, p.x, int(p.present), p.revoked_since) for p in check.pins],
        )
        return check

    def pins(self) -> dict[str, Pin]:
        """The pinned keys by kid."""
        rows = self._db.execute("SELECT kid, member, x, present, revoked_since FROM pinned_keys")
        return {row[0]: Pin(row[0], row[1], row[2], bool(row[3]), row[4]) for row in rows}

    def key_failures(self) -> list[KeyReport]:
        """What is wrong with the cached JWKS given the pins (offline; nothing is pinned)."""
        return [r for r in pins_check(jwks=self.jwks, pins=self.pins()).reports if r.failure]

    # Applying the feed

    def apply_page(self, page: dict[str, Any], jwks: dict[str, Any] | None = None) -> PageResult:
        """Store a page's snapshots and its cursor in one transaction.

        ``jwks``, when given, is what the page is verified against and is cached with it (its
        new keys pinned), so that ``verify_all`` later checks against the same keys.
        """
        result = PageResult()
        with self._transaction() as db:
            if jwks is not None:
                check = self._store_jwks(db, jwks)
                result.key_reports = check.reports
            else:
                check = pins_check(jwks=self.jwks, pins=self.pins())
            keys = check.keys
            for snapshot in page.get("changes") or []:
                result.refused.extend(self._apply_snapshot(db, snapshot, keys))
                result.changes += 1
            if page.get("cursor") is not None:
                self._set_meta(db, "cursor", str(page["cursor"]))
            if self._get_meta("resync") is not None:
                db.executemany(
                    "INSERT OR IGNORE INTO resync_seen VALUES (?, ?)",
                    [(str(c["signal_type"]), str(c["value"])) for c in page.get("changes") or []],
                )
        return result

    # Resync after a restore of the forum

    @property
    def resyncing(self) -> bool:
        """A resync has started and not reached the end of the feed yet."""
        return self._get_meta("resync") is not None

    def resync_begin(self) -> None:
        """Forget the cursor and read the feed again from the start, noting what it returns."""
        with self._transaction() as db:
            db.execute("DELETE FROM meta WHERE key = 'cursor'")
            db.execute("DELETE FROM resync_seen")
            self._set_meta(db, "resync", "1")

    def resync_finish(self) -> int:
        """Once the full read reached the end: mark deleted every live signal it did not
        return; the number of signals so removed."""
        with self._transaction() as db:
            gone = db.execute(
                "SELECT signal_type, value FROM signals s WHERE deleted = 0 AND NOT EXISTS "
                "(SELECT 1 FROM resync_seen r "
                "WHERE r.signal_type = s.signal_type AND r.value = s.value)"
            ).fetchall()
            for where in gone:
                db.execute("DELETE FROM statements WHERE signal_type = ? AND value = ?", where)
                db.execute("DELETE FROM opinions WHERE signal_type = ? AND value = ?", where)
                db.execute(
                    "UPDATE signals SET deleted = 1 WHERE signal_type = ? AND value = ?", where
                )
            db.execute("DELETE FROM resync_seen")
            db.execute("DELETE FROM meta WHERE key = 'resync'")
        return len(gone)

    def _apply_snapshot(
        self, db: sqlite3.Connection, snapshot: dict[str, Any], keys: dict[str, dict[str, Any]]
    ) -> list[VerificationResult]:
        signal_type, value = str(snapshot["signal_type"]), str(snapshot["value"])
        where = (signal_type, value)
        db.execute("DELETE FROM statements WHERE signal_type = ? AND value = ?", where)
        db.execute("DELETE FROM opinions WHERE signal_type = ? AND value = ?", where)
        statements = [] if snapshot.get("deleted") else list(snapshot.get("statements") or [])
        results = verify_snapshot({**snapshot, "statements": statements}, keys)
        stored = 0
        for statement, verdict in zip(statements, results, strict=True):
            if verdict.ok:
                self._insert_statement(db, signal_type, value, statement, verdict)
                stored += 1
        deleted = bool(snapshot.get("deleted")) or stored == 0
        db.execute(
            "INSERT INTO signals (signal_type, value, deleted, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (signal_type, value) DO UPDATE SET "
            "deleted = excluded.deleted, updated_at = excluded.updated_at",
            (signal_type, value, int(deleted), snapshot.get("updated_at")),
        )
        opinions = snapshot.get("opinions")
        if not deleted and isinstance(opinions, dict):
            db.execute(
                "INSERT INTO opinions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    signal_type,
                    value,
                    int(opinions.get("positive") or 0),
                    int(opinions.get("negative") or 0),
                    int(opinions.get("investigation") or 0),
                    int(bool(opinions.get("disputed"))),
                    json.dumps(opinions.get("mine")),
                ),
            )
        return [verdict for verdict in results if not verdict.ok]

    @staticmethod
    def _insert_statement(
        db: sqlite3.Connection,
        signal_type: str,
        value: str,
        statement: dict[str, Any],
        verdict: VerificationResult,
    ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO statements (signal_type, value, member, kid, jti, iat, "
            "labels, tlp, audience, exp, jws, receipt, benign) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                signal_type,
                value,
                verdict.member,
                verdict.kid,
                verdict.jti,
                statement["iat"],
                json.dumps(statement.get("labels")),
                statement.get("tlp"),
                statement.get("audience"),
                statement.get("exp"),
                statement["jws"],
                statement["receipt"],
                int(statement.get("benign") is True),
            ),
        )

    def sync(
        self,
        client: CordialeClient,
        *,
        limit: int | None = None,
        on_page: Callable[[PageResult, dict[str, Any]], None] | None = None,
    ) -> SyncResult:
        """Follow the feed from the stored cursor until ``has_more`` is false.

        The JWKS is fetched afresh first (a key may have been revoked since the last sync)
        and again whenever a page names a kid we do not know; each is checked against the
        pins (``exchange.client.pins``). When the forum answers ``resync_required`` (it was
        restored from a backup), the feed is read again from the start and what that read
        does not return is removed (see the module docstring).
        """
        outcome = SyncResult(cursor=self.cursor)
        try:
            self._follow(client, limit, on_page, outcome)
        except CordialeError as exc:
            if exc.code != RESYNC_REQUIRED:
                raise
            self.resync_begin()
            outcome.resynced = True
            self._follow(client, limit, on_page, outcome)
        if self.resyncing:
            outcome.resynced = True
            outcome.removed = self.resync_finish()
        return outcome

    def _follow(
        self,
        client: CordialeClient,
        limit: int | None,
        on_page: Callable[[PageResult, dict[str, Any]], None] | None,
        outcome: SyncResult,
    ) -> None:
        jwks = client.jwks()
        known = set(index_jwks(jwks))
        for page in client.iter_changes(self.cursor, limit):
            if not kids_named(page.get("changes") or []) <= known:
                jwks = client.jwks()
                known = set(index_jwks(jwks))
            page_result = self.apply_page(page, jwks)
            outcome.changes += page_result.changes
            outcome.pages += 1
            outcome.refused.extend(page_result.refused)
            outcome.add_key_reports(page_result.key_reports)
            outcome.cursor = self.cursor
            if on_page is not None:
                on_page(page_result, page)

    # Reading

    def count_signals(self) -> int:
        """Signals currently live in the replica."""
        row = self._db.execute("SELECT COUNT(*) FROM signals WHERE deleted = 0").fetchone()
        return int(row[0])

    def signal(self, signal_type: str, value: str) -> dict[str, Any] | None:
        """The stored snapshot of one signal, in the feed's shape, or None."""
        row = self._db.execute(
            "SELECT deleted, updated_at FROM signals WHERE signal_type = ? AND value = ?",
            (signal_type, value),
        ).fetchone()
        if row is None:
            return None
        statements = list(self._statements(signal_type, value))
        return {
            "signal_type": signal_type,
            "value": value,
            "deleted": bool(row[0]),
            "benign": bool(statements) and all(s["benign"] for s in statements),
            "updated_at": row[1],
            "statements": statements,
        }

    def list_signals(
        self,
        *,
        signal_type: str | None = None,
        member: str | None = None,
        label: str | None = None,
        include_deleted: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Signals of the replica in a stable order (type, value), filtered by type, by a
        member that stated them, or by a label of one of their statements."""
        where: list[str] = []
        params: list[Any] = []
        if not include_deleted:
            where.append("s.deleted = 0")
        if signal_type is not None:
            where.append("s.signal_type = ?")
            params.append(signal_type)
        if member is not None or label is not None:
            inner = ["t.signal_type = s.signal_type", "t.value = s.value"]
            inner_params: list[Any] = []
            if member is not None:
                inner.append("t.member = ?")
                inner_params.append(member)
            if label is not None:
                inner.append("EXISTS (SELECT 1 FROM json_each(t.labels) WHERE json_each.value = ?)")
                inner_params.append(label)
            where.append(f"EXISTS (SELECT 1 FROM statements t WHERE {' AND '.join(inner)})")
            params.extend(inner_params)
        sql = "SELECT s.signal_type, s.value FROM signals s"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.signal_type, s.value"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        found = []
        for found_type, found_value in self._db.execute(sql, params).fetchall():
            snapshot = self.signal(found_type, found_value)
            if snapshot is not None:
                found.append(snapshot)
        return found

    def search_pdq(self, value: str, max_distance: int) -> list[tuple[int, dict[str, Any]]]:
        """Live PDQ signals within ``max_distance`` bits of ``value``, closest first.

        A linear scan (about a second per query per million signals): the replica is for a
        member's own look-ups; large volumes go to the forum's ``/match``.
        """
        query = int(value, 16)
        near = []
        rows = self._db.execute(
            "SELECT value FROM signals WHERE signal_type = 'pdq' AND deleted = 0"
        )
        for (candidate,) in rows:
            distance = (int(candidate, 16) ^ query).bit_count()
            if distance <= max_distance:
                near.append((distance, candidate))
        near.sort()
        return [(d, snapshot) for d, v in near if (snapshot := self.signal("pdq", v)) is not None]

    def search_vpdq(
        self,
        value: str,
        max_distance: int,
        *,
        query_match_percent: float = QUERY_MATCH_PERCENT,
        compared_match_percent: float = COMPARED_MATCH_PERCENT,
    ) -> list[tuple[VideoComparison, dict[str, Any]]]:
        """Live vpdq signals matching the video ``value`` as the reference matcher decides
        (exchange/client/video_match.py), by query_match_percent, compared_match_percent
        (both descending), then distance. A linear scan, like ``search_pdq``."""
        query = good_frames(value)
        found = []
        rows = self._db.execute(
            "SELECT value FROM signals WHERE signal_type = 'vpdq' AND deleted = 0"
        )
        for (candidate,) in rows:
            figures = compare_videos(query, good_frames(candidate), max_distance)
            if (
                figures is not None
                and figures.query_match_percent >= query_match_percent
                and figures.compared_match_percent >= compared_match_percent
            ):
                found.append((figures, candidate))
        found.sort(
            key=lambda item: (
                -item[0].query_match_percent,
                -item[0].compared_match_percent,
                item[0].distance,
            )
        )
        return [(f, snapshot) for f, v in found if (snapshot := self.signal("vpdq", v)) is not None]

    def _statements(self, signal_type: str, value: str) -> Iterator[dict[str, Any]]:
        rows = self._db.execute(
            f"SELECT {_STATEMENT_COLUMNS} FROM statements "
            "WHERE signal_type = ? AND value = ? ORDER BY member",
            (signal_type, value),
        )
        for row in rows:
            yield _statement(row)

    def verify_all(self) -> list[VerificationResult]:
        """Re-verify every stored statement offline against the cached JWKS and the pins."""
        keys = pins_check(jwks=self.jwks, pins=self.pins()).keys
        rows = self._db.execute(
            f"SELECT signal_type, value, {_STATEMENT_COLUMNS} "
            "FROM statements ORDER BY signal_type, value, member"
        ).fetchall()
        return [
            verify_statement(_statement(row[2:]), signal_type=row[0], value=row[1], keys=keys)
            for row in rows
        ]

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run raw SQL on the replica (for inspection and tests)."""
        return list(self._db.execute(sql, parameters).fetchall())


def _make_private(path: Path, mode: int) -> None:
    """Take away every permission beyond ``mode`` (never add one the owner removed)."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        path.chmod(current & mode)


# A stored statement as the server sends it: these columns, in this order, make one.
_STATEMENT_COLUMNS = "member, kid, iat, labels, tlp, audience, exp, jws, receipt, benign"


def _statement(row: Sequence[Any]) -> dict[str, Any]:
    member, kid, iat, labels, tlp, audience, exp, token, receipt, benign = row
    return {
        "member": member,
        "kid": kid,
        "iat": iat,
        "labels": json.loads(labels),
        "benign": bool(benign),
        "tlp": tlp,
        "audience": audience,
        "exp": exp,
        "jws": token,
        "receipt": receipt,
    }
