"""
The STIX 2.1 form of the forum's signals: what the TAXII 2.1 channel serves and what the
member-side tools read or write as STIX.

One signed statement of one member on one signal is one ``indicator``; the member is an
``identity``; opinions are ``opinion`` objects; the TLP of a statement is a TLP 2.0
``marking-definition``; the statement's compact JWS travels, byte for byte, in a property
extension so that any STIX consumer can check provenance offline against the member's
JWKS (``GET /api/v1/members/<slug>/jwks``). An example: member ``acme`` asserted the md5
``d41d8cd98f00b204e9800998ecf8427e`` with label ``recruitment``, TLP green, for the forum::

    {"type": "indicator", "spec_version": "2.1",
     "id": "indicator--<uuid5 of acme, md5, the value>",
     "created": "2025-11-29T07:06:40.000000Z", "modified": "2025-11-29T07:06:40.000000Z",
     "created_by_ref": "identity--<uuid5 of acme>",
     "name": "md5:d41d8cd98f00b204e9800998ecf8427e",
     "pattern": "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
     "pattern_type": "stix", "pattern_version": "2.1",
     "valid_from": "2025-11-29T07:06:40Z", "labels": ["recruitment"],
     "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"],
     "extensions": {"extension-definition--<JWS_EXTENSION_ID>": {
         "extension_type": "property-extension",
         "jws": "<the compact JWS the member signed>", "receipt": "<the forum's receipt>"}}}

The mapping, property by property:

- **ids** are UUIDv5 in ``NAMESPACE``, so that every party derives the same id: an
  identity from the member's slug (``identity_id``), an indicator from the member, the
  signal type and the value (``indicator_id``). Opinions are anonymous, like the feed's
  counts: their id is a UUIDv5 of a secret of the server's (``opinion_secret``), the
  member and the signal, which no reader can map back to the member.
- **patterns** per signal type (``pattern_for``): ``md5`` → ``file:hashes.MD5``,
  ``sha256`` → ``file:hashes.'SHA-256'``, ``url`` → ``url:value``, ``pdq`` →
  ``file:hashes.PDQ``, ``vpdq`` → ``file:hashes.vPDQ`` (the vPDQ value is the JSON list
  of frames, as signed). Quotes and backslashes in a value are escaped as STIX
  patterning requires (``\\'`` and ``\\\\``).
- **times**: ``valid_from`` is the statement's ``iat``, ``valid_until`` its ``exp`` (when
  later); ``created`` is when the forum first received a statement of that member on
  that signal and ``modified`` when it received this one, so a relabel is a new version.
- ``labels`` are the statement's label slugs; ``object_marking_refs`` its TLP as one of
  the five TLP 2.0 marking definitions (``TLP_MARKINGS``, the ids OASIS publishes in
  cti-stix-common-objects).
- **revocation**: a retraction, lapse, key withdrawal, or the statement leaving the
  reader's audience is a last version with ``revoked: true`` (``modified`` the time of
  that change).
- **opinions**: ``positive`` → ``agree``, ``negative`` → ``disagree``,
  ``investigation`` → ``neutral``; ``object_refs`` the signal's indicators; no
  ``created_by_ref`` unless the opinion is the reader's own, which also carries its tags
  (as ``labels``) and reason (``explanation``).

The JWS extension is described by ``jws_extension_definition()``, created by the forum's
own identity (``forum_identity()``); both are served with the markings at the head of
every collection (``static_objects()``).

This module builds plain dicts (the ``stix2`` library is the reference the tests check
them against, and too slow for a page of 10,000 indicators) and imports nothing from
Django: the client imports it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

SPEC_VERSION = "2.1"
NAMESPACE = uuid.UUID("5b0a0b8e-5a36-4d3b-9d7c-6f1f1b7a3c21")

# The creation time of the objects the forum defines once (its identity, the extension).
FORUM_EPOCH = "2025-01-01T00:00:00.000Z"

# TLP 2.0 as OASIS publishes it (cti-stix-common-objects, tlp-2.0 extension definition).
TLP_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_CREATED = "2022-10-01T00:00:00.000Z"
TLP_MARKINGS: dict[str, str] = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

JWS_EXTENSION_ID = f"extension-definition--{uuid.uuid5(NAMESPACE, 'extension:jws')}"
FORUM_IDENTITY_ID = f"identity--{uuid.uuid5(NAMESPACE, 'forum')}"

OPINION_VALUES: dict[str, str] = {
    "positive": "agree",
    "negative": "disagree",
    "investigation": "neutral",
}

# STIX object paths of each signal type's pattern: the object type and the property.
PATTERN_PATHS: dict[str, str] = {
    "md5": "file:hashes.MD5",
    "sha256": "file:hashes.'SHA-256'",
    "url": "url:value",
    "pdq": "file:hashes.PDQ",
    "vpdq": "file:hashes.vPDQ",
}

_NAME_LIMIT = 128


class UnsupportedSignalType(ValueError):
    """A signal type this mapping has no STIX pattern for."""


_NAMESPACE_BYTES = NAMESPACE.bytes


def uuid5(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))`` without building a ``UUID`` object: a page
    of 10,000 indicators spent a quarter of its time in ``uuid.UUID.__init__``."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=4096)
def identity_id(member: str) -> str:
    return f"identity--{uuid5('member:' + member)}"


def indicator_id(member: str, signal_type: str, value: str) -> str:
    return f"indicator--{uuid5(f'indicator:{member}:{signal_type}:{value}')}"


def opinion_id(secret: bytes, member: str, signal_type: str, value: str) -> str:
    """The id of ``member``'s opinion on a signal: stable, and not computable without the
    server's ``secret``, so that it names no member."""
    mac = hmac.new(secret, f"{member}:{signal_type}:{value}".encode(), hashlib.sha256)
    return f"opinion--{uuid5('opinion:' + mac.hexdigest())}"


