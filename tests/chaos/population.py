"""The campaign's members: created through the services against the campaign's own
database, each with an all-scope API key and a signing key, spread over sharing groups
so that a leak between groups shows."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ACTOR = "chaos-campaign"


@dataclass
class MemberSpec:
    """A member as its engineers hold it: slug, API key, private key, its sharing group."""

    slug: str
    api_key: str
    private_key: Ed25519PrivateKey
    group: str
    endpoints: list[int] = field(default_factory=list)

    @property
    def audiences(self) -> set[str]:
        """The audiences whose signals this member may see (groups never change here)."""
        return {"forum", f"group:{self.group}"}


def django_setup(env: dict[str, str]) -> None:
    """Configure Django in this process as the cluster's processes are (same database,
    same secret key, which encrypts webhook secrets), for setup and checks."""
    os.environ.update(env)
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def members_create(count: int, groups: int) -> list[MemberSpec]:
    """``count`` active members, member i in group ``g<i mod groups>``."""
    from exchange.client import jws
    from members.models import Member
    from members.services import (
        api_key_issue,
        member_create,
        sharing_group_create,
        signing_key_register,
    )

    specs: list[MemberSpec] = []
    by_group: dict[str, list[Member]] = {}
    for i in range(count):
        slug = f"chaos-{i:02d}"
        member = member_create(
            slug=slug, name=f"Chaos {i}", status=Member.Status.ACTIVE, actor=ACTOR
        )
        _, secret = api_key_issue(member=member, actor=ACTOR)
        private = Ed25519PrivateKey.generate()
        x = jws.public_key_x(private.public_key())
        signing_key_register(member=member, public_key=x, actor=ACTOR)
        group = f"g{i % groups}"
        by_group.setdefault(group, []).append(member)
        specs.append(MemberSpec(slug, secret, private, group))
    for group, members in by_group.items():
        sharing_group_create(slug=group, members=members, actor=ACTOR)
    return specs
