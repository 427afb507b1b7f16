"""The admin in a real browser (Playwright driving Debian's headless Chromium).

A forum admin signs in with password and TOTP code, approves an application, suspends
and reinstates a member and opens the transparency report. Screenshots of each step go
to ``test-artifacts/``. Outside CI these tests skip loudly without Chromium or
Playwright; under ``CI=true`` they fail instead.

Playwright's sync API runs an event loop in this thread, where Django refuses database
access; so each test prepares its data before the browser starts and checks the
database after it stops.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import jws
from members.applications import application_submit
from members.models import AuditEntry, Member, MembershipApplication
from members.services import api_key_lookup
from tests.factories import make_party, make_staff, pdq
from tests.support.services import unavailable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CORDIALE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"


def _unavailable(reason: str) -> None:
    unavailable(
        f"CI=true but the browser tests cannot run: {reason}",
        f"SKIPPED LOUDLY: browser tests need {reason}",
    )


@contextmanager
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package (pip install -e '.[dev]')")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        _unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)


def totp_secret(device: Any) -> str:
    return base64.b32encode(device.bin_key).decode()


def sign_in(page: Any, base: str, username: str, secret: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", pyotp.TOTP(secret).now())
    shot(page, "01-login")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert page.url.endswith("/admin/"), page.url


def run_action(page: Any, base: str, member_pk: int, action: str) -> None:
    page.goto(f"{base}/admin/members/member/")
    page.check(f"input[name=_selected_action][value='{member_pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def drive(browser: Any, base: str, secret: str, application_pk: int, member_pk: int) -> str:
    """The admin's clicks; returns the API key shown once on approval."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, "secretariat", secret)
    shot(page, "02-index")

    page.goto(f"{base}/admin/members/membershipapplication/{application_pk}/change/")
    page.click("#approve-application")
    page.wait_for_selector("#confirm-approve")
    shot(page, "03-approve-confirm")
    page.click("#confirm-approve")
    api_key = page.inner_text("#issued-api-key").strip()
    shot(page, "04-approved")

    run_action(page, base, member_pk, "suspend")
    page.wait_for_selector("text=What happens")
    assert "1 API key(s) disabled" in page.content()
    shot(page, "05-suspend-confirm")
    page.click("form input[type=submit]")
    page.wait_for_selector(".messagelist")
    shot(page, "06-suspended")

    run_action(page, base, member_pk, "reinstate")
    page.wait_for_selector(".messagelist")
    shot(page, "07-reinstated")

    page.goto(f"{base}/admin/")
    page.click("text=Transparency report")
    page.wait_for_selector("svg.chart")
    assert "Statements by month" in page.content()
    shot(page, "08-transparency")
    page.close()
    return api_key


@pytest.fixture
def browser_available() -> None:
    """Fail or skip before preparing any data, not halfway through the test."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package (pip install -e '.[dev]')")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        _unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")


def test_approve_suspend_reinstate_and_report(browser_available: None, live_server: Any) -> None:
    """In a real browser, a secretariat officer signs in with a second factor, approves an
    application, suspends and reinstates a member and opens the transparency report; each step lands
    in the database and the audit log, with screenshots."""
    _, device = make_staff("secretariat", password=PASSWORD)
    secret = totp_secret(device)
    application = application_submit(
        application=MembershipApplication(
            organisation_name="Newco Video",
            slug="newco",
            website="https://newco.example",
            contact_name="Ana Ops",
            contact_email="trust@newco.example",
            bans_terrorist_content=True,
            publishes_transparency_report=True,
            human_rights_commitment=True,
            public_key=jws.public_key_x(Ed25519PrivateKey.generate().public_key()),
        ),
        actor="test",
    )
    acme = make_party("acme")
    acme.submit(acme.statement("pdq", pdq()))
    base = live_server.url

    with chromium() as browser:
        api_key = drive(browser, base, secret, application.pk, acme.member.pk)

    newco = Member.objects.get(slug="newco")
    assert newco.status == Member.Status.ACTIVE
    key = api_key_lookup(api_key)
    assert key is not None and key.member == newco
    assert Member.objects.get(slug="acme").status == Member.Status.ACTIVE
    moves = list(
        AuditEntry.objects.filter(
            actor="admin:secretariat", action="member.status_changed", object_id="acme"
        ).values_list("after__status", flat=True)
    )
    assert moves == ["suspended", "active"]
    assert AuditEntry.objects.filter(actor="admin:secretariat", action="admin.login").exists()
    for name in ("01-login", "04-approved", "06-suspended", "08-transparency"):
        assert (ARTIFACTS / f"admin-{name}.png").stat().st_size > 0
