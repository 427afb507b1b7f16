"""
Offline verification of signal snapshots against a JWK set.

The server forwards statements verbatim, so a recipient need not trust it: each statement
in a snapshot is a JWS that must verify against its member's published key, and the
fields the server shows next to it (member, kid, iat, labels, tlp, audience, exp) must be
what was signed. A key revoked as compromised from a time (``compromised_since``, or
``revoked_at`` when the forum publishes only that) vouches for nothing signed at or after
it. A retired key still vouches for what it signed before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exchange import jws

# Snapshot field -> claim that must carry the same value.
_MIRRORED_CLAIMS = ("iat", "tlp", "audience")


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """Whether one statement verified; ``reason`` says why not."""

    signal_type: str
    value: str
    member: str
    kid: str
    jti: str | None
    ok: bool
    reason: str | None = None

    def describe(self) -> str:
        """One line naming the statement, for humans."""
        state = "ok" if self.ok else f"FAILED: {self.reason}"
        return (
            f"{self.signal_type}:{_shorten(self.value)} by {self.member or '?'} "
            f"(kid {self.kid or '?'}, jti {self.jti or '?'}): {state}"
        )


def index_jwks(jwks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The keys of a JWK set by ``kid``."""
    keys = jwks.get("keys", []) if isinstance(jwks, dict) else []
    return {key["kid"]: key for key in keys if isinstance(key, dict) and "kid" in key}


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
    """Verify one statement of the snapshot of ``signal_type``/``value``."""
    member = str(statement.get("member") or "")
    kid = str(statement.get("kid") or "")

    def result(reason: str | None, jti: str | None = None) -> VerificationResult:
        return VerificationResult(
            signal_type, value, member, kid, jti, ok=reason is None, reason=reason
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
    if key is None:
        return result(f"unknown_key: no key {kid} in the JWKS", jti)
    reason = _check_key(key, member, parsed) or _check_claims(
        parsed.claims, statement, signal_type, value, member
    )
    return result(reason, jti)


def _check_key(key: dict[str, Any], member: str, parsed: jws.ParsedJWS) -> str | None:
    if key.get("member") != member:
        return f"key_member_mismatch: key {parsed.kid} belongs to {key.get('member')!r}"
    if key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
        return "unsupported_key: not an Ed25519 OKP key"
    try:
        public_key = jws.public_key_from_x(key["x"])
    except (jws.InvalidKey, KeyError, TypeError) as exc:
        return f"unsupported_key: {exc}"
    if not jws.verify(parsed, public_key):
        return "bad_signature: the signature does not verify"
    if key.get("status") == "revoked":
        since = _parse_time(key.get("compromised_since") or key.get("revoked_at"))
        iat = parsed.claims.get("iat")
        if since is None:
            return "revoked_key: the key is revoked"
        if isinstance(iat, int | float) and iat >= since:
            return f"revoked_key: signed at {iat}, after the key was compromised ({since:.0f})"
    return None


def _check_claims(
    claims: dict[str, Any], statement: dict[str, Any], signal_type: str, value: str, member: str
) -> str | None:
    expected: dict[str, Any] = {
        "iss": member,
        "op": "assert",
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
