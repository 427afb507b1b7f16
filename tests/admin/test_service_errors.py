"""Admin add forms show a service's refusal as a form error on the same page: the rule
is the service's, and breaking it answers 200 with the reason, never a 500."""

from typing import Any

import pytest

from exchange.models import Incident, Label
from members.forum_key import forum_public_keys
from members.models import AuditEntry, SigningKey
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

INCIDENTS = "/admin/exchange/incident/add/"


def test_incident_whose_label_exists_is_a_form_error(root_client: Any) -> None:
    """Declaring an incident whose label ``incident-<slug>`` exists already (an admin
    made it by hand) shows the service's conflict and declares nothing."""
    Label.objects.create(slug="incident-flood", name="Flood", kind=Label.Kind.INCIDENT)
    entries = AuditEntry.objects.count()
    response = root_client.post(INCIDENTS, {"name": "Flood", "slug": "", "description": ""})
    assert response.status_code == 200
    assert b"exists already" in response.content
    assert not Incident.objects.exists()
    assert AuditEntry.objects.count() == entries


def test_incident_slug_made_of_nothing_is_a_form_error(root_client: Any) -> None:
    """A name with neither letters nor digits gives no slug: the service's reason shows."""
    response = root_client.post(INCIDENTS, {"name": "!!!", "slug": "", "description": ""})
    assert response.status_code == 200
    assert b"letters or digits" in response.content
    assert not Incident.objects.exists()


def test_incident_slug_is_the_services(root_client: Any) -> None:
    """The form checks the slug the service will use (trimmed of a trailing hyphen after
    truncation), so an incident that exists under it is refused on the form."""
    name = "a" * 54 + " b"  # slugified and cut to 55 characters: "aaa…a-"
    Incident.objects.create(
        name="x",
        slug="a" * 54,
        declared_by="setup",
        label=Label.objects.create(slug="incident-" + "a" * 54, name="x", kind="incident"),
    )
    response = root_client.post(INCIDENTS, {"name": name, "slug": "", "description": ""})
    assert response.status_code == 200
    assert b"exists already" in response.content
    assert Incident.objects.count() == 1


def test_signing_key_that_is_the_forums_own_is_a_form_error(root_client: Any) -> None:
    """The forum's own key cannot be registered for a member (it would shadow the key
    that signs receipts): the form says so and registers nothing."""
    forum_x = next(iter(forum_public_keys().values()))
    response = root_client.post(
        "/admin/members/signingkey/add/", {"member": MemberFactory().pk, "public_key": forum_x}
    )
    assert response.status_code == 200
    assert b"forum&#x27;s own key" in response.content or b"forum's own key" in response.content
    assert not SigningKey.objects.exists()
