"""The Django admin acts only through the services, as ``admin:<username>``."""

import re
from typing import Any

import pytest
from django.test import Client

from exchange.models import Label
from members.models import ApiKey, AuditEntry, Member, SharingGroup, SigningKey
from members.services import api_key_lookup
from tests.factories import MemberFactory, make_party, make_staff, verified_admin_client

pytestmark = pytest.mark.django_db

ACTOR = "admin:root"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.fixture
def admin_client() -> Client:
    return verified_admin_client(*make_staff("root"))


def action(client: Client, url: str, name: str, pks: list[int], **extra: Any) -> Any:
    return client.post(url, {"action": name, "_selected_action": pks, **extra})


def last_entry() -> AuditEntry:
    return AuditEntry.objects.latest("id")


MEMBERS = "/admin/members/member/"


def test_approve_applicant(admin_client: Client) -> None:
    """Approve makes an applicant active, audited under the admin's name."""
    member = MemberFactory(status=Member.Status.APPLICANT)
    response = action(admin_client, MEMBERS, "approve", [member.pk])
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE
    entry = last_entry()
    assert (entry.actor, entry.action, entry.object_id) == (
        ACTOR,
        "member.status_changed",
        member.slug,
    )


@pytest.mark.parametrize("name,status", [("suspend", "suspended"), ("expel", "expelled")])
def test_suspend_and_expel_ask_for_confirmation(
    admin_client: Client, name: str, status: str
) -> None:
    """Suspend and expel first show what will happen and change nothing; confirming
    applies the change through the service."""
    member = MemberFactory()
    entries = AuditEntry.objects.count()
    page = action(admin_client, MEMBERS, name, [member.pk])
    assert page.status_code == 200
    assert b"What happens" in page.content and member.slug.encode() in page.content
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE and AuditEntry.objects.count() == entries

    done = action(admin_client, MEMBERS, name, [member.pk], confirm="yes")
    assert done.status_code == 302
    member.refresh_from_db()
    assert member.status == status
    assert (last_entry().actor, last_entry().after["status"]) == (ACTOR, status)


def test_reinstate_suspended(admin_client: Client) -> None:
    """Reinstating a suspended member makes it active again, audited under the admin's name."""
    member = MemberFactory()
    action(admin_client, MEMBERS, "suspend", [member.pk], confirm="yes")
    action(admin_client, MEMBERS, "reinstate", [member.pk])
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE
    assert last_entry().actor == ACTOR and last_entry().after["status"] == "active"


def test_impossible_transition_is_reported_not_applied(admin_client: Client) -> None:
    """An action the member's status does not allow (approving an expelled member) is reported on
    the page and leaves the status as it was."""
    member = MemberFactory()
    action(admin_client, MEMBERS, "expel", [member.pk], confirm="yes")
    response = admin_client.post(
        MEMBERS, {"action": "approve", "_selected_action": [member.pk]}, follow=True
    )
    assert b"cannot go from expelled to active" in response.content
    member.refresh_from_db()
    assert member.status == Member.Status.EXPELLED


def test_add_member_goes_through_the_service(admin_client: Client) -> None:
    """A member added in the admin is created by the service: an applicant, with a
    ``member.created`` audit entry by the admin."""
    response = admin_client.post(
        "/admin/members/member/add/", {"slug": "newco", "name": "NewCo", "contact_email": ""}
    )
    assert response.status_code == 302, response.content
    assert Member.objects.get(slug="newco").status == Member.Status.APPLICANT
    assert (last_entry().actor, last_entry().action) == (ACTOR, "member.created")


def test_api_key_secret_is_shown_once(admin_client: Client) -> None:
    """Creating a key shows its secret on the answer to the POST, with no-store; the key's
    page never shows the secret or the digest again."""
    member = MemberFactory()
    response = admin_client.post(
        "/admin/members/apikey/add/",
        {"member": member.pk, "name": "ci", "scopes": ["read", "submit"]},
    )
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    secret = re.search(rb"cdl_[0-9a-f]{12}_[A-Za-z0-9_-]+", response.content)
    assert secret is not None
    key = api_key_lookup(secret.group().decode())
    assert key is not None and key.member == member and key.scopes == ["read", "submit"]
    assert (last_entry().actor, last_entry().action) == (ACTOR, "api_key.issued")

    page = admin_client.get(f"/admin/members/apikey/{key.pk}/change/")
    assert page.status_code == 200
    assert secret.group() not in page.content
    assert key.digest.encode() not in page.content
    assert admin_client.get("/admin/members/apikey/").content.count(secret.group()) == 0


def test_revoke_api_key_action(admin_client: Client) -> None:
    """The revoke action revokes the API key, audited, and the key no longer authenticates."""
    party = make_party()
    key = ApiKey.objects.get(member=party.member)
    action(admin_client, "/admin/members/apikey/", "revoke", [key.pk])
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert (last_entry().actor, last_entry().action) == (ACTOR, "api_key.revoked")
    assert party.client.get("/api/v1/me").status_code == 401


def test_signing_key_added_with_x_gets_its_kid(admin_client: Client) -> None:
    """A signing key added by its public ``x`` is registered under its RFC 8037 thumbprint kid,
    audited."""
    member = MemberFactory()
    response = admin_client.post(
        "/admin/members/signingkey/add/", {"member": member.pk, "public_key": RFC8037_X}
    )
    assert response.status_code == 302, response.content
    assert SigningKey.objects.get(kid=RFC8037_KID).member == member
    assert (last_entry().actor, last_entry().action) == (ACTOR, "signing_key.registered")


