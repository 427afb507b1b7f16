"""Judging one statement: its form, key and signature (no database), then its claims
against the forum's labels, groups and clock. See the package docstring for the order."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from exchange.client import jws
from exchange.client.signal_types import InvalidSignalValue, UnknownSignalType, get_signal_type
from exchange.client.statement_format import (
    AUDIENCE_FORUM,
    CONTENT_TYPES,
    MAX_JTI_LENGTH,
    MAX_REF_LENGTH,
    MAX_TIMESTAMP,
    OP_ASSERT,
    OPS,
    REQUIRED_CLAIMS,
    TLP_VALUES,
    audience_group_slug,
)
from exchange.models import FORUM_AUDIENCE, Label
from members.models import Member, SharingGroup, SigningKey


class Rejection(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class Item:
    index: int
    token: str
    parsed: jws.ParsedJWS | None = None
    key: SigningKey | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    group_id: int | None = None
    audience_key: int | None = None
    benign: bool = False  # an assertion with labels of kind ``benign``
    result: dict[str, Any] | None = None

    def reject(self, code: str, detail: str) -> None:
        # Details quote parts of the token (kid, labels), which JSON may spell as lone
        # surrogates; those cannot be written back as UTF-8.
        detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
        self.result = {"index": self.index, "status": "rejected", "code": code, "detail": detail}

    def finish(self, status: str) -> None:
        self.result = {
            "index": self.index,
            "status": status,
            "jti": self.claims["jti"],
            "signal_type": self.claims["signal_type"],
            "value": self.claims["value"],
        }


def _verify(item: Item, keys: dict[str, SigningKey], member: Member) -> None:
    """Form, key, signature and issuer: everything that needs no database."""
    if not isinstance(item.token, str):
        raise Rejection("malformed", "Each statement must be a compact JWS string.")
    try:
        parsed = jws.parse_compact(item.token, max_length=jws.MAX_LONG_TOKEN_LENGTH)
    except jws.MalformedJWS as exc:
        raise Rejection("malformed", exc.detail) from None
    _check_length(item.token, parsed.claims.get("signal_type"))
    key = keys.get(parsed.kid)
    if key is None:
        raise Rejection(
            "unknown_key", f"Key {parsed.kid} is not a registered key of {member.slug}."
        )
    if key.status == SigningKey.Status.REVOKED:
        raise Rejection("revoked_key", f"Key {key.kid} was revoked.")
    if key.status == SigningKey.Status.RETIRED:
        raise Rejection(
            "revoked_key", f"Key {key.kid} is retired: it signs nothing new; use an active key."
        )
    if not jws.verify(parsed, jws.public_key_from_x(key.x)):
        raise Rejection("bad_signature", "The signature does not verify with the key.")
    claims = parsed.claims
    if claims.get("iss") != member.slug:
        raise Rejection(
            "issuer_mismatch",
            f"iss must be the authenticated member {member.slug!r}; got {claims.get('iss')!r}.",
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH or not _storable(jti):
        raise Rejection(
            "malformed", f"jti must be a string of 1 to {MAX_JTI_LENGTH} characters, without NUL."
        )
    item.parsed, item.key, item.claims = parsed, key, claims
    item.digest = hashlib.sha256(item.token.encode()).hexdigest()


def _check_length(token: str, signal_type: Any) -> None:
    """Long tokens only for the signal types whose values need them (vpdq)."""
    if len(token) <= jws.MAX_TOKEN_LENGTH:
        return
    try:
        limit = get_signal_type(signal_type).max_token_length
    except UnknownSignalType:
        limit = jws.MAX_TOKEN_LENGTH
    if len(token) > limit:
        raise Rejection(
            "malformed",
            f"JWS longer than {limit} characters (the limit for {str(signal_type)[:32]!r} "
            "statements; see docs/errors.md)",
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _storable(text: str) -> bool:
    """Text a database column can hold: no NUL (PostgreSQL refuses it in text) and no
    lone surrogate (JSON can escape one; UTF-8 cannot encode it)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class LabelInfo:
    active: bool
    benign: bool


def _check_claims(
    item: Item,
    *,
    labels: dict[str, LabelInfo],
    groups: dict[str, tuple[int, bool]],
    now: int,
) -> None:
    claims = item.claims
    for name in REQUIRED_CLAIMS:
        if name not in claims:
            raise Rejection("malformed", f"Claim {name!r} is required.")
    if not _is_int(claims["iat"]) or claims["iat"] < 0:
        raise Rejection("malformed", "iat must be Unix seconds (an integer).")
    if claims["op"] not in OPS:
        raise Rejection("malformed", f"op must be one of {', '.join(OPS)}.")
    _check_signal(claims)
    if claims["op"] == OP_ASSERT:
        _check_assertion(item, labels=labels, groups=groups)
    for name in ("content_type", "ref"):
        if name in claims and claims[name] is not None and not isinstance(claims[name], str):
            raise Rejection("malformed", f"{name} must be a string.")
    if claims.get("content_type") not in (None, *CONTENT_TYPES):
        raise Rejection("malformed", f"content_type must be one of {', '.join(CONTENT_TYPES)}.")
    if len(claims.get("ref") or "") > MAX_REF_LENGTH or not _storable(claims.get("ref") or ""):
        raise Rejection("malformed", f"ref is limited to {MAX_REF_LENGTH} characters, without NUL.")
    _check_time(claims["iat"], now)


