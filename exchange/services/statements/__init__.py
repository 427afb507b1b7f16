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
``unknown_signal_type``, ``invalid_value``, ``unknown_label``, ``mixed_label_kinds``,
``invalid_audience``), time
(``clock_skew``, ``too_old``) and finally ``stale``.

Signatures are verified before the database transaction (they are the CPU cost); the
transaction then locks the member row, so one member's batches apply one after another
and "newest iat wins" is decided against committed state. The whole batch commits
atomically, with its feed rows appended last (see ``exchange/feed.py``).
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction

from exchange.client.statement_format import MAX_BATCH
from exchange.db import fetchall, in_list
from exchange.metrics import record_statement_results
from forum.errors import DomainError
from members.models import Member, SigningKey

from .checks import Item, Rejection, _check_claims, _context, _verify
from .store import _store

__all__ = ["MAX_BATCH", "Rejection", "statement_submit"]


def statement_submit(*, member: Member, tokens: list[Any]) -> dict[str, Any]:
    """Judge and apply a batch of statements; returns the contract's response body."""
    items = [Item(index=i, token=t) for i, t in enumerate(tokens)]
    # A pending key is no key of the member's yet: it signs nothing (``unknown_key``).
    keys = {
        k.kid: k
        for k in SigningKey.objects.filter(member=member).exclude(status=SigningKey.Status.PENDING)
    }
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