def test_signing_key_bad_input_is_a_form_error(admin_client: Client) -> None:
    """A public key that is not Ed25519 is a form error and registers nothing."""
    member = MemberFactory()
    response = admin_client.post(
        "/admin/members/signingkey/add/", {"member": member.pk, "public_key": "not a key"}
    )
    assert response.status_code == 200
    assert b"Not an Ed25519 public key" in response.content
    assert not SigningKey.objects.exists()


def test_signing_key_retire_and_revoke_actions(admin_client: Client) -> None:
    """Retire takes effect at once; revoke first asks for confirmation, then records the key as
    revoked with its compromise time, audited."""
    a, b = make_party(), make_party()
    url = "/admin/members/signingkey/"
    action(admin_client, url, "retire", [SigningKey.objects.get(kid=a.kid).pk])
    assert SigningKey.objects.get(kid=a.kid).status == "retired"
    pk = SigningKey.objects.get(kid=b.kid).pk
    assert action(admin_client, url, "revoke", [pk]).status_code == 200  # confirmation
    action(
        admin_client,
        url,
        "revoke",
        [pk],
        confirm="yes",
        compromised_since="2026-01-01 00:00:00",
    )
    key = SigningKey.objects.get(kid=b.kid)
    assert key.status == "revoked" and key.compromised_since is not None
    assert (last_entry().actor, last_entry().action) == (ACTOR, "signing_key.revoked")


def test_signing_keys_are_read_only_after_creation(admin_client: Client) -> None:
    """A registered signing key cannot be changed through the admin (403)."""
    party = make_party()
    pk = SigningKey.objects.get(kid=party.kid).pk
    response = admin_client.post(
        f"/admin/members/signingkey/{pk}/change/", {"member": party.member.pk}
    )
    assert response.status_code == 403


def test_sharing_group_members_go_through_the_service(admin_client: Client) -> None:
    """Creating a sharing group with members, then changing its members, goes through the service:
    each step is audited and the last entry lists the members left."""
    a, b = MemberFactory(), MemberFactory()
    response = admin_client.post(
        "/admin/members/sharinggroup/add/",
        {"slug": "g1", "name": "G1", "description": "", "group_members": [a.pk, b.pk]},
    )
    assert response.status_code == 302, response.content
    group = SharingGroup.objects.get(slug="g1")
    assert set(group.members.all()) == {a, b}
    actions = list(
        AuditEntry.objects.filter(actor=ACTOR, object_type="sharing_group").values_list(
            "action", flat=True
        )
    )
    assert actions == ["sharing_group.created", "sharing_group.members_set"]

    admin_client.post(
        f"/admin/members/sharinggroup/{group.pk}/change/",
        {"name": "G1", "description": "", "group_members": [b.pk]},
    )
    assert list(group.members.all()) == [b]
    assert last_entry().after == {"members": [b.slug]}


def test_audit_log_is_read_only(admin_client: Client) -> None:
    """The audit log can be listed and viewed, but not added to, changed or deleted (403)."""
    MemberFactory()
    entry = last_entry()
    assert admin_client.get("/admin/members/auditentry/").status_code == 200
    assert admin_client.get(f"/admin/members/auditentry/{entry.pk}/change/").status_code == 200
    assert admin_client.get("/admin/members/auditentry/add/").status_code == 403
    assert (
        admin_client.post(
            f"/admin/members/auditentry/{entry.pk}/change/", {"actor": "x"}
        ).status_code
        == 403
    )
    assert admin_client.post(f"/admin/members/auditentry/{entry.pk}/delete/").status_code == 403


def test_label_changes_are_audited(admin_client: Client) -> None:
    """Deactivating a label in the admin saves it and writes a ``label.updated`` audit entry by the
    admin."""
    label = Label.objects.get(slug="recruitment")
    response = admin_client.post(
        f"/admin/exchange/label/{label.pk}/change/",
        {"name": label.name, "kind": label.kind, "description": "Edited.", "active": ""},
    )
    assert response.status_code == 302, response.content
    label.refresh_from_db()
    assert label.active is False
    entry = last_entry()
    assert (entry.actor, entry.action, entry.after["active"]) == (ACTOR, "label.updated", False)


def test_statements_and_signals_are_read_only(admin_client: Client) -> None:
    """Statements and signals can be listed, but no admin can add one (403)."""
    party = make_party()
    party.submit(party.statement("md5", "0" * 32))
    assert admin_client.get("/admin/exchange/statement/").status_code == 200
    assert admin_client.get("/admin/exchange/signal/").status_code == 200
    assert admin_client.get("/admin/exchange/statement/add/").status_code == 403
    assert admin_client.get("/admin/exchange/signal/add/").status_code == 403


def test_key_pages_show_each_key_read_only(admin_client: Client) -> None:
    """An issued API key and a registered signing key open on a read-only page: their
    fields are shown, none is an input, and there is no save button."""
    party = make_party()
    pages = {
        f"/admin/members/apikey/{ApiKey.objects.get(member=party.member).pk}/change/": "prefix",
        f"/admin/members/signingkey/{SigningKey.objects.get(kid=party.kid).pk}/change/": "kid",
    }
    for url, field in pages.items():
        page = admin_client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert f"field-{field}" in html
        assert 'name="_save"' not in html
        assert not re.search(r'<(input|textarea)[^>]+name="(member|name|public_key)"', html)
