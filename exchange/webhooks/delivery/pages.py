"""Feed pages shared by a member's endpoints, and the endpoint filters."""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from django.core.cache import cache

from exchange.models import WebhookEndpoint
from exchange.selectors import Snapshot, feed_page

logger = logging.getLogger(__name__)

# --- shared pages ----------------------------------------------------------------------

# Endpoints of one member at one cursor get the same page: a member with ten endpoints
# would otherwise have the same snapshots read, assembled and encoded ten times per
# batch, which is where a fan-out spent its time. The first delivery to need a page
# builds it and encodes it once as the POST body; the body goes to the cache (Redis in
# production) for a few seconds, and an endpoint without filters sends those bytes as
# they are (only the signature is its own).
#
# Why a page from the cache is safe to deliver. The page for (member, cursor, limit)
# built at time t is exactly what a pull reader of that member reading at t got:
# - nothing is skipped: the next cursor stops at the last row the page read, and every
#   row committed after t has a higher position (feed rows are numbered in commit
#   order), so it is read from that cursor by a later page;
# - a snapshot may be older than the signal's state now, but any change after t
#   appended a feed row after t, which puts the signal in a later page with its newer
#   state: the last snapshot wins, as for a pull reader that was a few seconds late;
# - visibility was decided for this member at t (the key holds the member id; pages are
#   never shared between members), so the page holds nothing the member could not see
#   at t; what it lost since then arrives as a tombstone in a later page.
# Full pages (``has_more``) are stored for everyone. The first ``limit`` rows after a
# cursor never change once they exist (rows are numbered in commit order), so a full
# page from the cache has exactly the rows a fresh one would have. A partial page ends
# at the feed's end at t: served later it would send a short batch and then another one
# for the rows since (measured: 40% more POSTs when following the feed closely), and an
# empty one would hide new rows from a delivery that looks again at once. So a partial
# page goes only to the deliveries that were already waiting for that very build (under
# a key holding the builder's token): they asked for the page while it was being built,
# and it is at most as old as their wait. Endpoints following the feed closely, the
# common case, all ask for the same partial page at once after each commit; without
# the hand-off each of them would wait out ``_PAGE_WAIT`` for a page that never comes.
_PAGE_KEY = "webhook-page:v2:{member}:{limit}:{cursor}"
_PAGE_TTL = 5
_PAGE_WAIT = 2.0  # how long a delivery waits for a page another one is building
_PAGE_POLL = 0.005


@dataclass(frozen=True)
class SharedPage:
    """One feed page, encoded once as the body of a ``changes`` delivery.

    ``first`` and ``last`` name the first and last change (``type:value``) for the
    deliveries log.
    """

    body: bytes
    cursor: str
    has_more: bool
    count: int
    first: str
    last: str

    @classmethod
    def build(cls, changes: list[Snapshot], cursor: str, has_more: bool) -> SharedPage:
        body = orjson.dumps({"type": "changes", "changes": changes, "cursor": cursor})
        first, last = (_label(changes[0]), _label(changes[-1])) if changes else ("", "")
        return cls(body, cursor, has_more, len(changes), first, last)

    @cached_property
    def changes(self) -> list[Snapshot]:
        changes: list[Snapshot] = orjson.loads(self.body)["changes"]
        return changes

    def dumps(self) -> bytes:
        head = orjson.dumps([self.cursor, self.has_more, self.count, self.first, self.last])
        return head + b"\n" + self.body  # orjson never writes a raw newline

    @classmethod
    def loads(cls, data: bytes) -> SharedPage:
        head, body = data.split(b"\n", 1)
        cursor, has_more, count, first, last = orjson.loads(head)
        return cls(body, cursor, has_more, count, first, last)


def _label(change: Snapshot) -> str:
    return f"{change['signal_type']}:{change['value']}"[:200]


def _page_key(member_id: int, cursor: str, limit: int) -> str:
    # Cursors grow with the groups a member is in; a digest keeps the key short.
    digest = hashlib.sha256(cursor.encode()).hexdigest()[:32]
    return _PAGE_KEY.format(member=member_id, limit=limit, cursor=digest)


def _wait_for_page(key: str) -> SharedPage | None:
    """The page another delivery is building, or None if it gave up or took too long."""
    try:
        token = cache.get(f"{key}:building")
    except Exception:
        return None
    deadline = time.monotonic() + _PAGE_WAIT
    while token is not None and time.monotonic() < deadline:
        time.sleep(_PAGE_POLL)
        handed = f"{key}:{token}"
        try:
            found = cache.get_many([key, handed, f"{key}:building"])
        except Exception:
            return None
        data = found.get(key) or found.get(handed)
        if data is not None:
            return SharedPage.loads(data)
        if found.get(f"{key}:building") != token:
            return None  # the builder finished without a page for us, or died
    return None


def shared_feed_page(*, member_id: int, cursor: str, limit: int) -> SharedPage:
    """``feed_page`` for a delivery, shared by the member's endpoints at the same cursor.

    See the comment above for why a page built a few seconds ago is safe to send. When
    another delivery is building the same page, wait for it (briefly) instead of
    building it again; without a cache this is plain ``feed_page``.
    """
    key = _page_key(member_id, cursor, limit)
    token = secrets.token_hex(8)
    try:
        data = cache.get(key)
        if data is not None:
            return SharedPage.loads(data)
        building = not cache.add(f"{key}:building", token, _PAGE_TTL)
    except Exception:
        building = False
    if building:
        page = _wait_for_page(key)
        if page is not None:
            return page
    changes, next_cursor, has_more = feed_page(
        member_id=member_id, cursor=cursor or None, limit=limit
    )
    page = SharedPage.build(changes, next_cursor, has_more)
    try:
        if has_more:
            cache.set(key, page.dumps(), _PAGE_TTL)
        elif not building:
            cache.set(f"{key}:{token}", page.dumps(), math.ceil(_PAGE_WAIT))
        if not building:
            cache.delete(f"{key}:building")
    except Exception:
        logger.debug("could not share a feed page of member %s", member_id)
    return page


# --- filters and payloads --------------------------------------------------------------


def _statement_labels(statement: dict[str, Any]) -> list[str]:
    """The snapshot's ``labels`` of one statement (those of its JWS claims, stored when it
    was accepted), whether the page was parsed back from its body or not yet encoded."""
    labels = statement["labels"]
    if isinstance(labels, orjson.Fragment):  # straight from ``feed_page``: raw JSON
        labels = orjson.loads(orjson.dumps(labels))
    return labels if isinstance(labels, list) else []


def change_passes(*, change: Snapshot, signal_types: list[str], labels: list[str]) -> bool:
    """The endpoint filters (see module docstring: tombstones pass on their type)."""
    if signal_types and change["signal_type"] not in signal_types:
        return False
    if not labels or change["deleted"]:
        return True
    wanted = set(labels)
    return any(wanted.intersection(_statement_labels(s)) for s in change["statements"])


def endpoint_page(page: SharedPage, endpoint: WebhookEndpoint) -> SharedPage:
    """The page as this endpoint receives it: the shared body itself when it has no filters."""
    if not endpoint.signal_types and not endpoint.labels:
        return page
    kept = [
        c
        for c in page.changes
        if change_passes(change=c, signal_types=endpoint.signal_types, labels=endpoint.labels)
    ]
    return SharedPage.build(kept, page.cursor, page.has_more)
