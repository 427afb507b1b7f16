"""Offline verification of snapshots against a JWK set: statements, receipts, the JWKS."""

from __future__ import annotations

import copy
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import jws
from exchange.client.verify import check_jwks, index_jwks, verify_snapshot
from tests.client.fakes import FORUM_KEY, forum_jwk, jwk_for, receipt_for, snapshot

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def keys(**extra: object) -> dict[str, dict[str, object]]:
    return index_jwks(
        {"keys": [jwk_for(KEY, "acme", **extra), jwk_for(OTHER, "globex"), forum_jwk()]}
    )


def reasons(snap: dict[str, object], key_index: dict[str, dict[str, object]]) -> list[str | None]:
    return [result.reason for result in verify_snapshot(snap, key_index)]  # type: ignore[arg-type]


def test_a_genuine_snapshot_verifies() -> None:
    """A snapshot with its member's genuine statement verifies, naming the member and the
    statement."""
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
    """A snapshot whose value differs from the signed one fails with ``claim_mismatch``."""
    snap = snapshot(KEY)
    snap["value"] = "0" * 32
    assert reasons(snap, keys())[0].startswith("claim_mismatch: value")  # type: ignore[union-attr]


def test_a_tampered_token_fails_the_signature() -> None:
    """A statement whose signature was altered fails with ``bad_signature``."""
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
    """A statement signed by an unknown key fails with ``unknown_key``; one that is not a JWS fails
    as ``malformed``."""
    assert reasons(snapshot(KEY), {})[0].startswith("unknown_key")  # type: ignore[union-attr]
    snap = snapshot(KEY)
    snap["statements"][0]["jws"] = "not.a.jws"
    assert reasons(snap, keys())[0].startswith("malformed")  # type: ignore[union-attr]


# 2025-11-29T07:06:40Z, and the key's compromise an hour later.
IAT = 1_764_400_000
T = IAT + 3600
REVOKED = {"status": "revoked", "revoked_at": "2025-11-29T08:06:40Z"}


def test_a_revoked_key_vouches_only_for_what_the_forum_received_before_t() -> None:
    """The receipt's received_at, not the signer's iat, decides: a statement received
    before T stays valid, one received at or after T is withdrawn, backdated or not."""
    assert reasons(snapshot(KEY, iat=IAT, received_at=T - 1), keys(**REVOKED)) == [None]
    for received_at in (T, T + 1):
        backdated = snapshot(KEY, iat=IAT, received_at=received_at)  # iat an hour before T
        (reason,) = reasons(backdated, keys(**REVOKED))
        assert reason is not None and reason.startswith("withdrawn"), received_at
    (reason,) = reasons(snapshot(KEY, iat=IAT), keys(status="revoked"))
    assert reason is not None and reason.startswith("withdrawn")  # revoked with no time
    assert reasons(snapshot(KEY, iat=IAT, received_at=T + 1), keys(status="retired")) == [None]


def with_receipt(snap: dict[str, Any], receipt: object) -> dict[str, Any]:
    """``snap`` with its statement's receipt replaced."""
    changed = copy.deepcopy(snap)
    changed["statements"][0]["receipt"] = receipt
    return changed


