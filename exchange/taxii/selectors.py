"""Reads of the TAXII channel: a member's collections and pages of their STIX objects.

A page is the feed rows of one audience after a position, each turned into the current
STIX objects of its signal in that audience, as the reader may see them now (the package
docstring explains the order; ``exchange.client.stix`` the objects).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings

from exchange.client import stix
from exchange.client.statement_format import AUDIENCE_FORUM
from exchange.db import fetchall, in_list, rfc3339
from exchange.feed import FeedRow, Reader
from exchange.models import FORUM_AUDIENCE, FeedEntry
from exchange.selectors import _visible_clause, signal_values
from members.models import Member, SharingGroup

STATIC_OBJECTS = stix.static_objects()
# The static objects come first in every collection, each with its own date_added, all
# before any feed row could have been added.
STATIC_DATES = [f"2025-01-01T00:00:00.{i:06d}Z" for i in range(len(STATIC_OBJECTS))]


@dataclass(frozen=True)
class Collection:
    """One TAXII collection: the forum, or one sharing group of the reader."""

    id: str
    alias: str
    title: str
    description: str
    audience: int

    def statement_filter(self, table: str) -> tuple[str, list[Any]]:
        """SQL on ``exchange_statement`` rows addressed to this collection's audience."""
        if self.audience == FORUM_AUDIENCE:
            return f"{table}.audience = %s", [AUDIENCE_FORUM]
        return f"{table}.group_id = %s", [self.audience]


def collection_id(audience: int) -> str:
    name = "collection:forum" if audience == FORUM_AUDIENCE else f"collection:group:{audience}"
    return str(uuid.uuid5(stix.NAMESPACE, name))


def collections_for(*, member: Member) -> list[Collection]:
    """The forum's collection and one per sharing group the member belongs to now."""
    reader = Reader(member.pk)
    out = [
        Collection(
            id=collection_id(FORUM_AUDIENCE),
            alias="forum",
            title="Forum",
            description="Every signal addressed to the whole forum.",
            audience=FORUM_AUDIENCE,
        )
    ]
    for group in SharingGroup.objects.filter(pk__in=reader.groups).order_by("slug"):
        out.append(
            Collection(
                id=collection_id(group.pk),
                alias=f"group-{group.slug}",
                title=group.name or group.slug,
                description=f"Signals addressed to the sharing group {group.slug}.",
                audience=group.pk,
            )
        )
    return out


def collection_find(*, member: Member, key: str) -> Collection | None:
    """The member's collection with this id (or alias); None for any other, whether it
    exists or not."""
    for collection in collections_for(member=member):
        if key in (collection.id, collection.alias):
            return collection
    return None


# --- positions ---------------------------------------------------------------------


@dataclass
class Position:
    """How far a reader got in a collection: static objects served, and feed position."""

    statics: int = 0
    seq: int = 0


def position_after(moment: datetime) -> Position:
    """The position just after everything added at or before ``moment``.

    ``added_at`` grows strictly with ``seq``, so a binary search over positions finds
    the last row added at or before it: a few indexed reads, whatever the feed's size.
    """
    text = stix.stix_timestamp(moment)
    statics = sum(1 for date in STATIC_DATES if date <= text)
    lo, hi = 0, int(fetchall("SELECT COALESCE(MAX(seq), 0) FROM exchange_feedentry")[0][0])
    while lo < hi:
        mid = (lo + hi + 1) // 2
        row = (
            FeedEntry.objects.filter(seq__gte=mid)
            .order_by("seq")
            .values_list("seq", "added_at", "created_at")
            .first()
        )
        if row is None:
            hi = mid - 1
            continue
        added = row[1] or row[2]
        if added <= moment:
            lo = row[0]
        else:
            hi = mid - 1
    return Position(statics=statics, seq=lo)


# --- filters -------------------------------------------------------------------------


@dataclass
class Filters:
    """The ``match[...]`` parameters, already parsed."""

    types: frozenset[str] | None = None
    ids: frozenset[str] | None = None
    versions: frozenset[str] = frozenset({"last"})
    spec_versions: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return (
            self.types is None
            and self.ids is None
            and self.spec_versions is None
            and bool(self.versions & {"last", "all"})
        )

    def accepts(self, obj: dict[str, Any]) -> bool:
        if self.types is not None and obj["type"] not in self.types:
            return False
        if self.ids is not None and obj["id"] not in self.ids:
            return False
        if self.spec_versions is not None and stix.SPEC_VERSION not in self.spec_versions:
            return False
        if "last" in self.versions or "all" in self.versions:
            return True  # a collection holds only the latest version of each object
        modified = obj.get("modified") or obj.get("created")
        if "first" in self.versions and modified == obj.get("created"):
            return True
        return any(_same_time(v, modified) for v in self.versions if v not in ("first",))


