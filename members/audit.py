"""The tamper-evident audit log.

Each entry carries ``prev_hash`` (the ``entry_hash`` of the entry before it, or 64 zeros
for the first) and ``entry_hash`` = SHA-256 over the canonical JSON of::

    {"id": 7, "prev": "<prev_hash>", "at": "2026-11-29T09:30:00.000000Z", "actor": "cli",
     "action": "member.status_changed", "type": "member", "object": "acme",
     "before": {...}, "after": {...}}

Editing, inserting or deleting any entry breaks the chain at that entry, which
``python manage.py verify_audit`` reports. ``python manage.py export_audit`` writes the
same documents as JSON lines, each with its ``hash``, so that an archive can be checked
without the server: drop ``hash``, serialise the rest with sorted keys and no spaces
(``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``), and
compare its SHA-256 with ``hash``; each line's ``prev`` is the ``hash`` of the line
before (``audit_verify_documents`` does exactly that). Appends are serialised by a transaction-level
lock so two writers cannot both extend the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from .models import AuditEntry

GENESIS = "0" * 64
_AUDIT_LOCK_KEY = 0x43_4F_52_44_41_55_44  # "CORDAUD"


def _canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_digest(
    *,
    entry_id: int,
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: Any,
    after: Any,
) -> str:
    return _document_digest(
        {
            "id": entry_id,
            "prev": prev_hash,
            "at": _canonical_time(at),
            "actor": actor,
            "action": action,
            "type": object_type,
            "object": object_id,
            "before": before,
            "after": after,
        }
    )


def _document_digest(document: dict[str, Any]) -> str:
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def entry_document(entry: AuditEntry) -> dict[str, Any]:
    """The entry as it is hashed, plus its ``hash``: one line of the JSONL export."""
    return {
        "id": entry.pk,
        "prev": entry.prev_hash,
        "at": _canonical_time(entry.created_at),
        "actor": entry.actor,
        "action": entry.action,
        "type": entry.object_type,
        "object": entry.object_id,
        "before": entry.before,
        "after": entry.after,
        "hash": entry.entry_hash,
    }


def audit_chain_lock() -> None:
    """Hold the chain's head still until this transaction ends (appends and checkpoints)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])


def audit_record(
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    """Append an entry to the audit chain, inside the caller's transaction."""
    with transaction.atomic():
        audit_chain_lock()
        last = AuditEntry.objects.order_by("-id").only("id", "entry_hash").first()
        prev_hash = last.entry_hash if last else GENESIS
        # JSON round trip so the digest covers exactly what the database stores.
        before = json.loads(json.dumps(before, default=str)) if before is not None else None
        after = json.loads(json.dumps(after, default=str)) if after is not None else None
        entry = AuditEntry(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
            prev_hash=prev_hash,
            entry_hash="pending-" + hashlib.sha256(prev_hash.encode()).hexdigest()[:56],
        )
        entry.save()
        entry.entry_hash = entry_digest(
            entry_id=entry.pk,
            prev_hash=prev_hash,
            at=entry.created_at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=entry.object_id,
            before=before,
            after=after,
        )
        entry.save(update_fields=["entry_hash"])
        return entry


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    entries: int
    bad_entry: int | None = None
    reason: str | None = None


def audit_head() -> tuple[int, str] | None:
    """(id, hash) of the newest entry, or None while the log is empty."""
    last = AuditEntry.objects.order_by("-id").only("id", "entry_hash").first()
    return None if last is None else (last.pk, last.entry_hash)


def audit_verify(*, after: tuple[int, str] | None = None) -> AuditVerification:
    """Walk the chain from the start; report the first entry that does not fit.

    Ids may have gaps (a rolled-back transaction consumes one), so a deletion shows as
    the next entry's ``prev_hash`` no longer matching. With ``after`` (the id and hash of
    an entry vouched for already, a signed checkpoint's head) only the entries after it
    are walked, once that entry is found unchanged.
    """
    prev_hash = GENESIS
    entries = AuditEntry.objects.order_by("id")
    if after is not None:
        problem = audit_check_head(head_id=after[0], head_hash=after[1])
        if problem is not None:
            return problem
        prev_hash = after[1]
        entries = entries.filter(id__gt=after[0])
    count = 0
    for entry in entries.iterator(chunk_size=2000):
        count += 1
        if entry.prev_hash != prev_hash:
            return AuditVerification(
                False, count, entry.pk, "prev_hash does not match the previous entry"
            )
        digest = entry_digest(
            entry_id=entry.pk,
            prev_hash=entry.prev_hash,
            at=entry.created_at,
            actor=entry.actor,
            action=entry.action,
            object_type=entry.object_type,
            object_id=entry.object_id,
            before=entry.before,
            after=entry.after,
        )
        if digest != entry.entry_hash:
            return AuditVerification(False, count, entry.pk, "entry content was altered")
        prev_hash = entry.entry_hash
    return AuditVerification(True, count)


def audit_check_head(*, head_id: int, head_hash: str) -> AuditVerification | None:
    """None if the log still holds entry ``head_id`` with ``head_hash``, else the failure.

    A chain that verifies on its own can still have lost its tail (the newest entries
    deleted) or been recomputed after an edit; only a head recorded elsewhere (a signed
    checkpoint, a hash a member kept) shows either.
    """
    held = AuditEntry.objects.filter(pk=head_id).values_list("entry_hash", flat=True).first()
    count = AuditEntry.objects.filter(pk__lte=head_id).count()
    if held is None:
        return AuditVerification(
            False,
            count,
            head_id,
            f"entry {head_id} of the expected head is missing: the log was cut",
        )
    if held != head_hash:
        return AuditVerification(
            False,
            count,
            head_id,
            f"entry {head_id} does not carry the expected head hash: the log was rewritten",
        )
    return None


def audit_verify_documents(
    documents: Iterable[dict[str, Any]], *, anchor: str | None = None
) -> AuditVerification:
    """Check exported entries without the database.

    ``anchor`` is the ``prev`` the first document must carry: the genesis hash for a
    full export; for a partial one (``export_audit --since``), the ``hash`` of the last
    entry of the previous archive, or None to trust the first document's ``prev``.
    """
    prev_hash = anchor
    count = 0
    for document in documents:
        count += 1
        body = {k: v for k, v in document.items() if k != "hash"}
        if prev_hash is not None and body.get("prev") != prev_hash:
            return AuditVerification(
                False, count, document.get("id"), "prev does not match the previous entry"
            )
        if _document_digest(body) != document.get("hash"):
            return AuditVerification(False, count, document.get("id"), "entry content was altered")
        prev_hash = document["hash"]
    return AuditVerification(True, count)
