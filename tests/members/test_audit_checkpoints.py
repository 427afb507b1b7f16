"""Signed audit checkpoints: cutting the log's tail or re-chaining it after an edit is
noticed, although the hash chain alone still verifies.

Tampering is done as an intruder with database access would: raw SQL, recomputing the
hashes. The forum's key is not in the database, so checkpoints cannot be re-signed.
"""

from __future__ import annotations

import base64
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from exchange.reports import transparency_report
from exchange.tasks import take_audit_checkpoint
from members.audit import GENESIS, entry_digest
from members.forum_key import forum_key
from members.models import AuditCheckpoint, AuditEntry
from tests.factories import MemberFactory, make_party
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db


def command(name: str, *args: str) -> tuple[int, dict[str, Any]]:
    """(exit status, last JSON line) of a management command."""
    out = StringIO()
    status = 0
    try:
        call_command(name, *args, stdout=out)
    except SystemExit as exc:
        status = int(exc.code or 0)
    return status, json.loads(out.getvalue().strip().splitlines()[-1])


def some_entries(n: int = 4) -> None:
    for _ in range(n):
        MemberFactory()


def jws_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def decode(segment: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))

    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


def cut_tail(n: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM members_auditentry WHERE id IN "
            "(SELECT id FROM members_auditentry ORDER BY id DESC LIMIT %s)",
            [n],
        )


def edit_and_rechain(entry_id: int) -> None:
    """Change one entry and recompute every hash after it, so the chain verifies."""
    prev = GENESIS
    with connection.cursor() as cursor:
        for entry in AuditEntry.objects.order_by("id"):
            after = {"status": "forged"} if entry.pk == entry_id else entry.after
            digest = entry_digest(
                entry_id=entry.pk,
                prev_hash=prev,
                at=entry.created_at,
                actor=entry.actor,
                action=entry.action,
                object_type=entry.object_type,
                object_id=entry.object_id,
                before=entry.before,
                after=after,
            )
            cursor.execute(
                "UPDATE members_auditentry SET prev_hash = %s, entry_hash = %s, after = %s "
                "WHERE id = %s",
                [prev, digest, json.dumps(after), entry.pk],
            )
            prev = digest


def test_checkpoint_signs_the_head_once() -> None:
    """``audit_checkpoint`` signs the chain's head with the forum key (claims head_id,
    head_hash, entries, iat); taking it again without new entries changes nothing; a new
    entry gives a new checkpoint. The beat task does the same."""
    some_entries()
    status, body = command("audit_checkpoint")
    head = AuditEntry.objects.latest("id")
    checkpoint = body["checkpoint"]
    assert status == 0
    assert (checkpoint["head_id"], checkpoint["head_hash"]) == (head.pk, head.entry_hash)
    assert checkpoint["entries"] == AuditEntry.objects.count()
    header, claims = jws_parts(checkpoint["jws"])
    assert header == {"alg": "EdDSA", "kid": forum_key().kid, "typ": "cordiale-audit-checkpoint"}
    assert {k: claims[k] for k in ("head_id", "head_hash", "entries")} == {
        k: checkpoint[k] for k in ("head_id", "head_hash", "entries")
    }
    assert command("audit_checkpoint")[1] == body
    assert take_audit_checkpoint() == head.pk
    assert AuditCheckpoint.objects.count() == 1

    MemberFactory()
    assert take_audit_checkpoint() == AuditEntry.objects.latest("id").pk
    assert AuditCheckpoint.objects.count() == 2


def test_api_lists_checkpoints_newest_first() -> None:
    """GET /api/v1/audit/checkpoints (scope read): the signed checkpoints, newest first,
    verifiable against the forum key in /api/v1/jwks; a bad limit is a 400 problem."""
    reader = make_party("reader")
    take_audit_checkpoint()
    MemberFactory()
    take_audit_checkpoint()
    response = reader.get("/api/v1/audit/checkpoints")
    assert response.status_code == 200, response.content
    listed = response.json()["checkpoints"]
    assert [c["head_id"] for c in listed] == list(
        AuditCheckpoint.objects.order_by("-head_id").values_list("head_id", flat=True)
    )
    assert len(listed) == 2
    forum = [k for k in reader.get("/api/v1/jwks").json()["keys"] if k.get("forum")]
    assert {jws_parts(c["jws"])[0]["kid"] for c in listed} == {forum[0]["kid"]}
    assert [
        c["head_id"] for c in reader.get("/api/v1/audit/checkpoints?limit=1").json()["checkpoints"]
    ] == [listed[0]["head_id"]]
    assert_problem(reader.get("/api/v1/audit/checkpoints?limit=0"), 400, "invalid_limit")
    submitter = make_party("submitter", scopes=["submit"])
    assert submitter.get("/api/v1/audit/checkpoints").status_code == 403


