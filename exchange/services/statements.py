"""Submitting signed statements: ``statement_submit(member=..., tokens=[...])``.

Each item is judged on its own and gets one status, in input order:

``accepted``   the member's state on the signal changed;
``duplicate``  this exact token (same ``jti``, same bytes) was accepted before: a safe retry;
``stale``      the member already has a statement on the signal with an equal or later
               ``iat``: nothing changed;
``rejected``   with a ``code`` (see ``Rejection``); nothing of it is stored.

Checks run in this order: the token's form (``malformed``), its key (``unknown_key``,
``revoked_key``), its signature (``bad_signature``), its issuer (``issuer_mismatch``),
its ``jti`` (``duplicate``, ``jti_reused``: before the content checks, so that retrying an
accepted statement is always ``duplicate``), the claims (``malformed``,
``unknown_signal_type``, ``invalid_value``, ``unknown_label``, ``invalid_audience``), time
(``clock_skew``, ``too_old``) and finally ``stale``.

Signatures are verified before the database transaction (they are the CPU cost); the
transaction then locks the member row, so one member's batches apply one after another
and "newest iat wins" is decided against committed state. The whole batch commits
atomically, with its feed rows appended last (see ``exchange/feed.py``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchange import jws
from exchange.db import bulk_cursor, fetchall, in_list, is_postgres, json_fields, json_rows
from exchange.feed import FeedChange, before_change, feed_append, live
from exchange.models import FORUM_AUDIENCE, Label
from exchange.signal_types import (
    CONTENT_TYPES,
    InvalidSignalValue,
    UnknownSignalType,
    get_signal_type,
)
from forum.errors import DomainError
from forum.metrics import record_statement_results
from members.models import Member, SharingGroup, SigningKey

MAX_BATCH = 10_000
TLP_VALUES = ("clear", "green", "amber", "amber+strict", "red")
OPS = ("assert", "retract")
AUDIENCE_FORUM = "forum"
AUDIENCE_GROUP_PREFIX = "group:"
MAX_JTI = 64
MAX_REF = 256
# 9999-12-31T23:59:59Z: ``exp`` is stored in a 64-bit column, and no real expiry is later.
MAX_TIMESTAMP = 253_402_300_799


class Rejection(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class Item:
    index: int
    token: str
    parsed: jws.ParsedJWS | None = None
    key: SigningKey | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    group_id: int | None = None
    audience_key: int | None = None
    result: dict[str, Any] | None = None

    def reject(self, code: str, detail: str) -> None:
        # Details quote parts of the token (kid, labels), which JSON may spell as lone
        # surrogates; those cannot be written back as UTF-8.
        detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
        self.result = {"index": self.index, "status": "rejected", "code": code, "detail": detail}

    def finish(self, status: str) -> None:
        self.result = {
            "index": self.index,
            "status": status,
            "jti": self.claims["jti"],
            "signal_type": self.claims["signal_type"],
            "value": self.claims["value"],
        }


def _verify(item: Item, keys: dict[str, SigningKey], member: Member) -> None:
    """Form, key, signature and issuer: everything that needs no database."""
    if not isinstance(item.token, str):
        raise Rejection("malformed", "Each statement must be a compact JWS string.")
    try:
        parsed = jws.parse_compact(item.token)
    except jws.MalformedJWS as exc:
        raise Rejection("malformed", exc.detail) from None
    key = keys.get(parsed.kid)
    if key is None:
        raise Rejection(
            "unknown_key", f"Key {parsed.kid} is not a registered key of {member.slug}."
        )
    if key.status == SigningKey.Status.REVOKED:
        raise Rejection("revoked_key", f"Key {key.kid} was revoked.")
    if key.status == SigningKey.Status.RETIRED:
        raise Rejection(
            "revoked_key", f"Key {key.kid} is retired: it signs nothing new; use an active key."
        )
    if not jws.verify(parsed, jws.public_key_from_x(key.x)):
        raise Rejection("bad_signature", "The signature does not verify with the key.")
    claims = parsed.claims
    if claims.get("iss") != member.slug:
        raise Rejection(
            "issuer_mismatch",
            f"iss must be the authenticated member {member.slug!r}; got {claims.get('iss')!r}.",
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI or not _storable(jti):
        raise Rejection(
            "malformed", f"jti must be a string of 1 to {MAX_JTI} characters, without NUL."
        )
    item.parsed, item.key, item.claims = parsed, key, claims
    item.digest = hashlib.sha256(item.token.encode()).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _storable(text: str) -> bool:
    """Text a database column can hold: no NUL (PostgreSQL refuses it in text) and no
    lone surrogate (JSON can escape one; UTF-8 cannot encode it)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_claims(
    item: Item,
    *,
    labels: dict[str, bool],
    groups: dict[str, tuple[int, bool]],
    now: int,
) -> None:
    claims = item.claims
    for name in ("iat", "op", "signal_type", "value"):
        if name not in claims:
            raise Rejection("malformed", f"Claim {name!r} is required.")
    if not _is_int(claims["iat"]) or claims["iat"] < 0:
        raise Rejection("malformed", "iat must be Unix seconds (an integer).")
    if claims["op"] not in OPS:
        raise Rejection("malformed", f"op must be one of {', '.join(OPS)}.")
    if not isinstance(claims["signal_type"], str):
        raise Rejection("malformed", "signal_type must be a string.")
    try:
        signal_type = get_signal_type(claims["signal_type"])
    except UnknownSignalType:
        raise Rejection(
            "unknown_signal_type",
            f"Unknown signal type {claims['signal_type']!r}; see GET /api/v1/signal-types.",
        ) from None
    if not isinstance(claims["value"], str):
        raise Rejection("invalid_value", "value must be a string.")
    try:
        signal_type.validate(claims["value"])
    except InvalidSignalValue as exc:
        raise Rejection("invalid_value", exc.hint) from None
    if claims["op"] == "assert":
        _check_assertion(item, labels=labels, groups=groups)
    for name in ("content_type", "ref"):
        if name in claims and claims[name] is not None and not isinstance(claims[name], str):
            raise Rejection("malformed", f"{name} must be a string.")
    if claims.get("content_type") not in (None, *CONTENT_TYPES):
        raise Rejection("malformed", f"content_type must be one of {', '.join(CONTENT_TYPES)}.")
    if len(claims.get("ref") or "") > MAX_REF or not _storable(claims.get("ref") or ""):
        raise Rejection("malformed", f"ref is limited to {MAX_REF} characters, without NUL.")
    iat = claims["iat"]
    if iat > now + settings.CORDIALE_CLOCK_SKEW:
        raise Rejection(
            "clock_skew",
            f"iat is {iat - now} s in the future; at most {settings.CORDIALE_CLOCK_SKEW} s "
            "is tolerated. Check the signer's clock.",
        )
    if iat < now - settings.CORDIALE_MAX_STATEMENT_AGE:
        raise Rejection(
            "too_old",
            f"iat is older than the acceptance window of {settings.CORDIALE_MAX_STATEMENT_AGE} "
            "s; sign the statement again.",
        )


