"""Applications: approval creates the member, its first key and signing key, audited;
confirmation pages say what an action will do, with counts."""

import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import jws
from members.models import AuditEntry, Member, MembershipApplication
from members.services import api_key_lookup
from tests.factories import make_group, make_party, make_staff, pdq, verified_admin_client

pytestmark = pytest.mark.django_db

APPS = "/admin/members/membershipapplication/"


@pytest.fixture
def admin_client() -> Any:
    return verified_admin_client(*make_staff("root"))


def application_data(slug: str = "newco", **overrides: Any) -> dict[str, Any]:
    x = jws.public_key_x(Ed25519PrivateKey.generate().public_key())
    data = {
        "organisation_name": "NewCo Video",
        "slug": slug,
        "website": "https://newco.example",
        "contact_name": "Ana Ops",
        "contact_email": "trust@newco.example",
        "bans_terrorist_content": "on",
        "publishes_transparency_report": "on",
        "human_rights_commitment": "on",
        "public_key": x,
        "reviewer_notes": "",
    }
    data.update(overrides)
    return data


def submit(client: Any, **overrides: Any) -> MembershipApplication:
    response = client.post(f"{APPS}add/", application_data(**overrides))
    assert response.status_code == 302, response.content
    return MembershipApplication.objects.latest("id")


def test_approval_creates_member_key_and_signing_key(admin_client: Any) -> None:
    """Approving an application (after a page showing the kid) creates the active member, its API
    key (shown once, not cached) and its signing key, each step audited; approving twice does
    nothing more."""
    application = submit(admin_client)
    page = admin_client.get(f"{APPS}{application.pk}/approve/")
    assert page.status_code == 200
    kid = jws.jwk_thumbprint(application.public_key)
    assert kid.encode() in page.content and b"shown once" in page.content
    assert not Member.objects.filter(slug="newco").exists()

    done = admin_client.post(f"{APPS}{application.pk}/approve/")
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    secret = re.search(rb"cdl_[0-9a-f]{12}_[A-Za-z0-9_-]+", done.content)
    assert secret is not None
    member = Member.objects.get(slug="newco")
    assert member.status == Member.Status.ACTIVE
    key = api_key_lookup(secret.group().decode())
    assert key is not None and key.member == member
    assert member.signing_keys.get().kid == kid
    application.refresh_from_db()
    assert (application.status, application.member) == ("approved", member)
    actions = list(
        AuditEntry.objects.filter(actor="admin:root")
        .exclude(action="admin.login")
        .values_list("action", flat=True)
    )
    assert actions == [
        "application.created",
        "member.created",
        "member.status_changed",
        "api_key.issued",
        "signing_key.registered",
        "application.approved",
    ]
    # Approving twice does nothing more.
    again = admin_client.post(f"{APPS}{application.pk}/approve/", follow=True)
    assert b"approved" in again.content and Member.objects.filter(slug="newco").count() == 1


def test_missing_commitment_blocks_approval(admin_client: Any) -> None:
    """An application without the human rights commitment cannot be approved and creates no
    member."""
    application = submit(admin_client, human_rights_commitment="")
    page = admin_client.get(f"{APPS}{application.pk}/approve/")
    assert b"cannot be approved" in page.content
    admin_client.post(f"{APPS}{application.pk}/approve/")
    assert not Member.objects.filter(slug="newco").exists()


def test_reject_is_audited_with_notes(admin_client: Any) -> None:
    """Rejecting an application keeps the reviewer's notes and is audited."""
    application = submit(admin_client)
    admin_client.post(f"{APPS}{application.pk}/reject/", {"notes": "No transparency report."})
    application.refresh_from_db()
    assert application.status == "rejected"
    assert "No transparency report." in application.reviewer_notes
    entry = AuditEntry.objects.latest("id")
    assert (entry.actor, entry.action) == ("admin:root", "application.rejected")


def test_bad_key_or_taken_slug_are_form_errors(admin_client: Any) -> None:
    """An invalid public key or a slug already taken is a form error and records no application."""
    make_party("taken")
    for overrides in ({"public_key": "nope"}, {"slug": "taken"}):
        response = admin_client.post(f"{APPS}add/", application_data(**overrides))
        assert response.status_code == 200
    assert not MembershipApplication.objects.exists()


def test_expel_confirmation_counts_viewers(admin_client: Any) -> None:
    """The page says how many statements are withdrawn from how many members' view:
    a forum statement reaches every other active member."""
    a, b, _ = make_party(), make_party(), make_party()
    make_group("ab", a, b)
    a.submit(a.statement("pdq", pdq(), audience="group:ab"))
    page = admin_client.post(
        "/admin/members/member/", {"action": "expel", "_selected_action": [a.member.pk]}
    )
    assert f"{a.slug}: 1 API key(s) disabled; 1 current statement(s) withdrawn from 1".encode() in (
        page.content
    )
    a.submit(a.statement("md5", "1" * 32))
    page = admin_client.post(
        "/admin/members/member/", {"action": "expel", "_selected_action": [a.member.pk]}
    )
    assert b"2 current statement(s) withdrawn from 2 member(s)" in page.content


def test_member_page_shows_keys_groups_activity_and_audit(admin_client: Any) -> None:
    """A member's admin page shows its signing and API keys, groups, recent statements and audit
    history."""
    a = make_party()
    make_group("solo", a)
    a.submit(a.statement("pdq", pdq()))
    page = admin_client.get(f"/admin/members/member/{a.member.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    for needle in (a.kid, "solo", "Recent statements", "Audit history", "member.created"):
        assert needle in content
    assert a.member.api_keys.get().prefix in content
