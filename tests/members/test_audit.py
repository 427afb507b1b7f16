"""Every service writes an audit entry, and ``verify_audit`` notices tampering."""

import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from exchange.models import Label
from exchange.services.labels import label_save
from members import services
from members.audit import GENESIS, entry_digest
from members.models import ApiKey, AuditEntry, Member, SharingGroup
from tests.factories import MemberFactory, key_of, make_party

pytestmark = pytest.mark.django_db

ACTOR = "auditor-test"


def _issue(m: Member) -> Any:
    return services.api_key_issue(member=m, actor=ACTOR)


def _revoke_api_key(m: Member) -> Any:
    key, _ = services.api_key_issue(member=m, actor="setup")
    return services.api_key_revoke(api_key=key, actor=ACTOR)


def _group(m: Member) -> SharingGroup:
    return services.sharing_group_create(slug="g", members=[m], actor="setup")


SERVICES: dict[str, Callable[[Member], Any]] = {
    "member.created": lambda m: services.member_create(slug="new", name="New", actor=ACTOR),
    "member.status_changed": lambda m: services.member_set_status(
        member=m, status="suspended", actor=ACTOR
    ),
    "member.updated": lambda m: services.member_update(
        member=m, name="Renamed", contact_email="ops@example.org", actor=ACTOR
    ),
    "api_key.issued": _issue,
    "api_key.revoked": _revoke_api_key,
    "signing_key.registered": lambda m: services.signing_key_register(
        member=m, public_key="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", actor=ACTOR
    ),
    "sharing_group.created": lambda m: services.sharing_group_create(slug="g", actor=ACTOR),
    "sharing_group.members_set": lambda m: services.sharing_group_set_members(
        group=_group(m), members=[], actor=ACTOR
    ),
    "sharing_group.updated": lambda m: services.sharing_group_update(
        group=_group(m), name="Renamed", description="", actor=ACTOR
    ),
    "label.updated": lambda m: _relabel(),
}


def _relabel() -> Label:
    label = Label.objects.get(slug="recruitment")
    label.description = "Changed by a test."
    return label_save(label=label, actor=ACTOR)


@pytest.mark.parametrize("action", sorted(SERVICES))
def test_each_service_writes_an_audit_entry(action: str) -> None:
    """The service's change is in the audit log, under its actor, and the chain holds."""
    member = MemberFactory()
    SERVICES[action](member)
    entry = AuditEntry.objects.filter(actor=ACTOR).latest("id")
    assert entry.action == action
    assert run_verify() == (0, {"ok": True, "entries": AuditEntry.objects.count()})


@pytest.mark.parametrize("compromised", [False, True])
def test_signing_key_lifecycle_is_audited(compromised: bool) -> None:
    """Retiring a signing key, or revoking it as compromised, writes its audit entry."""
    party = make_party()
    if compromised:
        services.signing_key_revoke(
            key=key_of(party), compromised_since=timezone.now(), actor=ACTOR
        )
        assert AuditEntry.objects.filter(actor=ACTOR).latest("id").action == "signing_key.revoked"
    else:
        services.signing_key_retire(key=key_of(party), actor=ACTOR)
        assert AuditEntry.objects.filter(actor=ACTOR).latest("id").action == "signing_key.retired"


def test_api_key_entries_hold_no_secret() -> None:
    """The audit log names a key by its prefix; the secret appears nowhere in it."""
    member = MemberFactory()
    key, secret = services.api_key_issue(member=member, actor=ACTOR)
    entry = AuditEntry.objects.filter(action="api_key.issued").latest("id")
    assert entry.object_id == key.prefix
    assert secret not in json.dumps([entry.before, entry.after])
    assert ApiKey.objects.count() == 1


def run_verify() -> tuple[int, dict[str, Any]]:
    out = StringIO()
    code = 0
    try:
        call_command("verify_audit", stdout=out)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


def _three_entries() -> list[AuditEntry]:
    for slug in ("a", "b", "c"):
        services.member_create(slug=slug, name=slug.upper(), actor=ACTOR)
    return list(AuditEntry.objects.order_by("id"))


def test_edited_entry_is_detected() -> None:
    """Changing any field of an entry breaks the chain at that entry: exit 1, named."""
    entries = _three_entries()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE members_auditentry SET actor = %s WHERE id = %s",
            ["someone-else", entries[1].pk],
        )
    code, result = run_verify()
    assert code == 1
    assert result["ok"] is False and result["bad_entry"] == entries[1].pk


def test_deleted_entry_is_detected() -> None:
    """Deleting an entry breaks the chain at the entry after it."""
    entries = _three_entries()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM members_auditentry WHERE id = %s", [entries[1].pk])
    code, result = run_verify()
    assert code == 1
    assert result["ok"] is False and result["bad_entry"] == entries[2].pk


def test_inserted_entry_is_detected() -> None:
    """A forged entry slipped in before existing ones, even with a self-consistent hash,
    breaks the chain at the genuine entry that follows it."""
    entries = _three_entries()
    forged_id = entries[0].pk - 1
    at = timezone.now()
    digest = entry_digest(
        entry_id=forged_id,
        prev_hash=GENESIS,
        at=at,
        actor="intruder",
        action="member.created",
        object_type="member",
        object_id="ghost",
        before=None,
        after=None,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO members_auditentry (id, created_at, actor, action, object_type, "
            "object_id, before, after, prev_hash, entry_hash) "
            "VALUES (%s, %s, %s, %s, %s, %s, NULL, NULL, %s, %s)",
            [
                forged_id,
                connection.ops.adapt_datetimefield_value(at),
                "intruder",
                "member.created",
                "member",
                "ghost",
                GENESIS,
                digest,
            ],
        )
    code, result = run_verify()
    assert code == 1
    assert result["ok"] is False and result["bad_entry"] == entries[0].pk