def _same_time(a: str, b: str | None) -> bool:
    if b is None:
        return False
    try:
        return _parse(a) == _parse(b)
    except ValueError:
        return False


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- pages ---------------------------------------------------------------------------


@dataclass
class Page:
    """Objects with their ``date_added``, whether more follow, and where the next page
    starts."""

    objects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    more: bool = False
    position: Position = field(default_factory=Position)


def opinion_secret() -> bytes:
    """The key of opinion ids: derived from the server's secret, so stable and private."""
    return hashlib.sha256(b"cordiale-taxii-opinion:" + settings.SECRET_KEY.encode()).digest()


def objects_page(
    *, member: Member, collection: Collection, position: Position, limit: int, filters: Filters
) -> Page:
    """Up to ``limit`` objects of the collection after ``position``, in the order they
    were added. A signal's objects are never split between pages (so that polling with
    ``added_after`` cannot skip the rest of one): a signal with more objects than
    ``limit`` gets a page of its own, larger than ``limit``."""
    page = Page(position=Position(position.statics, position.seq))
    for index in range(position.statics, len(STATIC_OBJECTS)):
        if len(page.objects) >= limit:
            page.more = True
            return page
        obj = STATIC_OBJECTS[index]
        if filters.accepts(obj):
            page.objects.append((STATIC_DATES[index], obj))
        page.position.statics = index + 1
    room = limit - len(page.objects)
    if room <= 0:
        room = 1
    rows = _rows(collection.audience, position.seq, room + 1)
    if not rows:
        return page
    builder = _Builder(member=member, collection=collection, rows=rows[:room])
    everything = filters.everything
    for row in rows[:room]:
        objects = builder.objects_for(row)
        if not everything:
            objects = [o for o in objects if filters.accepts(o)]
        if page.objects and len(page.objects) + len(objects) > limit:
            page.more = True
            return page
        page.objects.extend((row.created_at, o) for o in objects)
        page.position.seq = row.seq
    page.more = len(rows) > room
    return page


def _rows(audience: int, after: int, limit: int) -> list[FeedRow]:
    """Rows of one audience after a position; ``created_at`` holds the row's added_at."""
    added = rfc3339("COALESCE(added_at, created_at)")
    return [
        FeedRow(int(r[0]), audience, int(r[1]), r[2], r[3])
        for r in fetchall(
            f"SELECT seq, signal_id, {added}, effective_at FROM exchange_feedentry "
            "WHERE audience = %s AND seq > %s ORDER BY seq LIMIT %s",
            [audience, after, limit],
        )
    ]


