"""
Base64url without padding (RFC 4648 section 5, as RFC 7515 section 2 uses it): the one
encoding of bytes into URL-safe text that the server and the member-side client share.

``encode(b"\\xfb\\xff")`` is ``"-_8"``: the alphabet is ``A-Z a-z 0-9 - _`` and the ``=``
padding is left off, so a value fits a URL, a header or a JSON string as it is.

Two decoders, for two kinds of input:

- ``decode_canonical`` for signed data (JWS segments, keys): exactly one spelling per byte
  string is accepted (no padding, no characters outside the alphabet, no impossible
  length, no non-zero unused bits), so one signed statement has one token;
- ``decode`` for opaque values this server issued and gets back (feed cursors): padding is
  restored and the standard decoder decides, as it always has.

This module imports nothing from Django: the client imports it.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET_RE = re.compile(r"[A-Za-z0-9_-]*")


class NotCanonical(ValueError):
    """Text that is not the canonical unpadded base64url of any bytes; the message says why."""


def encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; raises ``binascii.Error`` if it is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_canonical(text: str) -> bytes:
    """Decode canonical unpadded base64url; anything else raises ``NotCanonical``."""
    if isinstance(text, str) and text.endswith("="):
        raise NotCanonical("base64url in a JWS has no '=' padding")
    if not isinstance(text, str) or not _ALPHABET_RE.fullmatch(text):
        raise NotCanonical("base64url segment has a character outside A-Z a-z 0-9 - _")
    if len(text) % 4 == 1:
        raise NotCanonical("base64url segment has an impossible length")
    try:
        data = decode(text)
    except binascii.Error as exc:  # pragma: no cover - the checks above exclude it
        raise NotCanonical(f"invalid base64url: {exc}") from exc
    # Unused low bits must be zero, otherwise several spellings decode to the same bytes.
    if encode(data) != text:
        raise NotCanonical("base64url segment is not canonical (non-zero trailing bits)")
    return data