def escape_pattern_string(value: str) -> str:
    """``value`` as the inside of a quoted STIX pattern string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def pattern_for(signal_type: str, value: str) -> str:
    path = PATTERN_PATHS.get(signal_type)
    if path is None:
        raise UnsupportedSignalType(f"No STIX pattern for signal type {signal_type!r}")
    return f"[{path} = '{escape_pattern_string(value)}']"


@functools.lru_cache(maxsize=4096)  # a batch of statements shares its iat
def unix_timestamp(seconds: int | float) -> str:
    """Unix seconds as a STIX timestamp (UTC, with the ``Z``)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stix_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def identity_for(member: str, *, name: str | None = None) -> dict[str, Any]:
    """The identity of a member (``identity_class`` organization)."""
    return {
        "type": "identity",
        "spec_version": SPEC_VERSION,
        "id": identity_id(member),
        "created": FORUM_EPOCH,
        "modified": FORUM_EPOCH,
        "name": name or member,
        "identity_class": "organization",
    }


def forum_identity() -> dict[str, Any]:
    """The forum's own identity: the creator of the JWS extension's definition."""
    return {
        "type": "identity",
        "spec_version": SPEC_VERSION,
        "id": FORUM_IDENTITY_ID,
        "created": FORUM_EPOCH,
        "modified": FORUM_EPOCH,
        "name": "Cordiale forum",
        "identity_class": "organization",
    }


def jws_extension_definition() -> dict[str, Any]:
    """The extension-definition of the property extension that carries the JWS."""
    return {
        "type": "extension-definition",
        "spec_version": SPEC_VERSION,
        "id": JWS_EXTENSION_ID,
        "created_by_ref": FORUM_IDENTITY_ID,
        "created": FORUM_EPOCH,
        "modified": FORUM_EPOCH,
        "name": "Cordiale signed statement",
        "description": (
            "The member's signed statement behind this indicator: 'jws' is the compact JWS "
            "(EdDSA, Ed25519) exactly as the member signed it, verifiable against the "
            "member's JWKS; 'receipt' is the forum's signed receipt of it, when present."
        ),
        "schema": (
            "Properties: jws (string, required): a compact JWS whose payload holds the "
            "claims iss, iat, jti, op, signal_type, value, labels, tlp, audience and "
            "optionally exp, content_type, ref; receipt (string, optional): a compact JWS "
            "by the forum's key over jti, member, kid and received_at."
        ),
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }


def tlp_marking(tlp: str) -> dict[str, Any]:
    """The TLP 2.0 marking-definition object for ``tlp``, as OASIS publishes it."""
    return {
        "type": "marking-definition",
        "spec_version": SPEC_VERSION,
        "id": TLP_MARKINGS[tlp],
        "created": TLP_CREATED,
        "name": f"TLP:{tlp.upper()}",
        "extensions": {
            TLP_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": tlp},
        },
    }


def static_objects() -> list[dict[str, Any]]:
    """The objects every collection holds once: the TLP markings, the forum's identity and
    the JWS extension's definition."""
    return [
        *(tlp_marking(tlp) for tlp in TLP_MARKINGS),
        forum_identity(),
        jws_extension_definition(),
    ]


