"""Webhook management needs ``read`` wherever it reveals the feed (issue #13, item 6).

Creating an endpoint (its URL and start position), changing its URL and listing its
deliveries also need scope ``read``: a key with ``manage`` alone gets 403
``missing_scope`` and changes nothing. Listing, renaming, filtering, pinging and
deleting endpoints stay ``manage`` only.
"""

from __future__ import annotations

from typing import Any

import pytest

from exchange.models import WebhookEndpoint
from tests.factories import make_party
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db

URL = "https://203.0.113.9/hook"


@pytest.fixture(autouse=True)
def in_process(settings: Any, tasks_in_process: None) -> None:
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True


def test_create_needs_read_too() -> None:
    """POST /webhooks with a manage-only key: 403 missing_scope naming read; nothing
    created. With manage and read: 201."""
    manager = make_party("manager", scopes=["manage"])
    for start in ("now", "beginning"):
        response = manager.client.post(
            "/api/v1/webhooks", {"url": URL, "start": start}, format="json"
        )
        body = assert_problem(response, 403, "missing_scope")
        assert "read" in body["detail"]
    assert not WebhookEndpoint.objects.exists()
    both = make_party("both", scopes=["manage", "read"])
    response = both.client.post("/api/v1/webhooks", {"url": URL}, format="json")
    assert response.status_code == 201, response.content


def test_changing_the_url_or_listing_deliveries_needs_read() -> None:
    """A manage-only key of the same member cannot change an endpoint's URL or list
    its deliveries; it can still read, rename and delete the endpoint."""
    full = make_party("acme")
    created = full.client.post("/api/v1/webhooks", {"url": URL}, format="json").json()
    path = f"/api/v1/webhooks/{created['id']}"
    from members.services import api_key_issue

    _, secret = api_key_issue(member=full.member, scopes=["manage"], actor="test")
    manager = make_party("other")  # only for a client object
    manager.client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = manager.client.patch(path, {"url": "https://203.0.113.10/x"}, format="json")
    assert_problem(response, 403, "missing_scope")
    assert WebhookEndpoint.objects.get(pk=created["id"]).url == URL
    assert_problem(manager.client.get(f"{path}/deliveries"), 403, "missing_scope")

    assert manager.client.get(path).status_code == 200
    assert manager.client.get("/api/v1/webhooks").status_code == 200
    renamed = manager.client.patch(path, {"description": "renamed"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert full.client.get(f"{path}/deliveries").status_code == 200
    assert (
        full.client.patch(path, {"url": "https://203.0.113.10/x"}, format="json").status_code == 200
    )
    assert manager.client.delete(path).status_code == 204
