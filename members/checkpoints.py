"""Signed checkpoints of the audit log: its head, vouched for by the forum's key.

The hash chain (``members/audit.py``) shows an entry edited or deleted in the middle,
but not the newest entries deleted, nor the whole chain recomputed after an edit:
whoever can write the database can do either and the chain still verifies. So the
forum periodically signs the chain's head (celery beat, ``take_audit_checkpoint``;
``python manage.py audit_checkpoint`` takes one now) and publishes it
(``GET /api/v1/audit/checkpoints``, the admin, the transparency report). A checkpoint
is a compact JWS by the forum key (``members/forum_key.py``) with protected header
``{"alg": "EdDSA", "kid": <forum kid>, "typ": "cordiale-audit-checkpoint"}`` and claims::

    {"head_id": 812, "head_hash": "9f2c...", "entries": 790, "iat": 1764400000}

``entries`` counts the entries up to the head (ids may have gaps). A log that no
longer holds entry ``head_id`` with ``head_hash`` was cut or rewritten:
``python manage.py verify_audit`` checks the latest checkpoint, and ``--expect-head
ID:HASH`` a head kept elsewhere (a member's copy of a checkpoint).

Taking a checkpoint first verifies the entries since the previous checkpoint, so the
forum never signs a head that is already broken; it is idempotent (no new entry, no
new checkpoint) and writes no audit entry of its own, which would move the head.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from forum.errors import ConflictError
from members.audit import (
    AuditVerification,
    audit_chain_lock,
    audit_check_head,
    audit_head,
    audit_verify,
)
from members.forum_key import forum_key, forum_token_verify
from members.models import AuditCheckpoint, AuditEntry

CHECKPOINT_TYP = "cordiale-audit-checkpoint"
MAX_LIST = 1000


class AuditChainBroken(ConflictError):
    code = "audit_chain_broken"
    title = "The audit chain is broken"


def _claims(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "head_id": checkpoint.head_id,
        "head_hash": checkpoint.head_hash,
        "entries": checkpoint.entries,
        "iat": int(checkpoint.created_at.timestamp()),
    }


def audit_checkpoint_genuine(checkpoint: AuditCheckpoint) -> bool:
    """Whether the row says what the forum signed (a row edited in the database does not)."""
    claims = forum_token_verify(checkpoint.jws, typ=CHECKPOINT_TYP)
    return claims == _claims(checkpoint)


def audit_checkpoint_latest() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-head_id").first()


def audit_checkpoint_take() -> AuditCheckpoint | None:
    """Sign the chain's current head; the latest checkpoint if the head has not moved,
    None while the log is empty. Raises ``AuditChainBroken`` rather than sign a broken
    chain."""
    with transaction.atomic():
        audit_chain_lock()
        head = audit_head()
        if head is None:
            return None
        latest = audit_checkpoint_latest()
        if latest is not None and latest.head_id == head[0]:
            return latest
        anchor = None
        if latest is not None:
            if not audit_checkpoint_genuine(latest):
                raise AuditChainBroken(
                    f"The checkpoint of entry {latest.head_id} does not verify with the "
                    "forum's keys; no checkpoint signed."
                )
            anchor = (latest.head_id, latest.head_hash)
        result = audit_verify(after=anchor)
        if not result.ok:
            raise AuditChainBroken(
                f"Audit entry {result.bad_entry}: {result.reason}; no checkpoint signed."
            )
        checkpoint = AuditCheckpoint(
            head_id=head[0],
            head_hash=head[1],
            entries=AuditEntry.objects.filter(pk__lte=head[0]).count(),
            created_at=timezone.now().replace(microsecond=0),
        )
        checkpoint.jws = forum_key().sign(_claims(checkpoint), typ=CHECKPOINT_TYP)
        checkpoint.save()
        return checkpoint


def audit_verify_heads(
    *, expect_head: tuple[int, str] | None = None, require_checkpoint: bool = False
) -> AuditVerification:
    """The whole chain, then the heads it must still hold: the latest signed checkpoint
    (if any; required with ``require_checkpoint``) and ``expect_head``."""
    result = audit_verify()
    if not result.ok:
        return result
    latest = audit_checkpoint_latest()
    if latest is None and require_checkpoint:
        return AuditVerification(False, result.entries, None, "no signed checkpoint exists")
    if latest is not None:
        if not audit_checkpoint_genuine(latest):
            return AuditVerification(
                False,
                result.entries,
                latest.head_id,
                f"checkpoint of entry {latest.head_id} does not verify with the forum's keys",
            )
        problem = audit_check_head(head_id=latest.head_id, head_hash=latest.head_hash)
        if problem is not None:
            return AuditVerification(False, result.entries, problem.bad_entry, problem.reason)
    if expect_head is not None:
        problem = audit_check_head(head_id=expect_head[0], head_hash=expect_head[1])
        if problem is not None:
            return AuditVerification(False, result.entries, problem.bad_entry, problem.reason)
    return result


def checkpoint_document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """A checkpoint as the API, the report and the admin publish it."""
    return {
        "head_id": checkpoint.head_id,
        "head_hash": checkpoint.head_hash,
        "entries": checkpoint.entries,
        "created_at": checkpoint.created_at.isoformat().replace("+00:00", "Z"),
        "jws": checkpoint.jws,
    }


def audit_checkpoint_list(*, limit: int = 100) -> list[dict[str, Any]]:
    """The newest checkpoints first."""
    limit = max(1, min(limit, MAX_LIST))
    return [checkpoint_document(c) for c in AuditCheckpoint.objects.order_by("-head_id")[:limit]]
