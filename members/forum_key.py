"""The forum's own Ed25519 key: what the forum itself vouches for, verifiable offline.

The server stores and forwards members' statements verbatim; it cannot sign for them.
What only the forum knows it signs with its own key, as compact JWS (``exchange.client.jws``)
with a ``typ`` saying what the token is:

- ``cordiale-receipt``: when a statement reached the forum (``exchange/receipts.py``),
  so that "a compromised key withdraws what was *received* after T" can be checked
  offline, whatever ``iat`` a thief wrote;
- ``cordiale-audit-checkpoint``: the head of the audit chain at a time
  (``members/checkpoints.py``), so that cutting or re-chaining the log is noticed.

The key is a PEM private key file (``CORDIALE_FORUM_KEY_FILE``), for example made with
``openssl genpkey -algorithm ed25519 -out forum-key.pem``, or the key itself in
``CORDIALE_FORUM_KEY`` (PEM, or the base64url 32-byte private key) where secrets come as
environment variables. One of them is required unless ``DJANGO_DEBUG`` is on; then a
key is generated on first use under ``var/`` with mode 0600 (``python manage.py
forum_key --generate PATH`` makes one for a deployment). Its public half is published in
``/api/v1/jwks`` with ``"forum": true``; the public keys of earlier forum keys
(``CORDIALE_FORUM_PREVIOUS_KEYS``, their ``x`` values or public PEM files) stay
published as ``retired`` so that old receipts and checkpoints still verify after a
rotation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from exchange.client import base64url, jws

DEBUG_KEY_NAME = "forum-key.pem"


@dataclass(frozen=True)
class ForumKey:
    private_key: Ed25519PrivateKey
    x: str
    kid: str

    def sign(self, claims: dict[str, Any], *, typ: str) -> str:
        return jws.sign_compact(claims, self.private_key, self.kid, typ=typ)


def forum_key_file_ensure(path: Path) -> None:
    """Create an Ed25519 PEM private key at ``path`` (mode 0600) unless one is there.

    Several processes may start at once (test workers, web processes of a demo): the
    key is written to a temporary file and linked into place, so exactly one wins and
    nobody reads a half-written file.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".forum-key-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.close(fd)
        # If another process was first, its key is the key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def forum_key_path() -> Path:
    configured = settings.CORDIALE_FORUM_KEY_FILE
    if configured:
        return Path(configured)
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            "CORDIALE_FORUM_KEY_FILE (or CORDIALE_FORUM_KEY) is required unless DJANGO_DEBUG."
        )
    return Path(settings.VAR_DIR) / DEBUG_KEY_NAME


def private_key_load(text: str, *, source: str) -> ForumKey:
    """A forum key from PEM text or from the base64url 32-byte private key (a JWK's
    ``d``: one line, which suits environment variables and secret stores)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            loaded = Ed25519PrivateKey.from_private_bytes(base64url.decode_canonical(text))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise ImproperlyConfigured(f"Cannot read the forum key from {source}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"The forum key in {source} is not an Ed25519 private key.")
    x = jws.public_key_x(loaded.public_key())
    return ForumKey(private_key=loaded, x=x, kid=jws.jwk_thumbprint(x))


@lru_cache(maxsize=1)
def forum_key() -> ForumKey:
    """The forum's signing key, loaded once per process."""
    if settings.CORDIALE_FORUM_KEY:
        return private_key_load(settings.CORDIALE_FORUM_KEY, source="CORDIALE_FORUM_KEY")
    path = forum_key_path()
    if not settings.CORDIALE_FORUM_KEY_FILE:
        forum_key_file_ensure(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeError) as exc:
        raise ImproperlyConfigured(f"Cannot read the forum key {path}: {exc}") from exc
    return private_key_load(text, source=str(path))


def _previous_xs() -> list[str]:
    out = []
    for entry in settings.CORDIALE_FORUM_PREVIOUS_KEYS:
        text = entry.strip()
        if not text:
            continue
        if not text.startswith("-----") and Path(text).is_file():
            text = Path(text).read_text()
        try:
            out.append(jws.load_public_key(text))
        except jws.InvalidKey as exc:
            raise ImproperlyConfigured(f"CORDIALE_FORUM_PREVIOUS_KEYS: {exc}") from exc
    return out


def forum_jwks_keys() -> list[dict[str, Any]]:
    """The forum's public keys for the JWKS: the current one, then earlier ones."""
    current = forum_key()
    keys = [{**jws.public_jwk(current.x), "forum": True, "status": "active"}]
    for x in _previous_xs():
        if x != current.x:
            keys.append({**jws.public_jwk(x), "forum": True, "status": "retired"})
    return keys


def forum_public_keys() -> dict[str, str]:
    """``kid -> x`` of every forum key, current and previous, for checking tokens."""
    return {key["kid"]: key["x"] for key in forum_jwks_keys()}


def forum_token_verify(token: str, *, typ: str) -> dict[str, Any] | None:
    """The claims of a forum-signed token of type ``typ``, or None if it does not verify."""
    try:
        parsed = jws.parse_compact(token)
    except jws.MalformedJWS:
        return None
    x = forum_public_keys().get(parsed.kid)
    if x is None or parsed.header.get("typ") != typ:
        return None
    if not jws.verify(parsed, jws.public_key_from_x(x)):
        return None
    return parsed.claims


def forum_key_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """System check: the forum key loads (run by ``migrate`` and ``check``), so that a
    deployment without one fails before it serves, not at its first submission."""
    try:
        forum_jwks_keys()
    except (ImproperlyConfigured, OSError) as exc:
        return [
            checks.Error(
                str(exc),
                hint="Set CORDIALE_FORUM_KEY_FILE to an Ed25519 PEM private key, e.g. made "
                "with: python manage.py forum_key --generate forum-key.pem",
                id="cordiale.E001",
            )
        ]
    return []


@receiver(setting_changed)
def _reload_after_settings_change(*, setting: str, **kwargs: Any) -> None:
    # Tests swap keys with override_settings; nothing else changes settings at run time.
    if setting in ("CORDIALE_FORUM_KEY", "CORDIALE_FORUM_KEY_FILE", "DEBUG"):
        forum_key.cache_clear()
