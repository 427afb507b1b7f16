"""Test data built through the real services, so audit entries and feed rows exist too."""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import factory
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from exchange.client import jws
from members.models import Member, SharingGroup, SigningKey
from members.services import (
    api_key_issue,
    member_create,
    sharing_group_create,
    signing_key_register,
)

ACTOR = "test"
_slugs = itertools.count(1)


class MemberFactory(factory.Factory):
    """``MemberFactory(slug=..., status=...)``: a member created by ``member_create``."""

    class Meta:
        model = Member

    slug = factory.LazyFunction(lambda: f"member-{next(_slugs)}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    status = Member.Status.ACTIVE

    @classmethod
    def _create(cls, model_class: type[Member], **kwargs: Any) -> Member:
        return member_create(actor=ACTOR, **kwargs)


@dataclass
class Party:
    """A member as its engineers see it: an API client and a signing key."""

    member: Member
    api_key: str
    private_key: Ed25519PrivateKey
    kid: str
    client: APIClient = field(default_factory=APIClient)

    @property
    def slug(self) -> str:
        return self.member.slug

    def claims(
        self,
        signal_type: str,
        value: str,
        *,
        op: str = "assert",
        labels: list[str] | None = None,
        tlp: str = "green",
        audience: str = "forum",
        iat: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.slug,
            "iat": int(time.time()) if iat is None else iat,
            "jti": uuid.uuid4().hex,
            "op": op,
            "signal_type": signal_type,
            "value": value,
        }
        if op == "assert":
            claims.update(labels=labels or ["recruitment"], tlp=tlp, audience=audience)
        claims.update(extra)
        return claims

    def sign(self, claims: dict[str, Any], key: Ed25519PrivateKey | None = None) -> str:
        private = key or self.private_key
        kid = jws.jwk_thumbprint(jws.public_key_x(private.public_key()))
        return jws.sign_compact(claims, private, kid)

    def statement(self, signal_type: str, value: str, **kwargs: Any) -> str:
        return self.sign(self.claims(signal_type, value, **kwargs))

    def submit(self, *tokens: str) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/statements", {"statements": list(tokens)}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params)


def make_party(slug: str | None = None, *, scopes: list[str] | None = None) -> Party:
    member = MemberFactory(**({"slug": slug} if slug else {}))
    _, secret = api_key_issue(member=member, scopes=scopes, actor=ACTOR)
    private = Ed25519PrivateKey.generate()
    key = signing_key_register(
        member=member, public_key=jws.public_key_x(private.public_key()), actor=ACTOR
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return Party(member=member, api_key=secret, private_key=private, kid=key.kid, client=client)


def make_group(slug: str, *parties: Party) -> SharingGroup:
    return sharing_group_create(slug=slug, members=[p.member for p in parties], actor=ACTOR)


def random_hex(n_chars: int) -> str:
    return uuid.uuid4().hex * (n_chars // 32) + uuid.uuid4().hex[: n_chars % 32]


def pdq() -> str:
    return (uuid.uuid4().hex + uuid.uuid4().hex)[:64]


def key_of(party: Party) -> SigningKey:
    return SigningKey.objects.get(kid=party.kid)


def make_staff(username: str = "root", password: str = "pw") -> tuple[Any, Any]:
    """A superuser with a confirmed TOTP device, as ``enrol_totp`` leaves one."""
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.create_superuser(username, f"{username}@example.org", password)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device


def verified_admin_client(user: Any, device: Any) -> Any:
    """A test client signed in as ``user`` with ``device`` verified, like after the
    password-and-code sign-in (which tests/admin/test_security.py drives for real)."""
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client
