"""The feed's one dangerous interleaving, staged for tests of every read channel.

Writer A appends its feed row and stays uncommitted; writer B appends after it and
tries to commit; the reader reads (``before_a_commits``); A commits; the reader reads
again (``after``). With the append lock B waits for A, so the first read sees neither;
without it (``naive``) B commits past A's position and a reader that moved beyond it
never sees A's change. Used by the pull feed's and TAXII's concurrency tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

import exchange.feed
import exchange.services.statements.store as statements_module
from exchange.services.statements import statement_submit
from tests.factories import make_party, pdq


def out_of_order_commits(
    monkeypatch: pytest.MonkeyPatch,
    *,
    naive: bool,
    before_a_commits: Callable[[], None],
    after: Callable[[], None],
) -> tuple[str, str]:
    """Stage the interleaving (module docstring); return the values A and B asserted."""
    if naive:
        monkeypatch.setattr(exchange.feed, "feed_lock", lambda: None)
    writer_a, writer_b = make_party(), make_party()
    value_a, value_b = pdq(), pdq()
    a_positioned, a_may_commit, b_done = threading.Event(), threading.Event(), threading.Event()
    append = exchange.feed.feed_append

    def hold(rows: Any, **kwargs: Any) -> int:
        written = append(rows, **kwargs)
        if threading.current_thread() is thread_a:  # only A holds its position open
            a_positioned.set()
            a_may_commit.wait(10)
        return written

    monkeypatch.setattr(statements_module, "feed_append", hold)

    def write_a() -> None:
        try:
            statement_submit(member=writer_a.member, tokens=[writer_a.statement("pdq", value_a)])
        finally:
            connection.close()

    def write_b() -> None:
        try:
            a_positioned.wait(10)
            statement_submit(member=writer_b.member, tokens=[writer_b.statement("pdq", value_b)])
            b_done.set()
        finally:
            connection.close()

    thread_a = threading.Thread(target=write_a)
    thread_b = threading.Thread(target=write_b)
    thread_a.start()
    thread_b.start()
    b_done.wait(1.0)  # with the lock, B waits for A and this times out
    before_a_commits()
    a_may_commit.set()
    thread_a.join()
    thread_b.join()
    after()
    return value_a, value_b
