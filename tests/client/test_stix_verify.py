"""Verifying the statement inside a STIX indicator of the forum, offline."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import stix
from exchange.client.stix_verify import statement_of, verify_indicator
from exchange.client.verify import index_jwks
from tests.client.fakes import forum_jwk, jwk_for, snapshot

ACME_KEY = Ed25519PrivateKey.generate()


def indicator(**snapshot_args: Any) -> dict[str, Any]:
    """acme's indicator as the mapping renders a snapshot (with the forum's receipt)."""
    objects = stix.objects_for_snapshot(snapshot(ACME_KEY, **snapshot_args))
    (found,) = [obj for obj in objects if obj["type"] == "indicator"]
    return found


def keys(**acme: Any) -> dict[str, dict[str, Any]]:
    return index_jwks({"keys": [jwk_for(ACME_KEY, "acme", **acme), forum_jwk()]})


def test_an_indicator_of_the_forum_verifies() -> None:
    """The JWS and receipt verify, and the indicator shows what was signed."""
    item = indicator(signal_type="url", value="https://example.com/it's")
    result = verify_indicator(item, keys())
    assert result.ok, result.reason
    assert (result.member, result.signal_type, result.value) == (
        "acme",
        "url",
        "https://example.com/it's",
    )
    assert statement_of(item) == item["extensions"][stix.JWS_EXTENSION_ID]["jws"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"labels": ["glorification"]}, "claim_mismatch: labels"),
        ({"labels": []}, "claim_mismatch: labels"),
        ({"pattern": "[file:hashes.MD5 = '0cc175b9c0f1b6a831c399e269772661']"}, "pattern"),
        ({"created_by_ref": stix.identity_id("globex")}, "created_by_ref"),
        ({"id": stix.indicator_id("acme", "md5", "0" * 32)}, "claim_mismatch: id"),
        ({"object_marking_refs": [stix.TLP_MARKINGS["clear"]]}, "claim_mismatch: tlp"),
        ({"valid_from": "2020-01-01T00:00:00.000000Z"}, "claim_mismatch: iat"),
        ({"valid_until": "2099-01-01T00:00:00.000000Z"}, "claim_mismatch: exp"),
        ({"extensions": {}}, "malformed: the indicator carries no statement"),
    ],
)
def test_a_changed_indicator_fails(change: dict[str, Any], reason: str) -> None:
    """Relabelled, re-pointed, re-marked, re-dated or stripped indicators fail and say so."""
    result = verify_indicator({**indicator(), **change}, keys())
    assert not result.ok
    assert reason in str(result.reason)


def test_the_receipt_and_the_key_rules_apply() -> None:
    """No receipt fails; another key fails; a key revoked as compromised before the
    receipt's time withdraws the statement."""
    item = indicator(iat=1_764_400_000, received_at=1_764_400_010)
    extension = item["extensions"][stix.JWS_EXTENSION_ID]
    no_receipt = {**item, "extensions": {stix.JWS_EXTENSION_ID: {**extension, "receipt": None}}}
    assert "missing_receipt" in str(verify_indicator(no_receipt, keys()).reason)
    stranger = index_jwks({"keys": [jwk_for(Ed25519PrivateKey.generate(), "acme"), forum_jwk()]})
    assert "unknown_key" in str(verify_indicator(item, stranger).reason)
    revoked = keys(status="revoked", revoked_at="2025-11-29T07:06:45+00:00")
    assert "withdrawn" in str(verify_indicator(item, revoked).reason)
    earlier = keys(status="revoked", revoked_at="2025-11-29T07:06:55+00:00")
    assert verify_indicator(item, earlier).ok
