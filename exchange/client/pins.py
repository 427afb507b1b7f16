"""
Key pinning: the replica remembers which member (or the forum) each key belonged to.

Verification against the JWKS proves a statement was signed by the key the JWKS names, but
the JWKS comes from the server. A server (or whoever controls it) that rebinds a member's
kid to another member, or publishes a new key for a member, could otherwise make the
replica accept statements the member never signed. So the first sync pins every key it
sees (trust on first use) and every later sync compares the JWKS with the pins:

========== ========== ================================================================
change     failure    what the JWKS shows
========== ========== ================================================================
added      no         a kid never seen before (a new key, a new member, a rotated
                      forum key): pinned now, and reported so the member can check it
removed    no         a pinned kid is no longer published: reported once (the pin
                      stays, so the kid cannot come back under another owner)
revoked    no         a key is newly revoked as compromised (or since an earlier time)
rebound    yes        a pinned kid now belongs to another member, or moved between a
                      member and the forum: the pin wins, the report fails the sync
unrevoked  yes        a key the JWKS showed revoked since T is now shown active, or
                      revoked since a later time: the pinned revocation still applies
bad_kid    yes        an entry whose kid is not the RFC 7638 thumbprint of its x (an x
                      changed under a pinned kid shows up here): left out
========== ========== ================================================================

A kid is a thumbprint of the key, so one key can never honestly change owner: there is no
way to accept a rebinding short of starting a new replica.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from exchange.client.verify import KeyReport, check_jwks, revoked_since


@dataclass(frozen=True, slots=True)
class Pin:
    """What the replica pinned for one kid; ``member`` None is the forum's own key.

    ``revoked_since`` is the earliest compromise time (Unix seconds) the JWKS ever showed
    for the key, so that a later JWKS cannot quietly take a revocation back.
    """

    kid: str
    member: str | None
    x: str
    present: bool = True
    revoked_since: float | None = None


@dataclass
class PinCheck:
    """The keys to verify with (pins applied), pins to write, and what to report."""

    keys: dict[str, dict[str, Any]]
    pins: list[Pin]
    reports: list[KeyReport]


def pins_check(*, jwks: Any, pins: dict[str, Pin]) -> PinCheck:
    """Compare ``jwks`` with ``pins`` (empty on first use: then nothing is reported)."""
    keys, reports = check_jwks(jwks)
    check = PinCheck({}, [], reports)
    for kid, key in keys.items():
        check.keys[kid] = _check_key(check, key, pins.get(kid), first_use=not pins)
    for kid, pin in pins.items():
        if pin.present and kid not in keys and not _rejected(reports, kid):
            check.pins.append(replace(pin, present=False))
            reports.append(
                KeyReport("removed", kid, pin.member, "no longer in the JWKS", failure=False)
            )
    return check


def _check_key(
    check: PinCheck, key: dict[str, Any], pin: Pin | None, *, first_use: bool
) -> dict[str, Any]:
    """The key to trust for one JWKS entry; records pins to write and reports in ``check``."""
    kid, x = str(key["kid"]), str(key["x"])
    member = None if key.get("forum") is True else str(key["member"])
    since = revoked_since(key)
    if pin is None:
        check.pins.append(Pin(kid, member, x, revoked_since=since))
        if not first_use:
            check.reports.append(KeyReport("added", kid, member, "not seen before", False))
        return key
    if pin.member != member or pin.x != x:
        detail = f"pinned to {_owner(pin.member)}, the JWKS now says {_owner(member)}"
        check.reports.append(KeyReport("rebound", kid, pin.member, detail, failure=True))
        return _pinned(key, pin)
    updated = pin
    if not pin.present:
        updated = replace(updated, present=True)
        check.reports.append(KeyReport("added", kid, member, "published again", False))
    if pin.revoked_since is not None and (since is None or since > pin.revoked_since):
        detail = f"revoked since {_when(pin.revoked_since)}, the JWKS now says otherwise"
        check.reports.append(KeyReport("unrevoked", kid, member, detail, failure=True))
        key = _revoked(key, pin.revoked_since)
    elif since is not None and (pin.revoked_since is None or since < pin.revoked_since):
        updated = replace(updated, revoked_since=since)
        detail = f"revoked as compromised since {_when(since)}"
        check.reports.append(KeyReport("revoked", kid, member, detail, failure=False))
    if updated != pin:
        check.pins.append(updated)
    return key


def _pinned(key: dict[str, Any], pin: Pin) -> dict[str, Any]:
    """The JWKS entry with the pinned owner, x and revocation: the pin, not the server,
    says whose the key is."""
    pinned = {name: value for name, value in key.items() if name not in ("member", "forum")}
    pinned["x"] = pin.x
    if pin.member is None:
        pinned["forum"] = True
    else:
        pinned["member"] = pin.member
    return pinned if pin.revoked_since is None else _revoked(pinned, pin.revoked_since)


def _revoked(key: dict[str, Any], since: float) -> dict[str, Any]:
    return {**key, "status": "revoked", "revoked_at": _when(since)}


def _when(since: float) -> str:
    return datetime.fromtimestamp(since, UTC).isoformat()


def _rejected(reports: list[KeyReport], kid: str) -> bool:
    return any(report.kid == kid and report.change == "bad_kid" for report in reports)


def _owner(member: str | None) -> str:
    return "the forum" if member is None else repr(member)
