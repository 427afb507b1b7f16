"""The forum's decisions on disputes (issue #18, item 2): uphold, overturn, relabel.

A decision is a compact JWS by the forum's key, carried in the snapshot as
``decisions`` and verifiable offline against the forum key in /api/v1/jwks with the
client library. An overturned signal is gone for every member on every read path
(feed tombstone, lookup 404, match, webhooks read the same feed) while the members'
statements stay stored and verifiable. Overturns follow the two-person rule; deciding
needs the ``exchange.decide_dispute`` permission; every step is in the audit chain.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from exchange.client import jws
from exchange.client.verify import DecisionInvalid, index_jwks, verify_decision
from exchange.disputes.services import dispute_decide
from exchange.models import Dispute, DisputeDecision, Signal, Statement
from forum.errors import ConflictError, DomainError
from members.audit import audit_verify
from members.models import AuditEntry
from tests.exchange.test_disputes import follow, open_dispute, without_instance
from tests.factories import Party, make_party, pdq
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db

NOW = int(time.time())


def staff(username: str, *, decide: bool = True) -> Any:
    """A staff user holding ``exchange.decide_dispute`` (or only the view permission)."""
    user = get_user_model().objects.create_user(username, f"{username}@example.org", "pw")
    user.is_staff = True
    user.save()
    codename = "decide_dispute" if decide else "view_dispute"
    user.user_permissions.add(Permission.objects.get(codename=codename))
    return get_user_model().objects.get(pk=user.pk)  # a fresh permission cache


def disputed(opener: Party, author: Party, value: str | None = None) -> tuple[str, Dispute]:
    value = value or pdq()
    author.submit(author.statement("pdq", value, iat=NOW - 10))
    response = open_dispute(opener, value)
    assert response.status_code == 201, response.content
    return value, Dispute.objects.get(pk=response.json()["id"])


def offline_claims(reader: Party, token: str) -> dict[str, Any]:
    """The decision's claims, checked by the client library against the published JWKS."""
    return verify_decision(token, index_jwks(reader.get("/api/v1/jwks").json()))


def test_an_upheld_signal_carries_the_signed_decision(settings: Any) -> None:
    """Uphold: the signal stays, its snapshot (lookup and feed) carries the decision,
    whose JWS verifies offline against the forum key with the documented claims; the
    dispute shows it and takes no more responses."""
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    value, dispute = disputed(globex, acme)
    _, cursor = follow(initech)
    decided = dispute_decide(
        dispute=dispute, decision="uphold", rationale="Propaganda.", staff_user=staff("alice")
    )
    snapshot = initech.get(f"/api/v1/signals/pdq/{value}").json()
    assert snapshot["opinions"]["disputed"] is False
    [entry] = snapshot["decisions"]
    assert entry == {"decision": "uphold", "labels": [], "jws": decided.jws}
    claims = offline_claims(initech, entry["jws"])
    assert claims == {
        "iss": "forum",
        "iat": claims["iat"],
        "jti": decided.jti,
        "dispute": dispute.pk,
        "signal_type": "pdq",
        "value": value,
        "grounds": "not_tvec",
        "decision": "uphold",
        "labels": [],
        "rationale": "Propaganda.",
    }
    assert abs(claims["iat"] - time.time()) < 60
    latest, _ = follow(initech, cursor)
    assert latest[value]["decisions"] == [entry]

    view = acme.get(f"/api/v1/disputes/{dispute.pk}").json()
    assert view["status"] == "decided"
    assert view["decision"]["jws"] == decided.jws
    assert view["decision"]["rationale"] == "Propaganda."
    url = f"/api/v1/disputes/{dispute.pk}/responses"
    assert_problem(acme.client.post(url, {"text": "late"}, format="json"), 409, "dispute_decided")


def test_a_tampered_or_foreign_decision_does_not_verify() -> None:
    """The offline check fails on a changed claim, on a receipt passed off as a
    decision, and on a decision signed by a member's key."""
    acme, globex = make_party("acme"), make_party("globex")
    _, dispute = disputed(globex, acme)
    token = dispute_decide(dispute=dispute, decision="uphold", rationale="ok", staff_user=None).jws
    keys = index_jwks(acme.get("/api/v1/jwks").json())
    header, payload, signature = token.split(".")
    claims = json.loads(jws.b64url_decode(payload))
    claims["decision"] = "overturn"
    forged = ".".join([header, jws.b64url_encode(json.dumps(claims).encode()), signature])
    with pytest.raises(DecisionInvalid) as caught:
        verify_decision(forged, keys)
    assert caught.value.code == "bad_signature"
    receipt = Statement.objects.get(member=acme.member).receipt
    with pytest.raises(DecisionInvalid) as caught:
        verify_decision(receipt, keys)
    assert caught.value.code == "bad_typ"
    member_signed = jws.sign_compact(claims, acme.private_key, acme.kid, typ="cordiale-decision")
    with pytest.raises(DecisionInvalid) as caught:
        verify_decision(member_signed, keys)
    assert caught.value.code == "unknown_key"


