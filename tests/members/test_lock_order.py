"""Lifecycle actions that take both the audit chain's lock and the feed's lock take them
in the same order, so two of them at once both commit.

Approving an application writes its audit entries first and opens the new member's feed
periods after; expelling a member, revoking a compromised key or removing a member from
a group wrote feed rows first and the audit entry after. Run together, each held one
lock and waited for the other until PostgreSQL aborted one of them as a deadlock.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection

from exchange.client import jws
from members.applications import application_approve, application_submit
from members.models import Member, MembershipApplication
from members.services import member_set_status, sharing_group_set_members, signing_key_revoke
from tests.factories import ACTOR, Party, key_of, make_group, make_party, pdq

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Wherever the two locks are called from by name.
_LOCK_HOMES = ("members.audit", "exchange.feed", "exchange.services.membership")
_LOCKS = ("audit_chain_lock", "feed_lock")


class Rendezvous:
    """Holds each thread just after it took its first lock of the round, until the other
    thread has taken its own first lock too (or could not: then it waits on ours)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.barrier = threading.Barrier(2)

    def round(self) -> None:
        self.barrier = threading.Barrier(2)

    def wrap(self, take: Callable[[], None]) -> Callable[[], None]:
        def taken() -> None:
            take()
            if getattr(self.local, "held", True):
                return
            self.local.held = True
            # Broken: the other thread waits for the lock we hold, so the order is one.
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=0.5)

        return taken

    def thread(self, work: Callable[[], Any], out: dict[str, Any], name: str) -> threading.Thread:
        def run() -> None:
            self.local.held = False
            try:
                out[name] = work()
            except Exception as exc:
                out[name] = exc
            finally:
                connection.close()

        return threading.Thread(target=run, name=name)


@pytest.fixture
def rendezvous(monkeypatch: pytest.MonkeyPatch, labels: None) -> Rendezvous:
    """Both locks, wherever they are called from, pass through the rendezvous."""
    meeting = Rendezvous()
    for home in _LOCK_HOMES:
        module = importlib.import_module(home)
        for name in _LOCKS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, meeting.wrap(getattr(module, name)))
    return meeting


def _application(slug: str) -> MembershipApplication:
    return application_submit(
        application=MembershipApplication(
            organisation_name=slug.title(),
            slug=slug,
            contact_name="Ops",
            contact_email=f"ops@{slug}.example",
            bans_terrorist_content=True,
            publishes_transparency_report=True,
            human_rights_commitment=True,
            public_key=jws.public_key_x(Ed25519PrivateKey.generate().public_key()),
        ),
        actor=ACTOR,
    )


def _expel(party: Party) -> Callable[[], Any]:
    return lambda: member_set_status(
        member=party.member, status=Member.Status.EXPELLED, actor=ACTOR
    )


def _compromise(party: Party) -> Callable[[], Any]:
    since = datetime.fromtimestamp(int(time.time()) - 3600, UTC)
    key = key_of(party)
    return lambda: signing_key_revoke(key=key, compromised_since=since, actor=ACTOR)


def _leave_group(party: Party) -> Callable[[], Any]:
    group = make_group(f"group-{party.slug}", party, make_party())
    others = [m for m in group.members.all() if m.pk != party.member.pk]
    return lambda: sharing_group_set_members(group=group, members=others, actor=ACTOR)


@pytest.mark.parametrize("action", [_expel, _compromise, _leave_group])
def test_approving_during_another_lifecycle_action_both_commit(
    rendezvous: Rendezvous, action: Callable[[Party], Callable[[], Any]]
) -> None:
    """Round after round, an application is approved while another member (with
    statements) is expelled, has its key revoked as compromised or leaves a group, each
    in its own connection: both commit."""
    now = int(time.time())
    for n in range(4):
        other = make_party(f"other-{n}")
        other.submit(*(other.statement("pdq", pdq(), iat=now - 10) for _ in range(3)))
        application = _application(f"joining-{n}")
        approve = functools.partial(application_approve, application=application, actor=ACTOR)
        second = action(other)
        rendezvous.round()
        out: dict[str, Any] = {}
        threads = [
            rendezvous.thread(approve, out, "approve"),
            rendezvous.thread(second, out, "other"),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not isinstance(out["approve"], Exception), out["approve"]
        assert not isinstance(out["other"], Exception), out["other"]
        assert Member.objects.get(slug=f"joining-{n}").status == Member.Status.ACTIVE
