"""The audit actor strings: the spellings the audit log has always carried."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from forum import actors


def test_a_staff_user_acts_as_admin_and_username() -> None:
    """An admin console user is ``admin:<username>``."""
    user = SimpleNamespace(get_username=lambda: "ana")
    assert actors.actor_for_user(user) == "admin:ana"


def test_a_member_acts_through_its_key_prefix() -> None:
    """A member through an API key is ``member:<slug>:<key prefix>``."""
    member = cast(Any, SimpleNamespace(slug="acme"))
    api_key = cast(Any, SimpleNamespace(prefix="k3y"))
    assert actors.actor_for_api_key(member, api_key) == "member:acme:k3y"


def test_the_fixed_actors_keep_their_spelling() -> None:
    """Commands, the demo, the server itself and the signed-out have fixed names."""
    assert (
        actors.COMMAND_ACTOR,
        actors.DEMO_ACTOR,
        actors.SYSTEM_ACTOR,
        actors.ANONYMOUS_ACTOR,
    ) == ("cli", "demo", "system", "anonymous")
