"""Property: whatever the order of a member's asserts and retracts, the newest ``iat`` wins.

Hypothesis draws batches of statements by several members on a few signals, with
``iat`` values drawn from a small range (so ties and out-of-order arrival are common)
and tokens repeated inside and across batches. A reference model predicts each item's
status and the final state; the server's ``CurrentStatement`` rows and what another
member sees through ``GET /api/v1/signals/...`` must equal it.

Model: per (member, signal) the current statement is the accepted one with the highest
``iat``; a later one with an equal ``iat`` is ``stale`` (the first accepted stays). A
token whose ``jti`` was accepted before, or already appeared in the same batch, is a
``duplicate``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.models import CurrentStatement
from tests.factories import Party, make_party, pdq

N_MEMBERS = 3
N_SIGNALS = 3
BASE = int(time.time()) - 3600


@dataclass(frozen=True)
class Step:
    member: int
    signal: int
    op: str
    iat: int
    repeat: int | None  # index of an earlier step whose token is sent again


step_strategy = st.builds(
    Step,
    member=st.integers(0, N_MEMBERS - 1),
    signal=st.integers(0, N_SIGNALS - 1),
    op=st.sampled_from(["assert", "retract"]),
    iat=st.integers(0, 12),
    repeat=st.none() | st.integers(0, 40),
)
# A batch is submitted by one member; its steps' own member field is overridden.
batches_strategy = st.lists(
    st.tuples(st.integers(0, N_MEMBERS - 1), st.lists(step_strategy, min_size=1, max_size=8)),
    min_size=1,
    max_size=8,
)


@pytest.fixture
def parties(db: None) -> list[Party]:
    return [make_party() for _ in range(N_MEMBERS)] + [make_party()]


@pytest.mark.django_db(transaction=False)
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=batches_strategy)
def test_stored_state_is_newest_iat_wins(
    parties: list[Party], batches: list[tuple[int, list[Step]]]
) -> None:
    """Statuses, CurrentStatement rows and lookups equal the newest-iat-wins model."""
    members, reader = parties[:N_MEMBERS], parties[N_MEMBERS]
    # Fresh values per example: the members persist, their state on these signals does not.
    values = [pdq() for _ in range(N_SIGNALS)]

    sent: list[tuple[int, int, str, int, str]] = []  # member, signal, op, iat, token
    accepted_jtis: set[str] = set()
    current: dict[tuple[int, int], tuple[int, str, str]] = {}  # -> iat, op, token

    for submitter, steps in batches:
        party = members[submitter]
        tokens: list[str] = []
        expected: list[str] = []
        batch_jtis: set[str] = set()
        for step in steps:
            earlier = [s for s in sent if s[0] == submitter]
            if step.repeat is not None and earlier:
                _, signal, op, iat, token = earlier[step.repeat % len(earlier)]
            else:
                signal, op, iat = step.signal, step.op, BASE + step.iat
                token = party.statement("pdq", values[signal], op=op, iat=iat, jti=uuid.uuid4().hex)
                sent.append((submitter, signal, op, iat, token))
            jti = _jti(token)
            tokens.append(token)
            if jti in accepted_jtis or jti in batch_jtis:
                expected.append("duplicate")
                continue
            batch_jtis.add(jti)
            held = current.get((submitter, signal))
            if held is not None and held[0] >= iat:
                expected.append("stale")
                continue
            expected.append("accepted")
            accepted_jtis.add(jti)
            current[(submitter, signal)] = (iat, op, token)
        body = party.submit(*tokens)
        assert [r["status"] for r in body["results"]] == expected

    member_ids = {p.member.pk: i for i, p in enumerate(members)}
    signal_index = {v: i for i, v in enumerate(values)}
    stored = {
        (member_ids[cs.member_id], signal_index[cs.signal.value]): (
            cs.iat,
            cs.statement.op,
            cs.statement.jws,
            cs.audience,
        )
        for cs in CurrentStatement.objects.filter(signal__value__in=values).select_related(
            "statement", "signal"
        )
    }
    assert stored == {
        key: (iat, op, token, 0 if op == "assert" else None)
        for key, (iat, op, token) in current.items()
    }

    for signal, value in enumerate(values):
        live = {
            members[m].slug: token
            for (m, s), (_, op, token) in current.items()
            if s == signal and op == "assert"
        }
        response = reader.get(f"/api/v1/signals/pdq/{value}")
        if not live:
            assert response.status_code == 404
            continue
        assert response.status_code == 200
        seen = {s["member"]: s["jws"] for s in response.json()["statements"]}
        assert seen == live


def _jti(token: str) -> str:
    from exchange.client.jws import parse_compact

    return str(parse_compact(token).claims["jti"])
