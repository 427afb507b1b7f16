"""Creating a member, group or signing key that exists already is a conflict (409),
also when two creates race: one wins, the other gets the conflict, never a 500."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection

from exchange.client import jws
from forum.errors import ConflictError
from members.models import Member, SharingGroup, SigningKey
from members.services import member_create, sharing_group_create, signing_key_register


def _new_x() -> str:
    return jws.public_key_x(Ed25519PrivateKey.generate().public_key())


@pytest.mark.django_db
def test_existing_slug_or_key_is_a_conflict_and_changes_nothing() -> None:
    """Creating a member, signing key or sharing group that exists is a ConflictError with its code,
    and the existing row is left as it was."""
    acme = member_create(slug="acme", name="Acme", actor="t")
    x = _new_x()
    signing_key_register(member=acme, public_key=x, actor="t")
    sharing_group_create(slug="g", actor="t")
    for create, code in (
        (lambda: member_create(slug="acme", name="Other", actor="t"), "member_exists"),
        (lambda: signing_key_register(member=acme, public_key=x, actor="t"), "key_exists"),
        (lambda: sharing_group_create(slug="g", name="Other", actor="t"), "group_exists"),
    ):
        with pytest.raises(ConflictError) as raised:
            create()
        assert raised.value.code == code
    assert Member.objects.get().name == "Acme"
    assert SigningKey.objects.count() == 1
    assert SharingGroup.objects.get().name == "g"


def _race(create: Callable[[], Any]) -> list[str]:
    """Run ``create`` in two threads at once; what each got."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(5)
            create()
            outcome = "created"
        except ConflictError:
            outcome = "conflict"
        except Exception as exc:  # the failure this test hunts for
            outcome = type(exc).__name__
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return sorted(outcomes)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_creates_one_wins_the_other_conflicts() -> None:
    """Of two concurrent creations of the same member, group or signing key, one creates it and the
    other gets a conflict, not a database error."""
    acme = member_create(slug="acme", name="Acme", actor="t")
    x = _new_x()
    for _ in range(5):  # a few rounds: the interleaving differs from run to run
        slug = f"m{Member.objects.count()}"
        assert _race(lambda s=slug: member_create(slug=s, name=s, actor="t")) == [
            "conflict",
            "created",
        ]
        group = f"g{SharingGroup.objects.count()}"
        assert _race(lambda g=group: sharing_group_create(slug=g, actor="t")) == [
            "conflict",
            "created",
        ]
    assert _race(lambda: signing_key_register(member=acme, public_key=x, actor="t")) == [
        "conflict",
        "created",
    ]
