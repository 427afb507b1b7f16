"""Webhook signing secrets, and how they are kept at rest.

A secret is 32 random bytes, shown to the member once as ``whsec_<base64>`` (the
Standard Webhooks form). The server must be able to sign with it, so it cannot keep a
one-way hash as it does for API keys; it keeps a Fernet token of it instead::

    secret_encrypted = Fernet(key).encrypt(b"whsec_...")

The Fernet key is derived from Django's ``SECRET_KEY`` (HKDF-SHA256, a fixed label), so a
database dump alone does not reveal the secrets. ``SECRET_KEY_FALLBACKS`` are tried when
decrypting, so rotating ``SECRET_KEY`` the Django way keeps endpoints working; losing
``SECRET_KEY`` altogether means members must rotate their webhook secrets.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
_HKDF_INFO = b"cordiale webhook secret encryption v1"


def _fernet_key(secret_key: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


def _fernet() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise RuntimeError(
            "A webhook secret cannot be decrypted: SECRET_KEY changed without keeping the "
            "old one in SECRET_KEY_FALLBACKS. The member must rotate the secret."
        ) from None
