"""Revoking a compromised key while a batch signed with it is being stored.

The batch checked the key while it was still active; if the revocation withdrew what
was committed at that moment and the batch committed just after, its statements
(received after the compromise time) would stay visible forever, although every
receipt says they must go. The revocation therefore waits for the member's batches in
flight and withdraws them too.
"""

from __future__ import annotations

import importlib
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

import exchange.services.statements as statements_module
from exchange.models import Label, Statement
from exchange.services.statements import statement_submit
from members.models import SigningKey
from members.services import signing_key_revoke
from tests.factories import ACTOR, make_party, pdq

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def labels() -> None:
    """Transactional tests truncate tables; put the seeded taxonomy back."""
    seed = importlib.import_module("exchange.migrations.0002_seed_labels")
    for slug, name, kind, description in seed.LABELS:
        Label.objects.get_or_create(
            slug=slug, defaults={"name": name, "kind": kind, "description": description}
        )


def test_revocation_waits_for_a_batch_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement whose batch passed the key check before the revocation, and commits
    while the revocation runs, is withdrawn like any other received after T."""
    acme, globex = make_party("acme"), make_party("globex")
    value = pdq()
    token = acme.statement("pdq", value)
    compromised_since = datetime.fromtimestamp(int(time.time()) - 60, UTC)
    checked, release = threading.Event(), threading.Event()
    original = statements_module._known_jtis

    def paused(member_id: int, jtis: list[str]) -> dict[str, str]:
        # Inside the batch's transaction, after it read the key as active.
        checked.set()
        release.wait(10)
        return original(member_id, jtis)

    monkeypatch.setattr(statements_module, "_known_jtis", paused)
    results: dict[str, Any] = {}

    def submit() -> None:
        try:
            results["submit"] = statement_submit(member=acme.member, tokens=[token])
        finally:
            connection.close()

    def revoke() -> None:
        try:
            signing_key_revoke(
                key=SigningKey.objects.get(kid=acme.kid),
                compromised_since=compromised_since,
                actor=ACTOR,
            )
        finally:
            connection.close()

    submitter = threading.Thread(target=submit)
    submitter.start()
    assert checked.wait(10)
    revoker = threading.Thread(target=revoke)
    revoker.start()
    time.sleep(0.5)  # the revocation now runs (or waits) while the batch is in flight
    release.set()
    submitter.join(20)
    revoker.join(20)

    assert results["submit"]["accepted"] == 1, results
    assert Statement.objects.get(signal__value=value).withdrawn_at is not None
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 404
