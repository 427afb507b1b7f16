"""
Who did it: the ``actor`` of an audit entry (``members.models.AuditEntry``), spelled here
and nowhere else.

- ``admin:<username>``: a staff user in the admin console (``actor_for_user``), also for
  signing in and out;
- ``member:<slug>:<key prefix>``: a member acting through one of its API keys
  (``actor_for_api_key``);
- ``anonymous``: someone not signed in (a failed or locked-out admin sign-in);
- ``cli``: an operator's management command; ``demo``: the ``demo`` command;
- ``system``: the server on its own (a webhook endpoint disabled after failing too long).

The strings are part of the audit log's format (``docs/admin.md``): entries are hashed
into the audit chain as written, so a spelling never changes once entries carry it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from members.models import ApiKey, Member

ANONYMOUS_ACTOR = "anonymous"
COMMAND_ACTOR = "cli"
DEMO_ACTOR = "demo"
SYSTEM_ACTOR = "system"


class _User(Protocol):
    def get_username(self) -> str: ...


def actor_for_user(user: _User) -> str:
    """A staff user of the admin console."""
    return f"admin:{user.get_username()}"


def actor_for_api_key(member: Member, api_key: ApiKey) -> str:
    """A member acting through ``api_key``, one of its keys."""
    return f"member:{member.slug}:{api_key.prefix}"
