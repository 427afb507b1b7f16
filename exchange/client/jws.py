"""
Statements as JWS: compact serialisation (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037).

A token is three base64url segments (RFC 4648 section 5, without ``=`` padding) joined by
dots::

    BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature)

For example, signing ``{"iss":"acme","op":"retract","jti":"1"}`` with the private key of
RFC 8037 appendix A (whose thumbprint is the ``kid``) gives, one segment per line::

    header     {"alg":"EdDSA","kid":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}
    segment 1  eyJhbGciOiJFZERTQSIsImtpZCI6ImtQcktfcW14VldhWVZBOXd3QkY2SXVvM3ZWeno3VHhI
               Q1R3WEJ5Z3JTNGsifQ
    segment 2  eyJpc3MiOiJhY21lIiwib3AiOiJyZXRyYWN0IiwianRpIjoiMSJ9
    segment 3  3ySAPYf3Dv2vNFoi71Ky1BtCbpFaO9Wt_IxgMEHemB5HctQGWjp95SPWGrpuk1aZutwV0DKzMIx-
               WNbzAuIyAQ

The header is a JSON object with ``alg`` exactly ``"EdDSA"`` and ``kid``, the RFC 7638
thumbprint of the signer's public JWK (``jwk_thumbprint``); ``typ`` is optional. The payload
is a JSON object of claims. The signature is the 64-byte Ed25519 signature of the ASCII bytes
``header-segment "." payload-segment``. We write JSON compactly (no spaces) in UTF-8, but
verify the segments as they were sent: the server stores and forwards the token verbatim.

Parsing is deliberately stricter than RFC 7515 allows in places where leniency only helps an
attacker or hides a client bug:

- one algorithm; ``none``, HMAC and everything else are refused before any key is looked up;
- ``crit`` and ``b64`` are refused, since we understand no extensions (RFC 7515 section
  4.1.11 requires rejecting unknown critical ones, and we know of none we need);
- headers that carry or point to a key (``jwk``, ``jku``, ``x5u``, ``x5c``) are refused: the
  verifying key always comes from the forum's key registry by ``kid``, and a token that
  brings its own key invites a verifier somewhere downstream to trust it;
- JSON with duplicate member names, ``NaN`` or ``Infinity``, or not UTF-8, is refused, so
  that every JSON parser reads the same claims the server checked; so is JSON nested
  deeper than ``json_input.MAX_DEPTH`` levels (no claim needs more than two);
- base64url must be canonical (no padding, no stray bits), so one signed statement has
  exactly one token spelling;
- tokens are at most ``MAX_TOKEN_LENGTH`` characters, unless the caller allows more (up to
  ``MAX_LONG_TOKEN_LENGTH``: statements about signal types with long values, such as an
  hour of vpdq frames, ~400 kB signed; see ``SignalType.max_token_length``).

Unknown, non-critical header members are ignored as RFC 7515 requires.

This module imports nothing from Django: the member-side client uses it to sign.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exchange.client import base64url, json_input

ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 16 * 1024
MAX_LONG_TOKEN_LENGTH = 512 * 1024
SIGNATURE_LENGTH = 64
PUBLIC_KEY_LENGTH = 32

_FORBIDDEN_HEADERS = {
    "crit": "no JOSE extensions are understood",
    "b64": "unencoded payloads (RFC 7797) are not accepted",
    "jwk": "the key comes from the forum's registry by kid, never from the token",
    "jku": "the key comes from the forum's registry by kid, never from the token",
    "x5u": "the key comes from the forum's registry by kid, never from the token",
    "x5c": "the key comes from the forum's registry by kid, never from the token",
}


class MalformedJWS(ValueError):
    """The token is not a compact JWS this module accepts; ``detail`` says why."""

    code = "malformed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedAlgorithm(MalformedJWS):
    """The header names an algorithm other than EdDSA (including ``none``)."""


class InvalidKey(ValueError):
    """Text that is not an Ed25519 public key in a form we accept."""


@dataclass(frozen=True, slots=True)
class ParsedJWS:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    kid: str


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64url.encode(data)


def b64url_decode(s: str) -> bytes:
    """Decode canonical unpadded base64url; anything else raises MalformedJWS."""
    try:
        return base64url.decode_canonical(s)
    except base64url.NotCanonical as exc:
        raise MalformedJWS(str(exc)) from None


def jwk_thumbprint(x: str) -> str:
    """RFC 7638 thumbprint of the Ed25519 OKP key with public value ``x`` (RFC 8037 A.3)."""
    _decode_x(x)
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def public_key_x(public_key: Ed25519PublicKey) -> str:
    """The JWK ``x`` member: the raw 32-byte public key in base64url."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64url_encode(raw)


@lru_cache(maxsize=4096)
def public_key_from_x(x: str) -> Ed25519PublicKey:
    """The key for a JWK ``x``; cached because the server verifies many statements per key."""
    return Ed25519PublicKey.from_public_bytes(_decode_x(x))


