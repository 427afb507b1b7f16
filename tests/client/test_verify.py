"""Offline verification of snapshots against a JWK set."""

from __future__ import annotations

import copy

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client.verify import index_jwks, verify_snapshot
from tests.client.fakes import jwk_for, snapshot

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def keys(**extra: object) -> dict[str, dict[str, object]]:
    return index_jwks({"keys": [jwk_for(KEY, "acme", **extra), jwk_for(OTHER, "globex")]})


def reasons(snap: dict[str, object], key_index: dict[str, dict[str, object]]) -> list[str | None]:
    return [result.reason for result in verify_snapshot(snap, key_index)]  # type: ignore[arg-type]


def test_a_genuine_snapshot_verifies() -> None:
    results = verify_snapshot(snapshot(KEY), keys())
    assert [r.ok for r in results] == [True]
    assert results[0].member == "acme" and results[0].jti


def test_fields_that_differ_from_the_signed_claims_fail() -> None:
    """The server (or anyone between) cannot change labels, tlp, audience, iat or exp."""
    for field, value in [
        ("labels", ["other"]),
        ("tlp", "clear"),
        ("audience", "group:x"),
        ("iat", 1),
        ("exp", 2_000_000_000),
    ]:
        snap = snapshot(KEY)
        snap["statements"][0][field] = value
        (reason,) = reasons(snap, keys())
        assert reason is not None and reason.startswith("claim_mismatch"), field


def test_the_snapshot_value_must_be_the_signed_value() -> None:
    snap = snapshot(KEY)
    snap["value"] = "0" * 32
    assert reasons(snap, keys())[0].startswith("claim_mismatch: value")  # type: ignore[union-attr]


def test_a_tampered_token_fails_the_signature() -> None:
    snap = snapshot(KEY)
    token = snap["statements"][0]["jws"]
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    snap["statements"][0]["jws"] = f"{header}.{payload}.{flipped}"
    assert reasons(snap, keys())[0].startswith("bad_signature")  # type: ignore[union-attr]


def test_a_statement_attributed_to_another_member_fails() -> None:
    """A key of acme cannot vouch for globex, and globex's key cannot sign as acme."""
    snap = snapshot(KEY)
    snap["statements"][0]["member"] = "globex"
    assert reasons(snap, keys())[0].startswith("key_member_mismatch")  # type: ignore[union-attr]
    forged = snapshot(OTHER, member="acme")
    assert reasons(forged, keys())[0].startswith("key_member_mismatch")  # type: ignore[union-attr]


def test_unknown_kid_and_garbage_fail() -> None:
    assert reasons(snapshot(KEY), {})[0].startswith("unknown_key")  # type: ignore[union-attr]
    snap = snapshot(KEY)
    snap["statements"][0]["jws"] = "not.a.jws"
    assert reasons(snap, keys())[0].startswith("malformed")  # type: ignore[union-attr]


def test_revoked_key_vouches_only_before_it_was_compromised() -> None:
    snap = snapshot(KEY, iat=1_764_400_000)  # 2025-11-29T07:06:40Z
    before = keys(status="revoked", compromised_since="2025-11-29T08:00:00Z")
    after = keys(status="revoked", compromised_since="2025-11-29T07:06:40+00:00")
    assert reasons(copy.deepcopy(snap), before) == [None]
    assert reasons(snap, after)[0].startswith("revoked_key")  # type: ignore[union-attr]
    via_revoked_at = keys(status="revoked", revoked_at="2025-01-01T00:00:00Z")
    assert reasons(snap, via_revoked_at)[0].startswith("revoked_key")  # type: ignore[union-attr]
    assert reasons(snap, keys(status="retired")) == [None]
