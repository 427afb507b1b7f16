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
rebound    yes        a pinned kid now belongs to another member, or moved between a
                      member and the forum: the pin wins, the report fails the sync
bad_kid    yes        an entry whose kid is not the RFC 7638 thumbprint of its x (an x
                      changed under a pinned kid shows up here): left out
========== ========== ================================================================

A kid is a thumbprint of the key, so one key can never honestly change owner: there is no
way to accept a rebinding short of starting a new replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exchange.client.verify import KeyReport, check_jwks


@dataclass(frozen=True, slots=True)
class Pin:
    """What the replica pinned for one kid; ``member`` None is the forum's own key."""

    kid: str
    member: str | None
    x: str
    present: bool = True


@dataclass
class PinCheck:
    """The keys to verify with (pins applied), pins to write, and what to report."""

    keys: dict[str, dict[str, Any]]
    pins: list[Pin]
    reports: list[KeyReport]

    @property
    def failed(self) -> bool:
        return any(report.failure for report in self.reports)


def pins_check(*, jwks: Any, pins: dict[str, Pin]) -> PinCheck:
    """Compare ``jwks`` with ``pins`` (empty on first use: then nothing is reported)."""
    keys, reports = check_jwks(jwks)
    first_use = not pins
    trusted: dict[str, dict[str, Any]] = {}
    changed: list[Pin] = []
    for kid, key in keys.items():
        member = None if key.get("forum") is True else str(key["member"])
        pin = pins.get(kid)
        if pin is None:
            changed.append(Pin(kid, member, str(key["x"])))
            if not first_use:
                reports.append(KeyReport("added", kid, member, "not seen before", failure=False))
        elif pin.member == member and pin.x == key["x"] and not pin.present:
            changed.append(Pin(kid, member, pin.x))
            reports.append(KeyReport("added", kid, member, "published again", failure=False))
        elif pin.member != member or pin.x != key["x"]:
            reports.append(
                KeyReport(
                    "rebound",
                    kid,
                    pin.member,
                    f"pinned to {_owner(pin.member)}, the JWKS now says {_owner(member)}",
                    failure=True,
                )
            )
            key = _pinned(key, pin)
        trusted[kid] = key
    for kid, pin in pins.items():
        if pin.present and kid not in keys and not _rejected(reports, kid):
            changed.append(Pin(kid, pin.member, pin.x, present=False))
            reports.append(
                KeyReport("removed", kid, pin.member, "no longer in the JWKS", failure=False)
            )
    return PinCheck(trusted, changed, reports)


def _pinned(key: dict[str, Any], pin: Pin) -> dict[str, Any]:
    """The JWKS entry with the pinned owner and x: the pin, not the server, says whose it is."""
    pinned = {name: value for name, value in key.items() if name not in ("member", "forum")}
    pinned["x"] = pin.x
    if pin.member is None:
        pinned["forum"] = True
    else:
        pinned["member"] = pin.member
    return pinned


def _rejected(reports: list[KeyReport], kid: str) -> bool:
    return any(report.kid == kid and report.change == "bad_kid" for report in reports)


def _owner(member: str | None) -> str:
    return "the forum" if member is None else repr(member)
