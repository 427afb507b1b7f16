"""Feed listeners: registered callbacks hear of appended rows once they commit, with the
audiences and ``(audience, signal_id)`` pairs; one that fails neither fails the write
nor keeps the others from hearing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exchange.feed import feed_listeners
from exchange.models import Signal
from tests.factories import make_party, pdq

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard() -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def listener(*, audiences: list[int], rows: list[tuple[int, int]]) -> None:
        calls.append({"audiences": audiences, "rows": rows})

    feed_listeners.register(listener)
    yield calls
    feed_listeners.unregister(listener)


def test_listeners_hear_of_rows_after_commit(
    heard: list[dict[str, Any]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    """A forum-wide statement appends one row for audience 0; the listener hears of it
    only when the transaction commits."""
    acme = make_party()
    value = pdq()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert acme.submit(acme.statement("pdq", value))["accepted"] == 1
    assert heard == []
    for callback in callbacks:
        callback()
    signal = Signal.objects.get(value=value)
    assert heard == [{"audiences": [0], "rows": [(0, signal.pk)]}]


def test_a_failing_listener_fails_nothing(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    """A listener that raises is logged; the write stands and later listeners still hear."""
    later: list[list[int]] = []

    def broken(*, audiences: list[int], rows: list[tuple[int, int]]) -> None:
        raise RuntimeError("listener down")

    def after(*, audiences: list[int], rows: list[tuple[int, int]]) -> None:
        later.append(audiences)

    feed_listeners.register(broken)
    feed_listeners.register(after)
    try:
        acme = make_party()
        value = pdq()
        with django_capture_on_commit_callbacks(execute=True):
            assert acme.submit(acme.statement("pdq", value))["accepted"] == 1
    finally:
        feed_listeners.unregister(broken)
        feed_listeners.unregister(after)
    assert later == [[0]]
    assert Signal.objects.filter(value=value).exists()