def test_relabel_puts_the_forums_labels_in_the_snapshot_and_keeps_the_statements() -> None:
    """Relabel: the decision's labels appear in the snapshot's ``decisions`` (signed);
    the member's statement, and its labels, are unchanged."""
    acme, globex = make_party("acme"), make_party("globex")
    value, dispute = disputed(globex, acme)
    before = acme.get(f"/api/v1/signals/pdq/{value}").json()["statements"]
    with pytest.raises(DomainError) as caught:
        dispute_decide(dispute=dispute, decision="relabel", rationale="x", staff_user=None)
    assert caught.value.code == "invalid_labels"
    with pytest.raises(DomainError) as caught:
        dispute_decide(
            dispute=dispute,
            decision="uphold",
            rationale="x",
            labels=["incitement"],
            staff_user=None,
        )
    assert caught.value.code == "invalid_labels"
    decided = dispute_decide(
        dispute=dispute,
        decision="relabel",
        rationale="Incitement, not recruitment.",
        labels=["incitement"],
        staff_user=staff("alice"),
    )
    snapshot = globex.get(f"/api/v1/signals/pdq/{value}").json()
    assert snapshot["statements"] == before
    assert snapshot["decisions"] == [
        {"decision": "relabel", "labels": ["incitement"], "jws": decided.jws}
    ]
    assert offline_claims(globex, decided.jws)["labels"] == ["incitement"]


def test_overturn_needs_two_different_staff_users_then_leaves_every_read_path(
    settings: Any,
) -> None:
    """The first overturn is a proposal (nothing signed, the signal stays); the same
    user again is refused; a second user confirms it. Then, for every member: the feed
    gives a tombstone, lookup the 404 of an unknown value, match nothing; a new
    assertion does not bring it back. The members' statements stay stored and verify;
    the parties still read the dispute and its signed decision."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 2
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    value, dispute = disputed(globex, acme)
    _, cursor = follow(initech)
    alice, bob = staff("alice"), staff("bob")

    proposal = dispute_decide(
        dispute=dispute, decision="overturn", rationale="A news photo.", staff_user=alice
    )
    assert proposal.jws == "" and proposal.approvals == ["admin:alice"]
    assert initech.get(f"/api/v1/signals/pdq/{value}").status_code == 200
    assert acme.get(f"/api/v1/disputes/{dispute.pk}").json()["status"] == "open"
    with pytest.raises(ConflictError) as caught:
        dispute_decide(dispute=dispute, decision="overturn", rationale="again", staff_user=alice)
    assert caught.value.code == "already_approved"

    final = dispute_decide(
        dispute=dispute, decision="overturn", rationale="Agreed.", staff_user=bob
    )
    assert final.pk == proposal.pk and final.approvals == ["admin:alice", "admin:bob"]
    assert offline_claims(acme, final.jws)["decision"] == "overturn"
    assert Signal.objects.get(value=value).overturned_at is not None

    latest, _ = follow(initech, cursor)
    assert latest[value]["deleted"] is True and latest[value]["statements"] == []
    unknown = initech.get(f"/api/v1/signals/pdq/{pdq()}")
    for party in (acme, globex, initech):
        lookup = party.get(f"/api/v1/signals/pdq/{value}")
        assert without_instance(lookup) == without_instance(unknown)
        matched = party.client.post(
            "/api/v1/match", {"queries": [{"signal_type": "pdq", "value": value}]}, format="json"
        ).json()
        assert matched["results"][0]["matches"] == []
        assert value not in str(follow(party)[0].get(value, {}).get("statements"))
    acme.submit(acme.statement("pdq", value, iat=NOW - 2))
    assert initech.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    assert_problem(open_dispute(initech, value), 404, "not_found")

    jwks = acme.get("/api/v1/members/acme/jwks").json()["keys"]
    for statement in Statement.objects.filter(member=acme.member):
        parsed = jws.parse_compact(statement.jws)
        assert jws.verify(parsed, jws.public_key_from_x(jwks[0]["x"]))
    view = acme.get(f"/api/v1/disputes/{dispute.pk}").json()
    assert view["decision"]["decision"] == "overturn"
    assert view["decision"]["jws"] == final.jws


def test_with_one_approval_an_overturn_is_final_at_once(settings: Any) -> None:
    """``CORDIALE_DISPUTE_OVERTURN_APPROVALS=1`` makes the first overturn final."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 1
    acme, globex = make_party("acme"), make_party("globex")
    value, dispute = disputed(globex, acme)
    final = dispute_decide(dispute=dispute, decision="overturn", rationale="x", staff_user=None)
    assert final.jws
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 404