def _check_signal(claims: dict[str, Any]) -> None:
    """A registered signal type, and a value in its canonical form."""
    if not isinstance(claims["signal_type"], str):
        raise Rejection("malformed", "signal_type must be a string.")
    try:
        signal_type = get_signal_type(claims["signal_type"])
    except UnknownSignalType:
        raise Rejection(
            "unknown_signal_type",
            f"Unknown signal type {claims['signal_type']!r}; see GET /api/v1/signal-types.",
        ) from None
    if not isinstance(claims["value"], str):
        raise Rejection("invalid_value", "value must be a string.")
    try:
        signal_type.validate(claims["value"])
    except InvalidSignalValue as exc:
        raise Rejection("invalid_value", exc.hint) from None


def _check_time(iat: int, now: int) -> None:
    """Within the clock skew tolerated ahead of us, and the acceptance window behind."""
    if iat > now + settings.CORDIALE_CLOCK_SKEW:
        raise Rejection(
            "clock_skew",
            f"iat is {iat - now} s in the future; at most {settings.CORDIALE_CLOCK_SKEW} s "
            "is tolerated. Check the signer's clock.",
        )
    if iat < now - settings.CORDIALE_MAX_STATEMENT_AGE:
        raise Rejection(
            "too_old",
            f"iat is older than the acceptance window of {settings.CORDIALE_MAX_STATEMENT_AGE} "
            "s; sign the statement again.",
        )


def _check_assertion(
    item: Item, *, labels: dict[str, LabelInfo], groups: dict[str, tuple[int, bool]]
) -> None:
    claims = item.claims
    given = claims.get("labels")
    if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
        raise Rejection("malformed", "labels must be a non-empty list of label slugs.")
    if len(set(given)) != len(given):
        raise Rejection("malformed", "labels must not repeat.")
    unknown = [slug for slug in given if slug not in labels or not labels[slug].active]
    if unknown:
        raise Rejection(
            "unknown_label",
            f"Unknown or inactive label(s): {', '.join(unknown)}; see GET /api/v1/labels.",
        )
    item.benign = _benign(given, labels)
    if claims.get("tlp") not in TLP_VALUES:
        raise Rejection("malformed", f"tlp must be one of {', '.join(TLP_VALUES)}.")
    audience = claims.get("audience")
    if audience == AUDIENCE_FORUM:
        item.audience_key = FORUM_AUDIENCE
    elif isinstance(audience, str) and (slug := audience_group_slug(audience)) is not None:
        group = groups.get(slug)
        if group is None or not group[1]:
            # One message for "no such group" and "not yours": membership of others'
            # groups is not the submitter's business.
            raise Rejection(
                "invalid_audience", f"{audience!r} is not a sharing group you belong to."
            )
        item.group_id = item.audience_key = group[0]
    else:
        raise Rejection("invalid_audience", "audience must be 'forum' or 'group:<slug>'.")
    exp = claims.get("exp")
    if exp is not None and (not _is_int(exp) or not claims["iat"] < exp <= MAX_TIMESTAMP):
        raise Rejection("malformed", "exp must be Unix seconds after iat, before the year 10000.")


def _benign(given: list[str], labels: dict[str, LabelInfo]) -> bool:
    """Whether the labels assert the value known benign; both sides at once is refused:
    a statement says either "this is TVEC" or "this is known benign", and a consumer
    acting on it (HMA, a match) must not have to guess which one wins."""
    benign = [slug for slug in given if labels[slug].benign]
    if benign and len(benign) < len(given):
        others = [slug for slug in given if not labels[slug].benign]
        raise Rejection(
            "mixed_label_kinds",
            f"Labels of kind 'benign' ({', '.join(benign)}) cannot be combined with TVEC "
            f"labels ({', '.join(others)}): a statement asserts a value either TVEC or known "
            "benign.",
        )
    return bool(benign)


def _context(member: Member) -> tuple[dict[str, LabelInfo], dict[str, tuple[int, bool]]]:
    labels = {
        slug: LabelInfo(active=active, benign=kind == Label.Kind.BENIGN)
        for slug, active, kind in Label.objects.values_list("slug", "active", "kind")
    }
    mine = set(member.groups.values_list("pk", flat=True))
    groups = {slug: (pk, pk in mine) for pk, slug in SharingGroup.objects.values_list("pk", "slug")}
    return labels, groups
