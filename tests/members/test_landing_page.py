"""The landing page at ``/``: the demo's first printed URL and the admin's "View site"."""

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_root_is_a_landing_page_with_the_ways_in() -> None:
    """``GET /`` is a small HTML page (not a 404 problem) saying what the forum is, linking
    the API docs, the schema and the admin, and giving a member's next steps."""
    response = Client().get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    links = set(re.findall(r'href="([^"]+)"', page))
    assert {"/api/v1/docs/", "/api/v1/schema/", "/admin/"} <= links
    assert "TVEC" in page
    for step in ("cordiale keygen", "CORDIALE_API_KEY", "cordiale sync", "cordiale submit"):
        assert step in page
    assert "docs/client.md" in page
    # Served under the same content security policy as everything else: no inline script.
    assert "<script" not in page
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_admin_view_site_link_leads_to_the_landing_page() -> None:
    """The admin's "View site" link points at ``/``, which now answers."""
    from django.contrib import admin

    assert admin.site.site_url == "/"
    assert Client().get(admin.site.site_url).status_code == 200


def test_landing_page_is_only_the_root() -> None:
    """Other unknown paths stay 404 problems; the page takes GET and HEAD only."""
    assert Client().get("/nothing-here").status_code == 404
    assert Client().head("/").status_code == 200
    assert Client().post("/").status_code == 405
