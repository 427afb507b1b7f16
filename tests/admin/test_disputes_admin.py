"""Disputes in the admin (issue #18, item 2): the list and the record of a dispute for
whoever may view disputes; the decision form and its view only for staff holding
``exchange.decide_dispute``, through the service, with the two-person rule for
overturns and every step in the audit chain."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from exchange.models import Dispute, DisputeDecision, Signal
from members.models import AuditEntry
from tests.exchange.test_disputes import open_dispute
from tests.factories import Party, make_party, make_staff, pdq, verified_admin_client

pytestmark = pytest.mark.django_db


def make_decider(username: str) -> tuple[Any, Any]:
    """A staff user (not a superuser) who may view and decide disputes, nothing else."""
    user, device = make_staff(username)
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_dispute", "decide_dispute"], content_type__app_label="exchange"
        )
    )
    return user, device


def disputed(opener: Party, author: Party) -> tuple[str, Dispute]:
    value = pdq()
    author.submit(author.statement("pdq", value))
    response = open_dispute(opener, value, reason="A news photo of the attack site.")
    assert response.status_code == 201, response.content
    author.client.post(
        f"/api/v1/disputes/{response.json()['id']}/responses",
        {"text": "It is the attacker's own video."},
        format="json",
    )
    return value, Dispute.objects.get(pk=response.json()["id"])


def decide(client: Any, dispute: Dispute, **data: str) -> Any:
    return client.post(f"/admin/exchange/dispute/{dispute.pk}/decide/", data)


def test_the_list_and_the_record_show_the_dispute(viewer_client: Any) -> None:
    """The list names status, grounds, signal and opener; the change page shows the
    signal, the disputed statement's member, the response and no decision form for a
    view-only user."""
    acme, globex = make_party("acme"), make_party("globex")
    value, dispute = disputed(globex, acme)
    listing = viewer_client.get("/admin/exchange/dispute/").content.decode()
    assert "not_tvec" in listing and "globex" in listing and "open" in listing
    page = viewer_client.get(f"/admin/exchange/dispute/{dispute.pk}/change/").content.decode()
    assert value in page and "acme" in page
    assert "It is the attacker&#x27;s own video." in page
    assert "A news photo of the attack site." in page
    assert 'id="dispute-decide"' not in page


def test_a_view_only_user_cannot_decide(viewer_client: Any) -> None:
    """A crafted POST of every decision by a view-only user answers 403, decides
    nothing and writes no audit entry."""
    acme, globex = make_party("acme"), make_party("globex")
    _, dispute = disputed(globex, acme)
    entries = AuditEntry.objects.count()
    for decision in ("uphold", "overturn", "relabel"):
        response = decide(viewer_client, dispute, decision=decision, rationale="x", labels="")
        assert response.status_code == 403
    assert AuditEntry.objects.count() == entries
    assert not DisputeDecision.objects.exists()
    assert Dispute.objects.get(pk=dispute.pk).status == "open"


def test_a_superuser_without_second_factor_is_sent_to_sign_in() -> None:
    """The decide view is an admin view: signed in without the verified second factor
    it decides nothing."""
    from django.test import Client

    acme, globex = make_party("acme"), make_party("globex")
    _, dispute = disputed(globex, acme)
    user, _ = make_staff("half")
    client = Client()
    client.force_login(user)
    response = decide(client, dispute, decision="uphold", rationale="x")
    assert response.status_code in (302, 403)
    assert not DisputeDecision.objects.exists()


def test_a_rationale_is_required() -> None:
    """A blank rationale is refused as a message, nothing is decided or audited."""
    acme, globex = make_party("acme"), make_party("globex")
    _, dispute = disputed(globex, acme)
    alice = verified_admin_client(*make_decider("alice"))
    entries = AuditEntry.objects.count()
    response = decide(alice, dispute, decision="uphold", rationale="   ")
    assert response.status_code == 302
    page = alice.get(response["Location"]).content.decode()
    assert "rationale" in page and "required" in page
    assert not DisputeDecision.objects.exists() and AuditEntry.objects.count() == entries


def test_overturn_needs_a_second_staff_user(settings: Any) -> None:
    """Alice's overturn is a pending proposal shown on the page; her own confirmation is
    refused; Bob's confirms it, the signal is overturned, and each step is audited
    under its staff user's name."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 2
    acme, globex = make_party("acme"), make_party("globex")
    value, dispute = disputed(globex, acme)
    alice = verified_admin_client(*make_decider("alice"))
    bob = verified_admin_client(*make_decider("bob"))
    url = f"/admin/exchange/dispute/{dispute.pk}/change/"
    assert 'id="dispute-decide"' in alice.get(url).content.decode()
    assert 'alt="True"' not in alice.get("/admin/exchange/dispute/").content.decode()

    decide(alice, dispute, decision="overturn", rationale="A news photo.")
    page = alice.get(url).content.decode()
    assert "proposal pending confirmation" in page and "Another staff user must" in page
    assert 'alt="True"' in alice.get("/admin/exchange/dispute/").content.decode()
    assert Signal.objects.get(value=value).overturned_at is None

    decide(alice, dispute, decision="overturn", rationale="Again.")
    assert "approved this overturn already" in alice.get(url).content.decode()
    assert Signal.objects.get(value=value).overturned_at is None

    decide(bob, dispute, decision="overturn", rationale="Agreed.")
    final = DisputeDecision.objects.get(dispute=dispute)
    assert final.jws and final.approvals == ["admin:alice", "admin:bob"]
    assert Signal.objects.get(value=value).overturned_at is not None
    page = bob.get(url).content.decode()
    assert "final, signed" in page and 'id="dispute-decide"' not in page
    steps = list(
        AuditEntry.objects.filter(object_type="dispute", object_id=str(dispute.pk))
        .order_by("id")
        .values_list("actor", "action")
    )
    assert steps[-2:] == [
        ("admin:alice", "dispute.overturn_proposed"),
        ("admin:bob", "dispute.decided"),
    ]


