"""Declaring and ending an incident: its label, its audit entries, its statements."""

from __future__ import annotations

import pytest

from exchange.models import Incident, Label
from exchange.services.incidents import incident_declare, incident_end
from forum.errors import ConflictError
from members.models import AuditEntry
from tests.factories import make_party, pdq

pytestmark = pytest.mark.django_db


def test_declaring_creates_an_active_incident_label_and_an_audit_entry() -> None:
    """The label ``incident-<slug>`` is active, of kind incident; the declaration is audited."""
    incident = incident_declare(name="Halle attack", description="Livestream", actor="admin:a")
    assert incident.slug == "halle-attack"
    label = Label.objects.get(slug="incident-halle-attack")
    assert (label.kind, label.active, incident.label) == (Label.Kind.INCIDENT, True, label)
    entry = AuditEntry.objects.get(action="incident.declared")
    assert (entry.actor, entry.object_id) == ("admin:a", "halle-attack")
    assert entry.after["label"] == "incident-halle-attack"


def test_members_may_use_the_label_until_the_incident_ends() -> None:
    """New statements may carry the label while it lasts and are refused after; the end
    is audited and ending twice changes nothing."""
    party = make_party()
    incident = incident_declare(name="Attack", description="", actor="admin:a")
    body = party.submit(party.statement("pdq", pdq(), labels=[incident.label.slug]))
    assert body["accepted"] == 1, body

    incident_end(incident=incident, actor="admin:b")
    incident_end(incident=incident, actor="admin:b")
    incident.refresh_from_db()
    assert incident.ended_at is not None
    assert not Label.objects.get(slug="incident-attack").active
    assert AuditEntry.objects.filter(action="incident.ended", actor="admin:b").count() == 1

    body = party.submit(party.statement("pdq", pdq(), labels=[incident.label.slug]))
    assert body["accepted"] == 0, body


def test_an_incident_slug_is_declared_once() -> None:
    """Declaring an incident whose slug exists (names differing only in case) is a conflict, and
    only the first is kept."""
    incident_declare(name="Attack", description="", actor="admin:a")
    with pytest.raises(ConflictError):
        incident_declare(name="attack", description="", actor="admin:a")
    assert Incident.objects.count() == 1