class _Builder:
    """The STIX objects of a page's signals, read with a few statements for the page."""

    def __init__(self, *, member: Member, collection: Collection, rows: Sequence[FeedRow]):
        self.member = member
        self.collection = collection
        self.reader = Reader(member.pk)
        self.now = int(time.time())
        self.secret = opinion_secret()
        self.emitted: set[int] = set()
        self.identities: set[str] = set()
        self.signals: dict[int, tuple[str, str]] = {}
        self.members: dict[int, list[str]] = {}
        ids = list(dict.fromkeys(row.signal_id for row in rows))
        self.created, self.withdrawn = self._history(ids)
        self.indicators = self._indicators(ids)
        self.opinions = self._opinions(list(self.indicators))
        # Signals with a member whose statement left the audience: their revoked versions.
        gone = [
            s
            for s, first in self.created.items()
            if any(m not in self.members.get(s, ()) for m in first)
        ]
        self.visible_elsewhere = self._visible_elsewhere(gone)
        self.values = dict(self.signals)
        missing = [s for s in gone if s not in self.signals]
        if missing:
            self.values.update(signal_values(missing))

    # Reads.

    def _indicators(self, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Indicators of the statements the reader sees in this collection's audience."""
        if not ids:
            return {}
        ids_clause, ids_params = in_list("cs.signal_id", ids)
        visible, visible_params = _visible_clause(self.reader, self.now)
        aud, aud_params = self.collection.statement_filter("f")
        # created: the member's first assertion on the signal to this audience.
        first = (
            "(SELECT MIN(f.received_at) FROM exchange_statement f "
            "WHERE f.signal_id = cs.signal_id AND f.member_id = cs.member_id "
            f"AND f.op = 'assert' AND {aud})"
        )
        rows = fetchall(
            "SELECT cs.signal_id, st.member_slug, st.iat, st.labels, st.tlp, st.exp, st.jws, "
            f"st.receipt, {rfc3339('st.received_at')}, s.signal_type, s.value, "
            f"{rfc3339(first)}, st.benign FROM exchange_currentstatement cs "
            "JOIN exchange_statement st ON st.id = cs.statement_id "
            "JOIN exchange_signal s ON s.id = cs.signal_id "
            f"WHERE {ids_clause} AND {visible} AND cs.audience = %s "
            "AND s.overturned_at IS NULL "
            "ORDER BY cs.signal_id, st.iat, st.id",
            [*aud_params, *ids_params, *visible_params, self.collection.audience],
        )
        out: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            signal_id, slug, iat, labels, tlp, exp, jws, receipt, received, kind, value = row[:11]
            first, benign = row[11], bool(row[12])
            if kind not in stix.PATTERN_PATHS:
                continue
            if isinstance(labels, str):
                labels = orjson.loads(labels)
            self.signals[signal_id] = (kind, value)
            self.members.setdefault(signal_id, []).append(slug)
            # A statement current again since a newer one was withdrawn (a compromised
            # key's) is a new version as of that withdrawal, later than the withdrawn one.
            withdrawn = self.withdrawn.get((signal_id, slug))
            if withdrawn is not None and withdrawn > received:
                received = withdrawn
            out.setdefault(signal_id, []).append(
                stix.indicator_for(
                    member=slug,
                    signal_type=kind,
                    value=value,
                    iat=iat,
                    labels=labels,
                    tlp=tlp,
                    jws=jws,
                    exp=exp,
                    receipt=receipt or None,
                    benign=benign,
                    created=first if first is not None and first < received else received,
                    modified=received,
                )
            )
        return out

    def _visible_elsewhere(self, ids: list[int]) -> set[tuple[int, str]]:
        """(signal, member) whose current statement the reader sees in another audience."""
        if not ids:
            return set()
        ids_clause, ids_params = in_list("cs.signal_id", ids)
        visible, visible_params = _visible_clause(self.reader, self.now)
        return {
            (int(signal_id), slug)
            for signal_id, slug in fetchall(
                "SELECT cs.signal_id, st.member_slug FROM exchange_currentstatement cs "
                "JOIN exchange_statement st ON st.id = cs.statement_id "
                f"WHERE {ids_clause} AND {visible} AND cs.audience <> %s",
                [*ids_params, *visible_params, self.collection.audience],
            )
        }

    def _history(
        self, ids: list[int]
    ) -> tuple[dict[int, dict[str, str]], dict[tuple[int, str], str]]:
        """When each member first addressed each signal to this audience, and when its
        latest withdrawn statement on each signal was withdrawn: one scan of the
        signals' statements."""
        if not ids:
            return {}, {}
        ids_clause, ids_params = in_list("st.signal_id", ids)
        aud, aud_params = self.collection.statement_filter("st")
        first = rfc3339(f"MIN(CASE WHEN st.op = 'assert' AND {aud} THEN st.received_at END)")
        created: dict[int, dict[str, str]] = {}
        withdrawn: dict[tuple[int, str], str] = {}
        for signal_id, slug, added, gone in fetchall(
            f"SELECT st.signal_id, st.member_slug, {first}, {rfc3339('MAX(st.withdrawn_at)')} "
            f"FROM exchange_statement st WHERE {ids_clause} "
            "GROUP BY st.signal_id, st.member_slug",
            [*aud_params, *ids_params],
        ):
            if added is not None:
                created.setdefault(int(signal_id), {})[slug] = added
            if gone is not None:
                withdrawn[(int(signal_id), slug)] = gone
        return created, withdrawn

    def _opinions(self, ids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
        """Opinions on signals seen in this collection, by authors in its audience now."""
        if not ids:
            return {}
        ids_clause, ids_params = in_list("o.signal_id", ids)
        out: dict[int, list[tuple[Any, ...]]] = {}
        for row in fetchall(
            "SELECT o.signal_id, o.member_id, o.category, o.tags, o.reason, "
            f"{rfc3339('o.updated_at')} FROM exchange_opinion o WHERE {ids_clause} "
            "AND EXISTS (SELECT 1 FROM exchange_audienceperiod p WHERE p.member_id = o.member_id "
            "AND p.audience = %s AND p.end_seq IS NULL) ORDER BY o.signal_id, o.member_id",
            [*ids_params, self.collection.audience],
        ):
            out.setdefault(int(row[0]), []).append(row)
        return out

    # Objects.

    def objects_for(self, row: FeedRow) -> list[dict[str, Any]]:
        signal_id = row.signal_id
        if signal_id in self.emitted:
            return []  # already in this page, in its current state
        self.emitted.add(signal_id)
        out: list[dict[str, Any]] = []
        indicators = self.indicators.get(signal_id, [])
        created = self.created.get(signal_id, {})
        members = self.members.get(signal_id, [])
        for slug, indicator in zip(members, indicators, strict=True):
            if slug not in self.identities:
                self.identities.add(slug)
                out.append(stix.identity_for(slug))
            out.append(indicator)
        # A statement re-addressed to another audience the reader sees is no revocation
        # for it: its live version there is the object's latest (same id, later or
        # equal ``modified``), which a revoked one here would contradict.
        gone = [
            m for m in created if m not in members and (signal_id, m) not in self.visible_elsewhere
        ]
        if gone and self.reader.may_tombstone(row):
            out.extend(self._revoked(signal_id, gone, row))
        if indicators:
            out.extend(self._opinion_objects(signal_id, [i["id"] for i in indicators]))
        return out

    def _opinion_objects(self, signal_id: int, refs: list[str]) -> list[dict[str, Any]]:
        kind, value = self.signals[signal_id]
        out = []
        for _, author, category, tags, reason, updated in self.opinions.get(signal_id, []):
            own = author == self.member.pk
            if own and self.member.slug not in self.identities:
                # Its created_by_ref must resolve in the collection, as STIX consumers
                # (OpenCTI) require of every reference.
                self.identities.add(self.member.slug)
                out.append(stix.identity_for(self.member.slug))
            if isinstance(tags, str):
                tags = orjson.loads(tags)
            out.append(
                stix.opinion_for(
                    object_id=stix.opinion_id(self.secret, f"#{author}", kind, value),
                    category=category,
                    object_refs=refs,
                    modified=updated,
                    own_member=self.member.slug if own else None,
                    tags=tags if own else (),
                    reason=reason if own else "",
                )
            )
        return out

    def _revoked(self, signal_id: int, members: list[str], row: FeedRow) -> list[dict[str, Any]]:
        """Last, revoked versions of the indicators of members whose statement left this
        collection's audience (retracted, lapsed, withdrawn, moved, its author gone, or
        the signal overturned by the forum)."""
        if signal_id not in self.values:
            return []
        kind, value = self.values[signal_id]
        if kind not in stix.PATTERN_PATHS:
            return []
        aud, aud_params = self.collection.statement_filter("st")
        out: list[dict[str, Any]] = []
        for slug in members:
            found = fetchall(
                "SELECT st.id, st.iat, st.labels, st.tlp, st.exp, st.jws, st.receipt, "
                "st.received_at, st.withdrawn_at, cur.received_at, cs.statement_id, st.benign "
                "FROM exchange_statement st "
                "LEFT JOIN exchange_currentstatement cs "
                "ON cs.member_id = st.member_id AND cs.signal_id = st.signal_id "
                "LEFT JOIN exchange_statement cur ON cur.id = cs.statement_id "
                f"WHERE st.signal_id = %s AND st.member_slug = %s AND st.op = 'assert' AND {aud} "
                "ORDER BY st.received_at DESC, st.id DESC LIMIT 1",
                [signal_id, slug, *aud_params],
            )
            if not found:
                continue
            pk, iat, labels, tlp, exp, jws, receipt, received, withdrawn, current, current_pk = (
                found[0][:11]
            )
            benign = bool(found[0][11])
            if isinstance(labels, str):
                labels = orjson.loads(labels)
            received = _aware(received)
            ended: datetime | None = None
            if current_pk is not None and current_pk != pk and current is not None:
                ended = _aware(current)
            elif withdrawn is not None:
                ended = _aware(withdrawn)
            elif exp is not None and exp <= self.now:
                ended = datetime.fromtimestamp(exp, UTC)
            if ended is None:
                ended = _parse(row.created_at)
            if received is not None:
                ended = max(ended, received + timedelta(microseconds=1))
            indicator = stix.indicator_for(
                member=slug,
                signal_type=kind,
                value=value,
                iat=iat,
                labels=labels,
                tlp=tlp,
                jws=jws,
                exp=exp,
                receipt=receipt or None,
                created=self.created[signal_id][slug],
                modified=stix.stix_timestamp(received) if received else None,
                benign=benign,
            )
            out.append(stix.revoked_version(indicator, modified=stix.stix_timestamp(ended)))
        return out


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