def load_public_key(text: str) -> str:
    """Return ``x`` for an Ed25519 public key given as PEM, as a public JWK (JSON text)
    or as base64url ``x``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            jwk = json_input.loads(text)
        except ValueError as exc:
            raise InvalidKey(f"not a readable JWK: {exc}") from exc
        return x_from_jwk(jwk)
    if text.startswith("-----BEGIN"):
        first_line = text.splitlines()[0]
        if "PRIVATE" in first_line:
            raise InvalidKey(
                "this is a private key; give the public key "
                "(openssl pkey -in key.pem -pubout) and keep the private key to yourself"
            )
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, TypeError, UnicodeError) as exc:
            raise InvalidKey(f"not a readable PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidKey(f"expected an Ed25519 public key, got {type(key).__name__}")
        return public_key_x(key)
    public_key_from_x(text)
    return text


def x_from_jwk(jwk: Any) -> str:
    """``x`` of a public Ed25519 JWK (``{"kty": "OKP", "crv": "Ed25519", "x": ...}``).

    A private JWK (with ``d``) is refused so that it is never stored or logged, and a
    ``kid``, if given, must be the key's RFC 7638 thumbprint.
    """
    if not isinstance(jwk, dict):
        raise InvalidKey("a JWK must be a JSON object")
    if "d" in jwk:
        raise InvalidKey("this JWK holds a private key (d); give the public JWK only")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise InvalidKey('expected an Ed25519 key: "kty": "OKP", "crv": "Ed25519"')
    x = jwk.get("x")
    if not isinstance(x, str):
        raise InvalidKey("the JWK has no x")
    kid = jwk_thumbprint(x)
    if "kid" in jwk and jwk["kid"] != kid:
        raise InvalidKey(f"the JWK's kid {jwk['kid']!r} is not its thumbprint {kid}")
    return x


def public_jwk(x: str) -> dict[str, str]:
    """The public JWK published in the forum's JWKS for key ``x``."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": jwk_thumbprint(x),
        "alg": ALGORITHM,
        "use": "sig",
    }


def sign_compact(
    claims: dict[str, Any], private_key: Ed25519PrivateKey, kid: str, typ: str | None = None
) -> str:
    """Sign ``claims`` as a compact JWS with header ``{"alg":"EdDSA","kid":...}``."""
    header: dict[str, Any] = {"alg": ALGORITHM, "kid": kid}
    if typ is not None:
        header["typ"] = typ
    return sign_bytes(header, _dump_json(claims), private_key)


def sign_bytes(header: dict[str, Any], payload: bytes, private_key: Ed25519PrivateKey) -> str:
    """Sign an arbitrary payload under ``header``; ``sign_compact`` is the usual entry point."""
    signing_input = b64url_encode(_dump_json(header)) + "." + b64url_encode(payload)
    signature = private_key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)


def parse_compact(token: str, *, max_length: int = MAX_TOKEN_LENGTH) -> ParsedJWS:
    """Split and decode a compact JWS without verifying it; raise MalformedJWS if invalid."""
    if not isinstance(token, str):
        raise MalformedJWS(f"a JWS must be a string, not {type(token).__name__}")
    if len(token) > max_length:
        raise MalformedJWS(f"JWS longer than {max_length} characters")
    if not token.isascii():
        raise MalformedJWS("JWS contains non-ASCII characters")
    segments = token.split(".")
    if len(segments) != 3:
        raise MalformedJWS(f"compact JWS has 3 dot-separated segments, this has {len(segments)}")
    header_segment, payload_segment, signature_segment = segments
    for name, segment in zip(("header", "payload", "signature"), segments, strict=True):
        if not segment:
            raise MalformedJWS(f"the {name} segment is empty")
    header = _load_json_object(b64url_decode(header_segment), "header")
    kid = _check_header(header)
    claims = _load_json_object(b64url_decode(payload_segment), "payload")
    signature = b64url_decode(signature_segment)
    if len(signature) != SIGNATURE_LENGTH:
        raise MalformedJWS(
            f"an Ed25519 signature is {SIGNATURE_LENGTH} bytes, this one {len(signature)}"
        )
    return ParsedJWS(
        header=header,
        claims=claims,
        signing_input=f"{header_segment}.{payload_segment}".encode("ascii"),
        signature=signature,
        kid=kid,
    )


def verify(parsed: ParsedJWS, public_key: Ed25519PublicKey) -> bool:
    """Whether ``parsed`` carries a valid signature by ``public_key``."""
    return verify_signature(parsed.signing_input, parsed.signature, public_key)


def verify_signature(signing_input: bytes, signature: bytes, public_key: Ed25519PublicKey) -> bool:
    """The Ed25519 check itself, for callers that split the token themselves."""
    try:
        public_key.verify(signature, signing_input)
    except InvalidSignature:
        return False
    return True


def _check_header(header: dict[str, Any]) -> str:
    """Enforce our header policy; return the kid."""
    if "alg" not in header:
        raise MalformedJWS('the header has no "alg"')
    alg = header["alg"]
    if alg != ALGORITHM:
        raise UnsupportedAlgorithm(f'"alg" must be "{ALGORITHM}"; got {json.dumps(alg)[:40]}')
    for name, reason in _FORBIDDEN_HEADERS.items():
        if name in header:
            raise MalformedJWS(f'the header member "{name}" is not accepted: {reason}')
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise MalformedJWS('the header needs "kid", the thumbprint of the signing key')
    if "typ" in header and not isinstance(header["typ"], str):
        raise MalformedJWS('"typ" must be a string')
    return kid


def _load_json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
        value = json_input.loads_with(
            text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedJWS(f"the {what} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedJWS(f"the {what} must be a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member name {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _dump_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _decode_x(x: str) -> bytes:
    try:
        raw = b64url_decode(x)
    except MalformedJWS as exc:
        raise InvalidKey(f"x is not base64url: {exc.detail}") from exc
    if len(raw) != PUBLIC_KEY_LENGTH:
        raise InvalidKey(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes, got {len(raw)}")
    return raw