def _check_assertion(
    item: Item, *, labels: dict[str, bool], groups: dict[str, tuple[int, bool]]
) -> None:
    claims = item.claims
    given = claims.get("labels")
    if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
        raise Rejection("malformed", "labels must be a non-empty list of label slugs.")
    if len(set(given)) != len(given):
        raise Rejection("malformed", "labels must not repeat.")
    unknown = [slug for slug in given if not labels.get(slug, False)]
    if unknown:
        raise Rejection(
            "unknown_label",
            f"Unknown or inactive label(s): {', '.join(unknown)}; see GET /api/v1/labels.",
        )
    if claims.get("tlp") not in TLP_VALUES:
        raise Rejection("malformed", f"tlp must be one of {', '.join(TLP_VALUES)}.")
    audience = claims.get("audience")
    if audience == AUDIENCE_FORUM:
        item.audience_key = FORUM_AUDIENCE
    elif isinstance(audience, str) and audience.startswith(AUDIENCE_GROUP_PREFIX):
        group = groups.get(audience[len(AUDIENCE_GROUP_PREFIX) :])
        if group is None or not group[1]:
            # One message for "no such group" and "not yours": membership of others'
            # groups is not the submitter's business.
            raise Rejection(
                "invalid_audience", f"{audience!r} is not a sharing group you belong to."
            )
        item.group_id = item.audience_key = group[0]
    else:
        raise Rejection("invalid_audience", "audience must be 'forum' or 'group:<slug>'.")
    exp = claims.get("exp")
    if exp is not None and (not _is_int(exp) or not claims["iat"] < exp <= MAX_TIMESTAMP):
        raise Rejection("malformed", "exp must be Unix seconds after iat, before the year 10000.")


def _context(member: Member) -> tuple[dict[str, bool], dict[str, tuple[int, bool]]]:
    labels = dict(Label.objects.values_list("slug", "active"))
    mine = set(member.groups.values_list("pk", flat=True))
    groups = {slug: (pk, pk in mine) for pk, slug in SharingGroup.objects.values_list("pk", "slug")}
    return labels, groups