def indicator_for(
    *,
    member: str,
    signal_type: str,
    value: str,
    iat: int,
    labels: Sequence[str],
    tlp: str | None,
    jws: str,
    exp: int | None = None,
    receipt: str | None = None,
    created: str | None = None,
    modified: str | None = None,
    revoked: bool = False,
    benign: bool = False,
) -> dict[str, Any]:
    """The indicator of one member statement. ``created``/``modified`` are STIX
    timestamps (default: ``iat``). A statement on the known-benign list (labels of kind
    ``benign``) says so in ``indicator_types`` (STIX's ``benign``), so that a platform
    does not take the value for something to act on."""
    valid_from = unix_timestamp(iat)
    name = f"{signal_type}:{value}"
    if len(name) > _NAME_LIMIT:
        name = name[: _NAME_LIMIT - 1] + "\u2026"
    extension: dict[str, Any] = {"extension_type": "property-extension", "jws": jws}
    if receipt:
        extension["receipt"] = receipt
    out: dict[str, Any] = {
        "type": "indicator",
        "spec_version": SPEC_VERSION,
        "id": indicator_id(member, signal_type, value),
        "created": created or valid_from,
        "modified": modified or created or valid_from,
        "created_by_ref": identity_id(member),
        "name": name,
        "pattern": pattern_for(signal_type, value),
        "pattern_type": "stix",
        "pattern_version": SPEC_VERSION,
        "valid_from": valid_from,
    }
    if exp is not None and exp > iat:
        out["valid_until"] = unix_timestamp(exp)
    if benign:
        out["indicator_types"] = ["benign"]
    if labels:
        out["labels"] = list(labels)
    if tlp in TLP_MARKINGS:
        out["object_marking_refs"] = [TLP_MARKINGS[tlp]]
    if revoked:
        out["revoked"] = True
    out["extensions"] = {JWS_EXTENSION_ID: extension}
    return out


def revoked_version(indicator: Mapping[str, Any], *, modified: str) -> dict[str, Any]:
    """The last version of an indicator: the same object, revoked, at ``modified``."""
    out = dict(indicator)
    out["modified"] = max(modified, indicator["modified"])
    out["revoked"] = True
    return out


def opinion_for(
    *,
    object_id: str,
    category: str,
    object_refs: Sequence[str],
    modified: str,
    created: str | None = None,
    own_member: str | None = None,
    tags: Sequence[str] = (),
    reason: str = "",
    revoked: bool = False,
) -> dict[str, Any]:
    """An opinion object. Anonymous unless ``own_member`` says it is the reader's own,
    which then carries its author, tags and reason."""
    out: dict[str, Any] = {
        "type": "opinion",
        "spec_version": SPEC_VERSION,
        "id": object_id,
        "created": created or modified,
        "modified": modified,
        "opinion": OPINION_VALUES[category],
        "object_refs": list(object_refs),
    }
    if own_member is not None:
        out["created_by_ref"] = identity_id(own_member)
        if reason:
            out["explanation"] = reason
        if tags:
            out["labels"] = list(tags)
    if revoked:
        out["revoked"] = True
    return out


def objects_for_snapshot(
    snapshot: Mapping[str, Any],
    *,
    caller: str | None = None,
    opinion_secret: bytes | None = None,
    audience: str | None = None,
) -> list[dict[str, Any]]:
    """STIX objects for a pull-feed snapshot (docs/api.md): an identity and an indicator
    per statement (only those addressed to ``audience`` if given), and the caller's own
    opinion when the snapshot carries it (counts name nobody, so they map to nothing).

    A tombstone (``deleted: true``) has no statements, so it maps to nothing either: a
    reader that kept the indicators revokes them itself (``revoked_version``).
    """
    signal_type, value = snapshot["signal_type"], snapshot["value"]
    if signal_type not in PATTERN_PATHS:
        return []
    members: list[str] = []
    indicators: list[dict[str, Any]] = []
    for statement in snapshot.get("statements", ()):
        if audience is not None and statement.get("audience") != audience:
            continue
        member = statement["member"]
        if member not in members:
            members.append(member)
        indicators.append(
            indicator_for(
                member=member,
                signal_type=signal_type,
                value=value,
                iat=statement["iat"],
                labels=statement.get("labels") or (),
                tlp=statement.get("tlp"),
                jws=statement["jws"],
                exp=statement.get("exp"),
                receipt=statement.get("receipt"),
            )
        )
    out: list[dict[str, Any]] = [identity_for(m) for m in members]
    out.extend(indicators)
    mine = (snapshot.get("opinions") or {}).get("mine")
    if mine and caller and opinion_secret is not None and indicators:
        out.append(
            opinion_for(
                object_id=opinion_id(opinion_secret, caller, signal_type, value),
                category=mine["category"],
                object_refs=[i["id"] for i in indicators],
                modified=snapshot["updated_at"],
                own_member=caller,
                tags=mine.get("tags") or (),
                reason=mine.get("reason") or "",
            )
        )
    return out


def bundle(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A STIX bundle of ``objects`` (random id, as the specification allows)."""
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": list(objects)}