def test_a_missing_or_bad_receipt_fails() -> None:
    """The receipt must be there, be the forum's, and name this statement exactly."""
    snap = snapshot(KEY)
    token = snap["statements"][0]["jws"]
    assert reasons(with_receipt(snap, receipt_for(token, received_at=IAT)), keys()) == [None]
    forum_kid = forum_jwk()["kid"]
    tampered = receipt_for(token, received_at=IAT)
    header, payload, signature = tampered.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_statement = snapshot(KEY, iat=IAT + 5)["statements"][0]["jws"]
    not_a_forum_key = "bad_receipt: " + jws.jwk_thumbprint(jws.public_key_x(KEY.public_key()))
    bad_cases: list[tuple[str, object, str]] = [
        ("no receipt", None, "missing_receipt"),
        ("not a JWS", "not.a.jws", "bad_receipt: "),
        ("another statement's", receipt_for(other_statement, received_at=IAT), "bad_receipt: jti"),
        ("other jti", receipt_for(token, received_at=IAT, jti="x"), "bad_receipt: jti"),
        (
            "other member",
            receipt_for(token, received_at=IAT, member="globex"),
            "bad_receipt: member",
        ),
        ("other kid", receipt_for(token, received_at=IAT, kid=forum_kid), "bad_receipt: kid"),
        ("extra claim", receipt_for(token, received_at=IAT, iat=IAT), "bad_receipt: claims"),
        ("a string time", receipt_for(token, received_at="x"), "bad_receipt: received_at"),  # type: ignore[arg-type]
        ("a float time", receipt_for(token, received_at=IAT + 0.5), "bad_receipt: received_at"),  # type: ignore[arg-type]
        ("a bool time", receipt_for(token, received_at=True), "bad_receipt: received_at"),
        ("wrong typ", receipt_for(token, received_at=IAT, typ="JWT"), "bad_receipt: typ"),
        ("by a member key", receipt_for(token, received_at=IAT, forum_key=KEY), not_a_forum_key),
        (
            "by an unknown key",
            receipt_for(token, received_at=IAT, forum_key=Ed25519PrivateKey.generate()),
            "bad_receipt: ",
        ),
        ("bad signature", f"{header}.{payload}.{flipped}", "bad_receipt: the forum's signature"),
    ]
    for case, receipt, expected in bad_cases:
        (reason,) = reasons(with_receipt(snap, receipt), keys())
        assert reason is not None and reason.startswith(expected), (case, reason)


def test_receipts_of_a_retired_forum_key_verify_but_not_of_a_revoked_one() -> None:
    """After the forum rotates its key, receipts signed by the old one still count."""
    old = Ed25519PrivateKey.generate()
    snap = snapshot(KEY)
    token = snap["statements"][0]["jws"]
    snap = with_receipt(snap, receipt_for(token, received_at=IAT, forum_key=old))
    member_keys = [jwk_for(KEY, "acme"), forum_jwk()]
    retired = index_jwks({"keys": [*member_keys, forum_jwk(old, status="retired")]})
    revoked = index_jwks({"keys": [*member_keys, forum_jwk(old, status="revoked")]})
    assert reasons(snap, retired) == [None]
    assert reasons(snap, revoked)[0].startswith("bad_receipt")  # type: ignore[union-attr]


def test_a_forum_key_cannot_sign_statements() -> None:
    """A statement signed with the forum's key is not accepted as a member's (``unknown_key``)."""
    forged = snapshot(FORUM_KEY, member="acme")
    assert reasons(forged, keys())[0].startswith("unknown_key")  # type: ignore[union-attr]


def test_jwks_entries_whose_kid_is_not_their_thumbprint_are_left_out() -> None:
    """A server cannot publish another key (or another x) under a kid statements name."""
    genuine = jwk_for(KEY, "acme")
    swapped = {**jwk_for(OTHER, "acme"), "kid": genuine["kid"]}
    usable, rejected = check_jwks({"keys": [swapped, forum_jwk()]})
    assert genuine["kid"] not in usable
    assert [(r.change, r.kid, r.failure) for r in rejected] == [("bad_kid", genuine["kid"], True)]
    assert reasons(snapshot(KEY), usable)[0].startswith("unknown_key")  # type: ignore[union-attr]
    both = {**forum_jwk(), "member": "acme"}
    not_ed25519 = {**genuine, "crv": "X25519"}
    garbage = {**genuine, "x": "!!"}
    _, rejected = check_jwks({"keys": [both, not_ed25519, garbage, "nonsense"]})
    assert len(rejected) == 4 and all(r.change == "bad_kid" for r in rejected)
    assert jws.jwk_thumbprint(genuine["x"]) == genuine["kid"]
    usable, rejected = check_jwks({"keys": [{**forum_jwk(), "member": None}]})
    assert list(usable) == [forum_jwk()["kid"]] and rejected == []  # null is no member
