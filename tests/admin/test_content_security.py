"""The API docs page and the admin load nothing from other hosts and carry a
Content-Security-Policy that allows scripts from the forum itself only."""

import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db

DOCS = "/api/v1/docs/"


def directives(response: Any) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_docs_page_is_served_from_the_forum_with_a_policy() -> None:
    """Swagger UI's scripts, styles and its start-up script come from the forum's own
    origin (packaged with the server, no CDN), and the page forbids any other script."""
    client = Client()
    page = client.get(DOCS)
    assert page.status_code == 200
    html = page.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert urls, html
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    # Every script is a file (no inline code the policy would have to allow).
    assert len(re.findall(r"<script\b", html)) == len(re.findall(r"<script\b[^>]*\bsrc=", html))
    for url in urls:
        if url.startswith(settings.STATIC_URL):
            # Collected into the image by collectstatic, served by WhiteNoise.
            assert finders.find(url.removeprefix(settings.STATIC_URL)), url
        else:
            assert client.get(url).status_code == 200, url
    policy = directives(page)
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_admin_pages_carry_the_policy(root_client: Any) -> None:
    """The admin's sign-in page and its pages allow scripts from the forum only; the
    transparency report's print button works without inline script."""
    assert directives(Client().get("/admin/login/"))["script-src"] == ["'self'"]
    report = root_client.get("/admin/reports/transparency/")
    assert report.status_code == 200
    assert directives(report)["script-src"] == ["'self'"]
    assert b"onclick=" not in report.content