def test_uphold_drops_a_pending_overturn_and_a_decided_dispute_is_final(settings: Any) -> None:
    """An uphold while an overturn awaits confirmation is final and drops the proposal;
    nothing decides the dispute again."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 2
    acme, globex = make_party("acme"), make_party("globex")
    value, dispute = disputed(globex, acme)
    alice, bob = staff("alice"), staff("bob")
    dispute_decide(dispute=dispute, decision="overturn", rationale="x", staff_user=alice)
    dispute_decide(dispute=dispute, decision="uphold", rationale="No.", staff_user=bob)
    assert DisputeDecision.objects.get(decision="overturn").superseded is True
    with pytest.raises(ConflictError) as caught:
        dispute_decide(dispute=dispute, decision="overturn", rationale="x", staff_user=alice)
    assert caught.value.code == "dispute_decided"
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 200


def test_deciding_needs_the_permission() -> None:
    """A staff user with only the view permission, or an inactive one, may not decide;
    nothing changes."""
    acme, globex = make_party("acme"), make_party("globex")
    _, dispute = disputed(globex, acme)
    viewer = staff("viewer", decide=False)
    with pytest.raises(DomainError) as caught:
        dispute_decide(dispute=dispute, decision="uphold", rationale="x", staff_user=viewer)
    assert caught.value.code == "decision_not_permitted" and caught.value.status == 403
    holder = staff("holder")
    holder.is_active = False
    with pytest.raises(DomainError):
        dispute_decide(dispute=dispute, decision="uphold", rationale="x", staff_user=holder)
    assert not DisputeDecision.objects.exists()
    assert Dispute.objects.get(pk=dispute.pk).status == "open"


def run_command(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("decide_dispute", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_the_decide_dispute_command(settings: Any) -> None:
    """``manage.py decide_dispute`` prints the JSON line with the decision's JWS; with
    --staff it checks that user's permission and counts it for the two-person rule."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 2
    acme, globex = make_party("acme"), make_party("globex")
    _, relabelled = disputed(globex, acme)
    out = run_command(
        str(relabelled.pk), "relabel", "--rationale", "r", "--labels", "incitement,financing"
    )
    assert out["dispute"] == relabelled.pk and out["decision"] == "relabel"
    assert offline_claims(acme, out["jws"])["labels"] == ["financing", "incitement"]

    value, overturned = disputed(globex, acme)
    staff("alice")
    staff("viewer", decide=False)
    with pytest.raises(CommandError, match="decision_not_permitted"):
        run_command(str(overturned.pk), "overturn", "--rationale", "r", "--staff", "viewer")
    proposed = run_command(str(overturned.pk), "overturn", "--rationale", "r", "--staff", "alice")
    assert proposed == {
        "dispute": overturned.pk,
        "decision": "overturn_proposed",
        "approvals": 1,
        "jws": None,
    }
    out = run_command(str(overturned.pk), "overturn", "--rationale", "r")
    assert out["decision"] == "overturn" and offline_claims(acme, out["jws"])["value"] == value
    with pytest.raises(CommandError, match="No dispute 999999"):
        run_command("999999", "uphold", "--rationale", "r")


def test_every_step_is_audited_and_the_chain_verifies(settings: Any) -> None:
    """Opening, responding, proposing and deciding each write an audit entry, and
    ``verify_audit``'s check still passes."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 2
    acme, globex = make_party("acme"), make_party("globex")
    _, dispute = disputed(globex, acme)
    acme.client.post(f"/api/v1/disputes/{dispute.pk}/responses", {"text": "no"}, format="json")
    dispute_decide(dispute=dispute, decision="overturn", rationale="x", staff_user=staff("a"))
    dispute_decide(dispute=dispute, decision="overturn", rationale="y", staff_user=staff("b"))
    actions = list(
        AuditEntry.objects.filter(object_type="dispute", object_id=str(dispute.pk))
        .order_by("id")
        .values_list("action", "actor")
    )
    assert [a for a, _ in actions] == [
        "dispute.opened",
        "dispute.responded",
        "dispute.overturn_proposed",
        "dispute.decided",
    ]
    assert actions[0][1].startswith("member:globex:")
    assert actions[3][1] == "admin:b"
    assert audit_verify().ok
