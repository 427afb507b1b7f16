"""
Offline verification of signal snapshots against a JWK set: statements and their receipts.

The server forwards statements verbatim, so a recipient need not trust it: each statement
in a snapshot is a JWS that must verify against its member's published key, and the
fields the server shows next to it (member, kid, iat, labels, tlp, audience, exp) must be
what was signed.

Each statement also carries the forum's **receipt**: a compact JWS by the forum's own key
(the JWKS entry with ``"forum": true`` and no ``member``) with header
``{"alg": "EdDSA", "kid": <forum kid>, "typ": "cordiale-receipt"}`` and exactly the claims::

    {"jti": "<statement jti>", "member": "<iss>", "kid": "<statement kid>",
     "received_at": 1764400007}

``received_at`` is when the forum accepted the statement, in whole Unix seconds. It, not
the signer's ``iat``, decides what a compromised key still vouches for: a thief who holds
the key chooses ``iat`` freely, but cannot make the forum's receipt older than the
forum's clock. So a statement of a key revoked as compromised since T is **withdrawn**
when ``received_at >= T`` (T is ``revoked_at``, published truncated to whole seconds so
that this comparison gives the server's answer); one received before T stays valid. A
missing or unverifiable receipt is a failure. A retired key, and a retired forum key,
still vouch for what they signed.

The JWKS itself is not taken on trust either: an entry whose ``kid`` is not the RFC 7638
thumbprint of its ``x`` is left out (``check_jwks`` says why), so a server cannot publish a
second key under a kid that statements already name. Pinning keys across syncs lives in
``exchange.client.pins``.

The forum's **decisions** on disputes (a snapshot's ``decisions[].jws``, a dispute's
``decision.jws``) are compact JWS by the same forum key with ``typ``
``cordiale-decision`` and exactly the claims ``DECISION_CLAIMS``; ``verify_decision``
checks one and returns its claims.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exchange.client import jws
from exchange.client.statement_format import (
    DECISION_CLAIMS,
    DECISION_TYP,
    DECISION_VALUES,
    OP_ASSERT,
    RECEIPT_CLAIMS,
    RECEIPT_TYP,
)

# Snapshot field -> claim that must carry the same value.
_MIRRORED_CLAIMS = ("iat", "tlp", "audience")

# Forum keys whose receipts still count; a revoked forum key vouches for nothing.
_RECEIPT_KEY_STATUSES = ("active", "retired")


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """Whether one statement verified; ``reason`` says why not (``code: detail``)."""

    signal_type: str
    value: str
    member: str
    kid: str
    jti: str | None
    ok: bool
    reason: str | None = None
    received_at: int | None = None

    def describe(self) -> str:
        """One line naming the statement, for humans."""
        state = "ok" if self.ok else f"FAILED: {self.reason}"
        return (
            f"{self.signal_type}:{_shorten(self.value)} by {self.member or '?'} "
            f"(kid {self.kid or '?'}, jti {self.jti or '?'}): {state}"
        )


@dataclass(frozen=True, slots=True)
class KeyReport:
    """A change or a fault in the key set: ``failure`` ones mean the JWKS cannot be trusted.

    ``change`` is ``added``, ``removed``, ``revoked`` (notices) or ``bad_kid``, ``rebound``,
    ``unrevoked`` (failures): see ``exchange.client.pins``.
    ``member`` is None for the forum's own key.
    """

    change: str
    kid: str
    member: str | None
    detail: str
    failure: bool

    def as_dict(self) -> dict[str, Any]:
        return {"change": self.change, "kid": self.kid, "member": self.member}

    def describe(self) -> str:
        owner = "the forum" if self.member is None else self.member
        prefix = "KEY FAILURE" if self.failure else "key change"
        return f"{prefix}: {self.change} kid {self.kid} of {owner}: {self.detail}"


def check_jwks(jwks: Any) -> tuple[dict[str, dict[str, Any]], list[KeyReport]]:
    """The usable keys of a JWK set by ``kid``, and a report for each entry left out."""
    entries = jwks.get("keys", []) if isinstance(jwks, dict) else []
    keys: dict[str, dict[str, Any]] = {}
    rejected: list[KeyReport] = []
    for entry in entries if isinstance(entries, list) else []:
        problem = _jwk_problem(entry)
        if problem is None:
            keys[entry["kid"]] = entry
            continue
        kid = entry.get("kid") if isinstance(entry, dict) else None
        member = entry.get("member") if isinstance(entry, dict) else None
        rejected.append(
            KeyReport(
                "bad_kid",
                str(kid),
                member if isinstance(member, str) else None,
                problem,
                failure=True,
            )
        )
    return keys, rejected


def index_jwks(jwks: Any) -> dict[str, dict[str, Any]]:
    """The usable keys of a JWK set by ``kid`` (see ``check_jwks`` for what is left out)."""
    return check_jwks(jwks)[0]


def _jwk_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return "not a JWK with a kid"
    if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
        return "not an Ed25519 OKP key"
    try:
        thumbprint = jws.jwk_thumbprint(entry.get("x"))  # type: ignore[arg-type]
    except (jws.MalformedJWS, jws.InvalidKey, TypeError, ValueError):
        return "its x is not an Ed25519 public key"
    if thumbprint != entry["kid"]:
        return f"the kid is not the RFC 7638 thumbprint of its key ({thumbprint})"
    is_forum = entry.get("forum") is True
    member = entry.get("member")
    if is_forum == (member is not None):
        return "a key must belong either to a member or to the forum"
    if not is_forum and not (isinstance(member, str) and member):
        return "the member is not a slug"
    return None


def kids_named(snapshots: Iterable[dict[str, Any]]) -> set[str]:
    """The kids the statements and receipts of ``snapshots`` name: a verifier whose JWKS
    lacks one should fetch the JWKS again (a key registered, the forum's key rotated)."""
    kids = set()
    for snapshot in snapshots:
        for statement in snapshot.get("statements") or []:
            kids.add(str(statement.get("kid")))
            with contextlib.suppress(jws.MalformedJWS):  # verification reports it
                kids.add(jws.parse_compact(statement.get("receipt")).kid)
    return kids


def verify_snapshot(
    snapshot: dict[str, Any], keys: dict[str, dict[str, Any]]
) -> list[VerificationResult]:
    """Verify every statement of a snapshot against ``keys`` (from ``index_jwks``)."""
    return [
        verify_statement(
            statement,
            signal_type=str(snapshot.get("signal_type", "")),
            value=str(snapshot.get("value", "")),
            keys=keys,
        )
        for statement in snapshot.get("statements") or []
    ]


def verify_statement(
    statement: dict[str, Any], *, signal_type: str, value: str, keys: dict[str, dict[str, Any]]
) -> VerificationResult:
    """Verify one statement of the snapshot of ``signal_type``/``value``, with its receipt."""
    member = str(statement.get("member") or "")
    kid = str(statement.get("kid") or "")

    def result(
        reason: str | None, jti: str | None = None, received_at: int | None = None
    ) -> VerificationResult:
        return VerificationResult(
            signal_type, value, member, kid, jti, reason is None, reason, received_at
        )

    try:
        parsed = jws.parse_compact(
            statement.get("jws"),  # type: ignore[arg-type]
            max_length=jws.MAX_LONG_TOKEN_LENGTH,  # the server checked each type's limit
        )
    except jws.MalformedJWS as exc:
        return result(f"malformed: {exc.detail}")
    jti = parsed.claims.get("jti")
    jti = jti if isinstance(jti, str) else None
    if kid and parsed.kid != kid:
        return result(f"kid_mismatch: the JWS was signed with kid {parsed.kid}", jti)
    kid = parsed.kid
    key = keys.get(kid)
    if key is None or key.get("forum") is True:
        return result(f"unknown_key: no member key {kid} in the JWKS", jti)
    reason = _check_key(key, member, parsed) or _check_claims(
        parsed.claims, statement, signal_type, value, member
    )
    if reason:
        return result(reason, jti)
    reason, received_at = _check_receipt(statement.get("receipt"), parsed, keys)
    return result(reason or _check_revocation(key, received_at), jti, received_at)


def _check_key(key: dict[str, Any], member: str, parsed: jws.ParsedJWS) -> str | None:
    if key.get("member") != member:
        return f"key_member_mismatch: key {parsed.kid} belongs to {key.get('member')!r}"
    if not _signature_ok(key, parsed):
        return "bad_signature: the signature does not verify"
    return None


def _signature_ok(key: dict[str, Any], parsed: jws.ParsedJWS) -> bool:
    try:
        public_key = jws.public_key_from_x(key["x"])
    except (jws.InvalidKey, KeyError, TypeError):
        return False
    return jws.verify(parsed, public_key)


def _check_claims(
    claims: dict[str, Any], statement: dict[str, Any], signal_type: str, value: str, member: str
) -> str | None:
    expected: dict[str, Any] = {
        "iss": member,
        "op": OP_ASSERT,
        "signal_type": signal_type,
        "value": value,
    }
    for name in _MIRRORED_CLAIMS:
        expected[name] = statement.get(name)
    expected["exp"] = statement.get("exp")
    for name, want in expected.items():
        if claims.get(name) != want:
            return (
                f"claim_mismatch: {name} is {want!r} in the snapshot, signed {claims.get(name)!r}"
            )
    labels = statement.get("labels")
    signed_labels = claims.get("labels")
    if not isinstance(labels, list) or not isinstance(signed_labels, list):
        return "claim_mismatch: labels missing"
    if sorted(map(str, labels)) != sorted(map(str, signed_labels)):
        return f"claim_mismatch: labels are {labels!r} in the snapshot, signed {signed_labels!r}"
    return None


def _check_receipt(
    token: Any, statement: jws.ParsedJWS, keys: dict[str, dict[str, Any]]
) -> tuple[str | None, int | None]:
    """Why the receipt does not vouch for ``statement`` (None if it does), and its time."""
    if not isinstance(token, str) or not token:
        return "missing_receipt: the forum's receipt is missing", None
    try:
        receipt = jws.parse_compact(token)
    except jws.MalformedJWS as exc:
        return f"bad_receipt: {exc.detail}", None
    if receipt.header.get("typ") != RECEIPT_TYP:
        return f"bad_receipt: typ is {receipt.header.get('typ')!r}, not {RECEIPT_TYP!r}", None
    forum_key = keys.get(receipt.kid)
    if forum_key is None or forum_key.get("forum") is not True:
        return f"bad_receipt: {receipt.kid} is not a forum key in the JWKS", None
    if forum_key.get("status") not in _RECEIPT_KEY_STATUSES:
        return f"bad_receipt: the forum key {receipt.kid} is {forum_key.get('status')}", None
    if not _signature_ok(forum_key, receipt):
        return "bad_receipt: the forum's signature does not verify", None
    claims = receipt.claims
    if set(claims) != RECEIPT_CLAIMS:
        return f"bad_receipt: claims are {sorted(claims)}, not {sorted(RECEIPT_CLAIMS)}", None
    expected = {"jti": statement.claims.get("jti"), "member": statement.claims.get("iss")}
    expected["kid"] = statement.kid
    for name, want in expected.items():
        if claims[name] != want:
            return f"bad_receipt: {name} is {claims[name]!r}, the statement's is {want!r}", None
    received_at = claims["received_at"]
    if not isinstance(received_at, int) or isinstance(received_at, bool) or received_at < 0:
        return f"bad_receipt: received_at {received_at!r} is not Unix seconds", None
    return None, received_at


def revoked_since(key: dict[str, Any]) -> float | None:
    """T for a revoked key (Unix seconds; 0 when the JWKS gives no time), else None."""
    if key.get("status") != "revoked":
        return None
    since = _parse_time(key.get("revoked_at"))
    return 0.0 if since is None else since


def _check_revocation(key: dict[str, Any], received_at: int | None) -> str | None:
    """The receipt-time rule: a revoked key vouches only for what arrived before T."""
    since = revoked_since(key)
    if since is None:
        return None
    if received_at is None or received_at >= since:
        when = datetime.fromtimestamp(since, UTC).isoformat()
        return (
            f"withdrawn: received at {received_at}, after key {key.get('kid')} was revoked "
            f"as compromised since {when}"
        )
    return None


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DecisionInvalid(Exception):
    """A decision token that the forum's keys do not vouch for; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def verify_decision(token: str, keys: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The claims of a forum-signed dispute decision that verifies against ``keys``
    (from ``index_jwks``); ``DecisionInvalid`` otherwise.

    Checks: compact JWS, ``typ`` ``cordiale-decision``, signed by a key that the JWKS
    marks as the forum's (active or retired), exactly the decision claims, with a known
    ``decision`` and ``iss`` ``forum``.
    """
    try:
        parsed = jws.parse_compact(token)
    except jws.MalformedJWS as exc:
        raise DecisionInvalid("malformed", exc.detail) from None
    if parsed.header.get("typ") != DECISION_TYP:
        raise DecisionInvalid("bad_typ", f"typ is {parsed.header.get('typ')!r}")
    key = keys.get(parsed.kid)
    if key is None or key.get("forum") is not True:
        raise DecisionInvalid("unknown_key", f"{parsed.kid} is not a forum key in the JWKS")
    if key.get("status") not in _RECEIPT_KEY_STATUSES:
        raise DecisionInvalid("revoked_key", f"the forum key {parsed.kid} is {key.get('status')}")
    if not _signature_ok(key, parsed):
        raise DecisionInvalid("bad_signature", "the forum's signature does not verify")
    claims = parsed.claims
    if set(claims) != DECISION_CLAIMS:
        raise DecisionInvalid(
            "bad_claims", f"claims are {sorted(claims)}, not {sorted(DECISION_CLAIMS)}"
        )
    if claims["iss"] != "forum" or claims["decision"] not in DECISION_VALUES:
        raise DecisionInvalid(
            "bad_claims", f"iss {claims['iss']!r}, decision {claims['decision']!r}"
        )
    return claims