def test_relabel_through_the_form(root_client: Any) -> None:
    """A relabel with comma-separated labels is final at once and carries them; an
    unknown label is the service's refusal shown as a message."""
    from exchange.models import Label

    acme, globex = make_party("acme"), make_party("globex")
    _, dispute = disputed(globex, acme)
    decide(root_client, dispute, decision="relabel", rationale="r", labels="no-such-label")
    assert not DisputeDecision.objects.exists()
    label = Label.objects.filter(active=True).first()
    assert label is not None
    decide(root_client, dispute, decision="relabel", rationale="r", labels=f" {label.slug} ,")
    final = DisputeDecision.objects.get(dispute=dispute)
    assert final.decision == "relabel" and final.labels == [label.slug] and final.jws


def test_the_member_page_shows_its_dispute_record(viewer_client: Any, settings: Any) -> None:
    """acme's page counts the disputes it opened and those against its statements, by
    outcome, and links each; globex's page shows its own record, not acme's."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 1
    from exchange.disputes.services import dispute_decide
    from members.selectors_admin import member_dispute_record

    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    _, against_1 = disputed(globex, acme)
    _, against_2 = disputed(initech, acme)
    _, opened = disputed(acme, initech)
    dispute_decide(dispute=against_1, decision="overturn", rationale="r", staff_user=None)
    dispute_decide(dispute=opened, decision="uphold", rationale="r", staff_user=None)

    record = member_dispute_record(member=acme.member)
    assert (record["against"]["total"], record["against"]["open"]) == (2, 1)
    assert record["against"]["outcomes"] == {"uphold": 0, "overturn": 1, "relabel": 0}
    assert record["against"]["overturned_share"] == 1.0
    assert (record["opened"]["total"], record["opened"]["outcomes"]["uphold"]) == (1, 1)
    assert member_dispute_record(member=globex.member)["against"]["total"] == 0

    page = viewer_client.get(f"/admin/members/member/{acme.member.pk}/change/").content.decode()
    assert "Dispute record" in page
    for dispute in (against_1, against_2, opened):
        assert f'/admin/exchange/dispute/{dispute.pk}/change/"' in page
    assert "<th>against its statements</th><td>2</td><td>1</td>" in page
