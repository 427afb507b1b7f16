"""Dispute adjudication in a real browser (Playwright driving Debian's headless
Chromium), as ``tests/admin/test_browser.py`` drives the membership pages.

Staff user Alice proposes an overturn; her own confirmation is refused; Bob confirms
it; for members the signal is then a tombstone in the feed and gone from lookup. A
view-only staff user sees the dispute but no decision form, and a decision it posts
from its page is refused with 403. Data is prepared before the browser starts and
checked after it stops (Playwright's loop refuses Django's database access).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from exchange.models import Dispute, DisputeDecision, Signal
from members.models import AuditEntry
from tests.admin.conftest import make_viewer
from tests.admin.test_browser import (
    CHROMIUM,
    PASSWORD,
    _unavailable,
    chromium,
    shot,
    sign_in,
    totp_secret,
)
from tests.admin.test_disputes_admin import disputed, make_decider
from tests.exchange.test_disputes import follow
from tests.factories import make_party

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_ready() -> None:
    """Fail (CI) or skip before preparing any data, not halfway through the test."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package (pip install -e '.[dev]')")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        _unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")


def staff_with_password(make: Any, username: str) -> str:
    user, device = make(username)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return totp_secret(device)


def decide(page: Any, base: str, dispute_pk: int, decision: str, rationale: str) -> str:
    """Fill and send the decision form; returns the messages shown after it."""
    page.goto(f"{base}/admin/exchange/dispute/{dispute_pk}/change/")
    page.select_option("#dispute-decide select[name=decision]", decision)
    page.fill("#dispute-decide textarea[name=rationale]", rationale)
    page.click("#decide-submit")
    page.wait_for_selector(".messagelist")
    return str(page.inner_text(".messagelist"))


def drive(
    browser: Any, base: str, dispute_pk: int, other_pk: int, secrets: dict[str, str]
) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    url = f"{base}/admin/exchange/dispute/{dispute_pk}/change/"

    alice = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    sign_in(alice, base, "alice", secrets["alice"])
    alice.goto(f"{base}/admin/exchange/dispute/")
    seen["list"] = alice.inner_text("#result_list")
    shot(alice, "dispute-01-list")
    seen["proposed"] = decide(alice, base, dispute_pk, "overturn", "A news photo of the site.")
    seen["alice_page"] = alice.content()
    shot(alice, "dispute-02-proposed")
    seen["own_confirm"] = decide(alice, base, dispute_pk, "overturn", "Confirming my own.")
    shot(alice, "dispute-03-own-confirm-refused")
    alice.context.close()

    bob = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    sign_in(bob, base, "bob", secrets["bob"])
    bob.goto(url)
    seen["bob_sees_proposal"] = bob.inner_text("#dispute-decide")
    seen["confirmed"] = decide(bob, base, dispute_pk, "overturn", "Agreed: reporting.")
    seen["bob_page"] = bob.content()
    shot(bob, "dispute-04-overturned")
    bob.context.close()

    viewer = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    sign_in(viewer, base, "viewer", secrets["viewer"])
    viewer.goto(f"{base}/admin/exchange/dispute/{other_pk}/change/")
    seen["viewer_page"] = viewer.content()
    shot(viewer, "dispute-05-viewer")
    # A crafted POST from the viewer's own page, with its valid CSRF token.
    seen["viewer_post"] = viewer.evaluate(
        """async (url) => {
            const token = document.querySelector('[name=csrfmiddlewaretoken]').value;
            const body = new URLSearchParams({csrfmiddlewaretoken: token,
                decision: 'uphold', rationale: 'I am only a viewer.'});
            const r = await fetch(url, {method: 'POST', body, credentials: 'same-origin'});
            return r.status;
        }""",
        f"{base}/admin/exchange/dispute/{other_pk}/decide/",
    )
    viewer.context.close()
    return seen


def test_two_person_overturn_and_view_only_staff(
    browser_ready: None, live_server: Any, settings: Any
) -> None:
    """In a real browser: Alice's overturn is a pending proposal and her own
    confirmation is refused; Bob's confirms it and the forum signs it; members then get
    a tombstone and a 404; a view-only staff user sees a dispute without a decision
    form and its crafted POST is refused with 403, deciding nothing."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 2
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    value, dispute = disputed(globex, acme)
    other_value, other = disputed(initech, acme)
    _, cursor = follow(initech)
    secrets = {
        "alice": staff_with_password(make_decider, "alice"),
        "bob": staff_with_password(make_decider, "bob"),
        "viewer": staff_with_password(make_viewer, "viewer"),
    }

    with chromium() as browser:
        seen = drive(browser, live_server.url, dispute.pk, other.pk, secrets)

    assert "globex" in seen["list"] and "Not Tvec" in seen["list"]
    assert "proposed" in seen["proposed"]
    assert "proposal pending confirmation" in seen["alice_page"]
    assert "approved this overturn already" in seen["own_confirm"]
    assert "admin:alice" in seen["bob_sees_proposal"]
    assert "overturn, signed" in seen["confirmed"]
    assert "final, signed" in seen["bob_page"] and 'id="dispute-decide"' not in seen["bob_page"]

    final = DisputeDecision.objects.get(dispute=dispute)
    assert final.jws and final.approvals == ["admin:alice", "admin:bob"]
    assert Signal.objects.get(value=value).overturned_at is not None
    latest, _ = follow(initech, cursor)
    assert latest[value]["deleted"] is True and latest[value]["statements"] == []
    for party in (acme, globex, initech):
        assert party.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    steps = list(
        AuditEntry.objects.filter(object_type="dispute", object_id=str(dispute.pk))
        .order_by("id")
        .values_list("actor", "action")
    )
    assert steps[-2:] == [
        ("admin:alice", "dispute.overturn_proposed"),
        ("admin:bob", "dispute.decided"),
    ]

    assert other_value in seen["viewer_page"]
    assert 'id="dispute-decide"' not in seen["viewer_page"]
    assert seen["viewer_post"] == 403
    assert Dispute.objects.get(pk=other.pk).status == "open"
    assert not DisputeDecision.objects.filter(dispute=other).exists()
    assert not AuditEntry.objects.filter(actor="admin:viewer", object_type="dispute").exists()