def test_cut_tail_is_detected() -> None:
    """Deleting the newest entries leaves a chain that verifies on its own, but not
    against the signed checkpoint: exit 1, ok false, the missing head named."""
    some_entries()
    _, body = command("audit_checkpoint")
    head_id = body["checkpoint"]["head_id"]
    cut_tail(2)
    status, result = command("verify_audit")
    assert status == 1
    assert result["ok"] is False and result["bad_entry"] == head_id
    assert "cut" in result["reason"]


def test_rechained_edit_is_detected_through_the_checkpoint() -> None:
    """Editing an entry and recomputing the whole chain is detected through the signed
    checkpoint, in the default mode and with --latest-checkpoint."""
    some_entries()
    _, body = command("audit_checkpoint")
    edit_and_rechain(AuditEntry.objects.order_by("id")[1].pk)
    for args in ((), ("--latest-checkpoint",)):
        status, result = command("verify_audit", *args)
        assert status == 1, args
        assert result["ok"] is False and result["bad_entry"] == body["checkpoint"]["head_id"]
        assert "rewritten" in result["reason"]


def test_forging_the_checkpoint_row_too_is_detected() -> None:
    """An intruder who also rewrites the checkpoint's stored hash cannot re-sign it: the
    checkpoint no longer verifies, and no new checkpoint is signed over the forgery."""
    some_entries()
    command("audit_checkpoint")
    edit_and_rechain(AuditEntry.objects.order_by("id")[0].pk)
    head = AuditEntry.objects.latest("id")
    AuditCheckpoint.objects.update(head_hash=head.entry_hash)
    status, result = command("verify_audit")
    assert status == 1 and result["ok"] is False
    assert "does not verify" in result["reason"]
    MemberFactory()
    with pytest.raises(Exception, match="does not verify"):
        call_command("audit_checkpoint", stdout=StringIO())
    assert AuditCheckpoint.objects.count() == 1


def test_no_checkpoint_over_a_broken_chain() -> None:
    """A checkpoint is never signed over a chain that does not verify."""
    some_entries()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE members_auditentry SET actor = 'someone-else' WHERE id = %s",
            [AuditEntry.objects.order_by("id")[1].pk],
        )
    with pytest.raises(Exception, match="no checkpoint signed"):
        call_command("audit_checkpoint", stdout=StringIO())
    assert not AuditCheckpoint.objects.exists()


def test_expect_head() -> None:
    """--expect-head ID:HASH passes while the log holds that head and fails once it is
    cut or rewritten; the success line keeps the contract's shape."""
    some_entries()
    head = AuditEntry.objects.latest("id")
    expected = f"{head.pk}:{head.entry_hash}"
    assert command("verify_audit", "--expect-head", expected) == (
        0,
        {"ok": True, "entries": AuditEntry.objects.count()},
    )
    edit_and_rechain(head.pk)
    status, result = command("verify_audit", "--expect-head", expected)
    assert status == 1 and result["ok"] is False and result["bad_entry"] == head.pk
    cut_tail(1)
    status, result = command("verify_audit", "--expect-head", expected)
    assert status == 1 and result["bad_entry"] == head.pk and "cut" in result["reason"]


def test_latest_checkpoint_mode_needs_a_checkpoint() -> None:
    """--latest-checkpoint fails when nothing was ever signed; plain verify_audit passes."""
    some_entries()
    assert command("verify_audit")[0] == 0
    status, result = command("verify_audit", "--latest-checkpoint")
    assert status == 1 and result["ok"] is False


def test_transparency_report_carries_the_latest_checkpoint() -> None:
    """The transparency report publishes the last checkpoint signed in its period."""
    from datetime import UTC, datetime, timedelta

    some_entries()
    take_audit_checkpoint()
    today = datetime.now(UTC).date()
    report = transparency_report(start=today - timedelta(days=1), end=today + timedelta(days=1))
    assert report["audit_checkpoint"]["head_id"] == AuditEntry.objects.latest("id").pk
    assert report["audit_checkpoint"]["jws"] == AuditCheckpoint.objects.get().jws
