"""
Building and signing statements, and the member's Ed25519 key file.

A statement's claims follow docs/api.md ("Statements: the signed format").
``build_statement`` turns reasonable input into the canonical value (the server never
rewrites a signed value, so an unnormalised one would be refused) and checks the claims
the server would refuse anyway, so that a bad row fails here with a clear message instead
of in a batch.

The key file is the private key as unencrypted PKCS#8 PEM, readable by its owner only; the
``kid`` is the RFC 7638 thumbprint of the public JWK.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import jws
from exchange.client.signal_types import InvalidSignalValue, UnknownSignalType, get_signal_type
from exchange.client.statement_format import (
    AUDIENCE_FORUM,
    CONTENT_TYPES,
    MAX_JTI_LENGTH,
    OP_ADD_KEY,
    OP_ASSERT,
    OPS,
    TLP_VALUES,
    audience_group_slug,
)


class StatementError(ValueError):
    """Input that cannot become a valid statement; ``code`` mirrors the server's codes."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def build_statement(
    *,
    issuer: str,
    signal_type: str,
    value: str,
    op: str = OP_ASSERT,
    labels: Iterable[str] | None = None,
    tlp: str | None = None,
    audience: str | None = None,
    exp: int | None = None,
    content_type: str | None = None,
    ref: str | None = None,
    iat: int | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    """The claims of a statement, with the value normalised; raise StatementError if invalid."""
    try:
        canonical = get_signal_type(signal_type).normalize(value)
    except UnknownSignalType as exc:
        raise StatementError(exc.code, str(exc)) from exc
    except InvalidSignalValue as exc:
        raise StatementError(exc.code, f"{signal_type} value {exc.hint}") from exc
    if op not in OPS:
        raise StatementError("malformed", f"op must be one of {', '.join(OPS)}; got {op!r}")
    jti = jti if jti is not None else uuid.uuid4().hex
    if not jti or len(jti) > MAX_JTI_LENGTH:
        raise StatementError("malformed", f"jti must be 1 to {MAX_JTI_LENGTH} characters")
    claims: dict[str, Any] = {
        "iss": issuer,
        "iat": int(iat if iat is not None else time.time()),
        "jti": jti,
        "op": op,
        "signal_type": signal_type,
        "value": canonical,
    }
    if op == OP_ASSERT:
        claims.update(_assertion_claims(labels, tlp, audience, exp))
    if content_type:
        if content_type not in CONTENT_TYPES:
            raise StatementError(
                "malformed", f"content_type must be one of {', '.join(CONTENT_TYPES)}"
            )
        claims["content_type"] = content_type
    if ref:
        claims["ref"] = ref
    return claims


def _assertion_claims(
    labels: Iterable[str] | None, tlp: str | None, audience: str | None, exp: int | None
) -> dict[str, Any]:
    label_list = [label.strip() for label in labels or () if label.strip()]
    if not label_list:
        raise StatementError("unknown_label", "an assertion needs at least one label")
    if tlp not in TLP_VALUES:
        raise StatementError(
            "malformed", f"tlp must be one of {', '.join(TLP_VALUES)}; got {tlp!r}"
        )
    if audience != AUDIENCE_FORUM and not (audience and audience_group_slug(audience)):
        raise StatementError(
            "invalid_audience", f"audience must be 'forum' or 'group:<slug>'; got {audience!r}"
        )
    claims: dict[str, Any] = {"labels": label_list, "tlp": tlp, "audience": audience}
    if exp is not None:
        claims["exp"] = int(exp)
    return claims


def key_id(private_key: Ed25519PrivateKey) -> str:
    """The ``kid`` of the key: the RFC 7638 thumbprint of its public JWK."""
    return jws.jwk_thumbprint(jws.public_key_x(private_key.public_key()))


def sign_statement(claims: dict[str, Any], private_key: Ed25519PrivateKey) -> str:
    """The compact JWS of ``claims``; Ed25519 is deterministic, so equal claims sign equal."""
    return jws.sign_compact(claims, private_key, key_id(private_key))


def key_proof(*, member: str, new_x: str, private_key: Ed25519PrivateKey) -> str:
    """A proof, signed with the member's current key, that the key with public value
    ``new_x`` is the member's too: registered with it, the new key is active at once."""
    claims = {
        "iss": member,
        "iat": int(time.time()),
        "jti": uuid.uuid4().hex,
        "op": OP_ADD_KEY,
        "kid": jws.jwk_thumbprint(new_x),
    }
    return jws.sign_compact(claims, private_key, key_id(private_key))


def public_jwk_path(private_key_path: str | os.PathLike[str]) -> Path:
    """Where ``keygen`` writes the public JWK of the key at ``private_key_path``:
    ``member.pem`` → ``member.pub.jwk``."""
    return Path(private_key_path).with_suffix(".pub.jwk")


def generate_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Write a new Ed25519 private key to ``path`` (mode 0600, never overwriting a file)."""
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return private_key


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a PEM file; raise StatementError if it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StatementError("key_unreadable", f"cannot read signing key {path}: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise StatementError("invalid_key", f"{path} is not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StatementError(
            "invalid_key", f"{path} holds a {type(key).__name__}, not an Ed25519 key"
        )
    return key
