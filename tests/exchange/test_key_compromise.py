"""A stolen signing key: revoking it as compromised since T withdraws what the thief sent.

The thief holds the member's key and API key, and signs with an ``iat`` from before the
theft, hoping to slip under the compromise time. What counts is when the forum
*received* a statement, which the thief cannot choose: everything received at or after
T is withdrawn, whatever its ``iat``; what was received before T stays. T is kept in
whole seconds, so that the receipts' integer ``received_at`` gives offline verifiers
the same answer. Driven through the HTTP API, the ``revoke_signing_key`` command and
the admin's revoke action, which both go through one service.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command

from members.models import SigningKey
from tests.factories import Party, make_party, make_staff, pdq, verified_admin_client

pytestmark = pytest.mark.django_db


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def revoke_by_command(kid: str, since: datetime) -> None:
    text = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    call_command("revoke_signing_key", kid, "--compromised-since", text, stdout=io.StringIO())


def revoke_in_admin(kid: str, since: datetime) -> None:
    client = verified_admin_client(*make_staff("root"))
    response = client.post(
        "/admin/members/signingkey/",
        {
            "action": "revoke",
            "_selected_action": [SigningKey.objects.get(kid=kid).pk],
            "confirm": "yes",
            "compromised_since": since.strftime("%Y-%m-%d %H:%M:%S.%f"),
        },
    )
    assert response.status_code == 302, response.content


@pytest.mark.parametrize("revoke", [revoke_by_command, revoke_in_admin])
def test_backdated_statement_of_a_thief_is_withdrawn(
    revoke: Callable[[str, datetime], None],
) -> None:
    """The thief's backdated statement, received after T, becomes a tombstone in other
    members' feeds and a 404 on lookup; the member's own statement from before T stays;
    the JWKS says the key is revoked from T (whole seconds)."""
    acme, globex = make_party("acme"), make_party("globex")
    kept, stolen = pdq(), pdq()
    assert acme.submit(acme.statement("pdq", kept))["accepted"] == 1

    compromise = int(time.time()) + 1
    while time.time() < compromise:
        time.sleep(0.02)
    thief = Party(acme.member, acme.api_key, acme.private_key, acme.kid, acme.client)
    backdated = thief.statement("pdq", stolen, iat=compromise - 3600)
    assert thief.submit(backdated)["accepted"] == 1

    first = globex.get("/api/v1/changes").json()
    seen = {c["value"]: c for c in first["changes"]}
    assert set(seen) == {kept, stolen}
    receipts = {v: _claims(c["statements"][0]["receipt"]) for v, c in seen.items()}

    # A compromise time with a fraction of a second is kept in whole seconds.
    revoke(acme.kid, datetime.fromtimestamp(compromise + 0.75, UTC))

    page = globex.get("/api/v1/changes", cursor=first["cursor"]).json()
    assert [(c["value"], c["deleted"]) for c in page["changes"]] == [(stolen, True)]
    assert globex.get(f"/api/v1/signals/pdq/{stolen}").status_code == 404
    assert acme.get(f"/api/v1/signals/pdq/{stolen}").status_code == 404
    still = globex.get(f"/api/v1/signals/pdq/{kept}")
    assert still.status_code == 200
    assert [s["member"] for s in still.json()["statements"]] == ["acme"]

    jwk = next(k for k in globex.get("/api/v1/jwks").json()["keys"] if k["kid"] == acme.kid)
    revoked_at = datetime.fromtimestamp(compromise, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (jwk["status"], jwk["revoked_at"]) == ("revoked", revoked_at)
    # Offline, the receipts give the same verdict: received_at >= T is withdrawn.
    assert receipts[kept]["received_at"] < compromise <= receipts[stolen]["received_at"]


def test_the_members_own_word_comes_back_when_the_thiefs_is_withdrawn() -> None:
    """Where the thief replaced the member's assertion (new labels) or retracted it, the
    member's own statement from before T counts again once the thief's are withdrawn:
    other members get it back, verbatim, in the feed and on lookup."""
    acme, globex = make_party("acme"), make_party("globex")
    relabelled, retracted = pdq(), pdq()
    now = int(time.time())
    originals = {
        relabelled: acme.statement("pdq", relabelled, iat=now - 20),
        retracted: acme.statement("pdq", retracted, iat=now - 20),
    }
    assert acme.submit(*originals.values())["accepted"] == 2

    compromise = int(time.time()) + 1
    while time.time() < compromise:
        time.sleep(0.02)
    thief = Party(acme.member, acme.api_key, acme.private_key, acme.kid, acme.client)
    assert (
        thief.submit(
            thief.statement("pdq", relabelled, labels=["incitement"], iat=now - 10),
            thief.statement("pdq", retracted, op="retract", iat=now - 10),
        )["accepted"]
        == 2
    )
    first = globex.get("/api/v1/changes").json()
    assert {c["value"]: c["deleted"] for c in first["changes"]} == {
        relabelled: False,
        retracted: True,
    }

    revoke_by_command(acme.kid, datetime.fromtimestamp(compromise, UTC))

    page = globex.get("/api/v1/changes", cursor=first["cursor"]).json()
    back = {c["value"]: c for c in page["changes"]}
    assert set(back) == {relabelled, retracted}
    for value, token in originals.items():
        assert not back[value]["deleted"]
        assert [s["jws"] for s in back[value]["statements"]] == [token]
        looked = globex.get(f"/api/v1/signals/pdq/{value}")
        assert looked.status_code == 200
        assert [s["jws"] for s in looked.json()["statements"]] == [token]
