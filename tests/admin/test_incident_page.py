"""The incident admin: declared on the add form, then shown read-only."""

from typing import Any

import pytest

from exchange.services.incidents import incident_declare

pytestmark = pytest.mark.django_db


def test_declared_incident_opens_read_only(root_client: Any) -> None:
    """A declared incident's page shows it read-only (the declare form is for adding
    only: on this page it used to fail on the slug field it no longer has)."""
    incident = incident_declare(name="Flood", description="d", actor="setup")
    page = root_client.get(f"/admin/exchange/incident/{incident.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "field-declared_by" in html
    assert 'name="_save"' not in html
