"""
Verifying a STIX indicator of the forum offline: the member's signed statement inside it.

Every indicator the forum's TAXII channel serves carries, in the property extension
``exchange.client.stix.JWS_EXTENSION_ID``, the compact JWS its member signed and the
forum's receipt of it (``exchange/client/stix.py`` explains the mapping). Any STIX
consumer that keeps the indicator can check, without trusting the forum or the platform
the indicator went through, that

- the JWS verifies against the member's key in the forum's JWKS and the receipt against
  the forum's key, with the compromised-key rule (``exchange.client.verify``);
- what the indicator shows is what was signed: its id, ``created_by_ref`` and
  ``pattern`` are those the mapping derives from the signed issuer, signal type and
  value; ``valid_from`` is ``iat``, ``valid_until`` is ``exp``; ``labels`` and the TLP
  marking are the signed ones. A relabelled or re-pointed indicator fails with
  ``claim_mismatch``, as a tampered snapshot does::

    from exchange.client import CordialeClient, index_jwks
    from exchange.client.stix_verify import verify_indicator

    keys = index_jwks(client.jwks())
    result = verify_indicator(indicator, keys)   # indicator: a dict, as TAXII serves it
    assert result.ok, result.reason

Nothing here needs ``stix2`` or Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from exchange.client import jws, stix
from exchange.client.verify import VerificationResult, verify_statement

_TLP_BY_MARKING = {marking: tlp for tlp, marking in stix.TLP_MARKINGS.items()}


def statement_of(indicator: Mapping[str, Any]) -> str | None:
    """The compact JWS an indicator carries, or None if it carries none."""
    extension = (indicator.get("extensions") or {}).get(stix.JWS_EXTENSION_ID)
    token = extension.get("jws") if isinstance(extension, Mapping) else None
    return token if isinstance(token, str) else None


def verify_indicator(
    indicator: Mapping[str, Any], keys: dict[str, dict[str, Any]]
) -> VerificationResult:
    """Verify the statement inside ``indicator`` against ``keys`` (``index_jwks``), and
    that the indicator shows what it signed."""
    token = statement_of(indicator)
    extension = (indicator.get("extensions") or {}).get(stix.JWS_EXTENSION_ID) or {}
    try:
        parsed = jws.parse_compact(str(token), max_length=jws.MAX_LONG_TOKEN_LENGTH)
    except jws.MalformedJWS as exc:
        detail = "the indicator carries no statement" if token is None else exc.detail
        return VerificationResult("", "", "", "", None, False, f"malformed: {detail}")
    claims = parsed.claims
    member, signal_type, value = (
        str(claims.get(name, "")) for name in ("iss", "signal_type", "value")
    )
    mismatch = _rendering_mismatch(indicator, member, signal_type, value)
    if mismatch is not None:
        jti = claims.get("jti") if isinstance(claims.get("jti"), str) else None
        return VerificationResult(
            signal_type, value, member, parsed.kid, jti, False, f"claim_mismatch: {mismatch}"
        )
    statement = {
        "member": member,
        "kid": parsed.kid,
        "jws": token,
        "receipt": extension.get("receipt"),
        "iat": _unix(indicator.get("valid_from")),
        "exp": _unix(indicator.get("valid_until")),
        "tlp": _tlp(indicator),
        # TAXII shows no audience: the collection is the audience; the signed one stands.
        "audience": claims.get("audience"),
        "labels": list(indicator.get("labels") or []),
    }
    return verify_statement(statement, signal_type=signal_type, value=value, keys=keys)


def _rendering_mismatch(
    indicator: Mapping[str, Any], member: str, signal_type: str, value: str
) -> str | None:
    try:
        pattern = stix.pattern_for(signal_type, value)
    except stix.UnsupportedSignalType:
        return f"signal type {signal_type!r} has no STIX pattern"
    expected = {
        "id": stix.indicator_id(member, signal_type, value),
        "created_by_ref": stix.identity_id(member),
        "pattern": pattern,
    }
    for name, want in expected.items():
        if indicator.get(name) != want:
            return f"{name} is {indicator.get(name)!r}, the signed statement gives {want!r}"
    return None


def _unix(timestamp: Any) -> int | float | None:
    """Unix seconds of a STIX timestamp (an int when whole), None if absent or invalid."""
    if not isinstance(timestamp, str):
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return int(seconds) if seconds == int(seconds) else seconds


def _tlp(indicator: Mapping[str, Any]) -> str | None:
    levels = [_TLP_BY_MARKING.get(str(ref)) for ref in indicator.get("object_marking_refs") or []]
    known = [level for level in levels if level is not None]
    return known[0] if len(known) == 1 else None