def statement_submit(*, member: Member, tokens: list[Any]) -> dict[str, Any]:
    """Judge and apply a batch of statements; returns the contract's response body."""
    items = [Item(index=i, token=t) for i, t in enumerate(tokens)]
    keys = {k.kid: k for k in SigningKey.objects.filter(member=member)}
    for item in items:
        try:
            _verify(item, keys, member)
        except Rejection as exc:
            item.reject(exc.code, exc.detail)
    if any(item.result is None for item in items):
        _apply(member, [item for item in items if item.result is None])
    counts = {"accepted": 0, "duplicate": 0, "stale": 0, "rejected": 0}
    results = []
    for item in items:
        assert item.result is not None
        counts[item.result["status"]] += 1
        results.append(item.result)
    record_statement_results(results)
    return {"results": results, **counts}


def _apply(member: Member, items: list[Item]) -> None:
    now = int(time.time())
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        if not member.is_active:
            raise DomainError(
                f"Member {member.slug} is {member.status}.",
                code="member_not_active",
                status=403,
            )
        # Keys may have been revoked while we verified: judge by the committed state.
        statuses = dict(SigningKey.objects.filter(member=member).values_list("kid", "status"))
        labels, groups = _context(member)
        seen = _known_jtis(member.pk, [item.claims["jti"] for item in items])
        pending: list[Item] = []
        for item in items:
            assert item.key is not None
            if statuses.get(item.key.kid) != SigningKey.Status.ACTIVE:
                item.reject("revoked_key", f"Key {item.key.kid} is no longer active.")
                continue
            jti = item.claims["jti"]
            if jti in seen:
                if seen[jti] == item.digest:
                    item.finish("duplicate")
                else:
                    item.reject("jti_reused", f"jti {jti!r} was used for a different statement.")
                continue
            try:
                _check_claims(item, labels=labels, groups=groups, now=now)
            except Rejection as exc:
                item.reject(exc.code, exc.detail)
                continue
            seen[jti] = item.digest
            pending.append(item)
        if pending:
            _store(member, pending)


def _known_jtis(member_id: int, jtis: list[str]) -> dict[str, str]:
    clause, params = in_list("jti", jtis)
    return dict(
        fetchall(
            f"SELECT jti, token_digest FROM exchange_statement WHERE member_id = %s AND {clause}",
            [member_id, *params],
        )
    )


def _signal_ids(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    # Sorted, so that concurrent batches of different members that share signals take
    # the unique-index locks of new signals in the same order instead of deadlocking.
    unique = sorted(set(pairs))
    now = timezone.now()
    with bulk_cursor() as cursor:
        if is_postgres():
            payload = json_rows(unique)
            cursor.execute(
                "INSERT INTO exchange_signal (signal_type, value, created_at) "
                f"SELECT {json_fields('text', 'text')}, %s "
                "FROM jsonb_array_elements(%s::jsonb) AS x "
                "ON CONFLICT (signal_type, value) DO NOTHING RETURNING id, signal_type, value",
                [now, payload],
            )
            rows = cursor.fetchall()
            if len(rows) < len(unique):
                # Signals that existed already (or a concurrent batch just inserted).
                cursor.execute(
                    "SELECT s.id, s.signal_type, s.value FROM exchange_signal s "
                    "JOIN jsonb_array_elements(%s::jsonb) AS x "
                    "ON s.signal_type = x->>0 AND s.value = x->>1",
                    [payload],
                )
                rows = cursor.fetchall()
        else:
            cursor.executemany(
                "INSERT INTO exchange_signal (signal_type, value, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (signal_type, value) DO NOTHING",
                [(t, v, now) for t, v in unique],
            )
            rows = []
            for t, v in unique:
                cursor.execute(
                    "SELECT id, signal_type, value FROM exchange_signal "
                    "WHERE signal_type = %s AND value = %s",
                    [t, v],
                )
                rows.extend(cursor.fetchall())
    return {(r[1], r[2]): int(r[0]) for r in rows}


def _store(member: Member, items: list[Item]) -> None:
    """Apply newest-iat-wins against the member's current statements, then store."""
    signal_ids = _signal_ids([(i.claims["signal_type"], i.claims["value"]) for i in items])
    ids = list(set(signal_ids.values()))
    clause, params = in_list("signal_id", ids)
    rows = fetchall(
        f"SELECT signal_id, iat, audience, exp, lapsed FROM exchange_currentstatement "
        f"WHERE member_id = %s AND {clause}",
        [member.pk, *params],
    )
    current: dict[int, int] = {int(r[0]): int(r[1]) for r in rows}
    before = {int(r[0]): (r[2], r[3], bool(r[4])) for r in rows}
    winners: dict[int, Item] = {}
    accepted: list[tuple[int, Item]] = []
    for item in items:
        signal_id = signal_ids[(item.claims["signal_type"], item.claims["value"])]
        held = current.get(signal_id)
        if held is not None and held >= item.claims["iat"]:
            item.finish("stale")
            continue
        item.finish("accepted")
        current[signal_id] = item.claims["iat"]
        winners[signal_id] = item
        accepted.append((signal_id, item))
    if not accepted:
        return
    statement_ids = _insert_statements(member, accepted)
    _upsert_current(member, winners, statement_ids)
    # Rows for the audience that saw the old statement and the one that sees the new
    # one; an assertion that is lapsed on arrival was never visible and gets none.
    now = int(time.time())
    feed: list[FeedChange] = []
    for signal_id, item in winners.items():
        if signal_id in before:
            owed = before_change(*before[signal_id], now)
            if owed is not None:
                feed.append((owed[0], signal_id, owed[1]))
        if item.audience_key is not None and live(item.claims.get("exp"), now):
            feed.append((item.audience_key, signal_id))
    feed_append(feed)


def _insert_statements(member: Member, accepted: list[tuple[int, Item]]) -> dict[str, int]:
    now = timezone.now()
    rows = []
    for signal_id, item in accepted:
        c = item.claims
        assert item.key is not None
        is_assert = c["op"] == "assert"
        rows.append(
            (
                member.pk,
                item.key.pk,
                signal_id,
                member.slug,
                item.key.kid,
                c["jti"],
                c["iat"],
                c["op"],
                c.get("labels") if is_assert else [],
                c.get("tlp", "") if is_assert else "",
                c.get("audience", "") if is_assert else "",
                item.group_id,
                c.get("exp") if is_assert else None,
                c.get("content_type") or "",
                c.get("ref") or "",
                item.token,
                item.digest,
            )
        )
    columns = (
        "member_id, signing_key_id, signal_id, member_slug, kid, jti, iat, op, labels, tlp, "
        "audience, group_id, exp, content_type, ref, jws, token_digest, received_at, "
        "withdrawn_reason"
    )
    with bulk_cursor() as cursor:
        if is_postgres():
            fields = json_fields(
                *("bigint", "bigint", "bigint", "text", "text", "text", "bigint", "text"),
                *("jsonb", "text", "text", "bigint", "bigint", "text", "text", "text", "text"),
            )
            cursor.execute(
                f"INSERT INTO exchange_statement ({columns}) "
                f"SELECT {fields}, %s, '' FROM jsonb_array_elements(%s::jsonb) AS x "
                "RETURNING id, jti",
                [now, json_rows(rows)],
            )
            return {jti: int(pk) for pk, jti in cursor.fetchall()}
        out: dict[str, int] = {}
        for row in rows:
            cursor.execute(
                f"INSERT INTO exchange_statement ({columns}) VALUES ({', '.join(['%s'] * 18)}, '')",
                [*row[:8], orjson.dumps(row[8]).decode(), *row[9:], now],
            )
            out[row[5]] = int(cursor.lastrowid)
        return out


def _upsert_current(member: Member, winners: dict[int, Item], ids: dict[str, int]) -> None:
    rows = [
        (
            member.pk,
            signal_id,
            ids[item.claims["jti"]],
            item.claims["iat"],
            item.audience_key,
            item.claims.get("exp") if item.audience_key is not None else None,
        )
        for signal_id, item in winners.items()
    ]
    sql_tail = (
        "ON CONFLICT (member_id, signal_id) DO UPDATE SET statement_id = excluded.statement_id, "
        "iat = excluded.iat, audience = excluded.audience, exp = excluded.exp, lapsed = FALSE"
    )
    with bulk_cursor() as cursor:
        if is_postgres():
            cursor.execute(
                "INSERT INTO exchange_currentstatement "
                "(member_id, signal_id, statement_id, iat, audience, exp, lapsed) "
                f"SELECT {json_fields(*['bigint'] * 6)}, FALSE "
                "FROM jsonb_array_elements(%s::jsonb) AS x " + sql_tail,
                [json_rows(rows)],
            )
        else:
            cursor.executemany(
                "INSERT INTO exchange_currentstatement "
                "(member_id, signal_id, statement_id, iat, audience, exp, lapsed) "
                "VALUES (%s, %s, %s, %s, %s, %s, FALSE) " + sql_tail,
                rows,
            )
