"""The exact checks once load and faults have stopped. Each returns a dict of figures and
a list of ``problems`` (empty when it passed); the oracle of what a member may see is a
fresh full read of its feed, with its own key, after everything settled.

- statements: every (member, jti) a driver was told ``accepted``/``duplicate`` is stored
  exactly once, byte for byte the token sent; nothing else of theirs is stored;
- replicas: after a last sync, each member's replica equals its fresh feed (live signals,
  their statements' JWS, opinion counts and its own opinion) and verifies offline;
- webhooks: replaying each receiver's 2xx deliveries in arrival order, a repeated
  ``webhook-id`` dropped as members are told to, gives the endpoint's fresh feed (the
  member's, through the endpoint's filter); cursors never go backwards; signatures verify;
- leaks: no replica, delivery, match or lookup ever showed a member a value that was
  never addressed to an audience it belongs to;
- 5xx: none outside PostgreSQL's down windows.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import orjson
import psycopg

from exchange.client import CordialeClient, Replica
from tests.chaos.ledger import Ledger, SignalKey
from tests.chaos.population import MemberSpec
from tests.chaos.receivers import Hook, torn

Snapshot = dict[str, Any]
Result = dict[str, Any]


def fresh_feed(base_url: str, api_key: str) -> dict[SignalKey, Snapshot]:
    """The member's whole feed read from the start now; the last snapshot of a signal wins."""
    state: dict[SignalKey, Snapshot] = {}
    with CordialeClient(base_url, api_key, max_retries=10) as client:
        for page in client.iter_changes(None, 1000):
            for change in page["changes"]:
                state[(change["signal_type"], change["value"])] = change
    return state


def normal(snapshot: Snapshot) -> tuple[Any, ...]:
    """What must agree between two views of a signal."""
    if snapshot.get("deleted"):
        return ("deleted",)
    opinions = snapshot.get("opinions") or {}
    mine = opinions.get("mine") or {}
    return (
        tuple(sorted(s["jws"] for s in snapshot.get("statements") or [])),
        opinions.get("positive", 0),
        opinions.get("negative", 0),
        opinions.get("investigation", 0),
        mine.get("category"),
    )


def _compare(
    got: dict[SignalKey, tuple[Any, ...]], want: dict[SignalKey, tuple[Any, ...]]
) -> list[str]:
    """Differences, tombstones and absent signals counting as the same."""
    problems = []
    for key in sorted(set(got) | set(want)):
        mine, theirs = got.get(key, ("deleted",)), want.get(key, ("deleted",))
        if mine != theirs:
            problems.append(f"{key[0]}:{key[1][:24]} has {mine!r:.120} instead of {theirs!r:.120}")
    return problems


# -- statements ---------------------------------------------------------------------------


def check_statements(database_url: str, ledger: Ledger) -> Result:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT member_slug, jti, count(*), min(jws) FROM exchange_statement "
            "WHERE member_slug LIKE 'chaos-%%' GROUP BY member_slug, jti"
        ).fetchall()
    stored = {(m, j): (n, token) for m, j, n, token in rows}
    problems = []
    lost = [k for k in ledger.confirmed if k not in stored]
    problems += [f"confirmed but not stored: {m} {j}" for m, j in lost[:20]]
    twice = [k for k, (n, _) in stored.items() if n != 1]
    problems += [f"stored {stored[k][0]} times: {k}" for k in twice[:20]]
    altered = [k for k in ledger.confirmed if k in stored and stored[k][1] != ledger.sent[k]]
    problems += [f"stored token differs from the one sent: {k}" for k in altered[:20]]
    unconfirmed = [k for k in stored if k not in ledger.confirmed]
    problems += [f"stored but never confirmed: {k}" for k in unconfirmed[:20]]
    problems += [f"unexpected answer: {u}" for u in ledger.unexpected[:20]]
    statuses = Counter(ledger.confirmed.values())
    return {
        "sent": len(ledger.sent),
        "accepted": statuses["accepted"],
        "duplicate": statuses["duplicate"],
        "stored": len(stored),
        "lost": len(lost),
        "stored_twice": len(twice),
        "unconfirmed": len(unconfirmed),
        "unexpected_answers": len(ledger.unexpected),
        "problems": problems,
    }


# -- replicas -----------------------------------------------------------------------------


def _replica_view(replica: Replica) -> dict[SignalKey, tuple[Any, ...]]:
    view: dict[SignalKey, tuple[Any, ...]] = {}
    opinions = {
        (t, v): (p, n, i, (json.loads(mine) or {}).get("category"))
        for t, v, p, n, i, mine in replica.execute(
            "SELECT signal_type, value, positive, negative, investigation, mine FROM opinions"
        )
    }
    for t, v in replica.execute("SELECT signal_type, value FROM signals WHERE deleted = 0"):
        snapshot = replica.signal(t, v) or {}
        jws = tuple(sorted(s["jws"] for s in snapshot.get("statements") or []))
        view[(t, v)] = (jws, *opinions.get((t, v), (0, 0, 0, None)))
    return view


def check_replica(
    spec: MemberSpec, base_url: str, state_dir: Any, oracle: dict[SignalKey, Snapshot]
) -> list[str]:
    with Replica(state_dir) as replica, CordialeClient(base_url, spec.api_key) as client:
        replica.sync(client)
        problems = [f"{spec.slug} replica: {p}" for p in _compare(
            _replica_view(replica), {k: normal(s) for k, s in oracle.items()}
        )]  # fmt: skip
        failed = [r for r in replica.verify_all() if not r.ok]
    problems += [f"{spec.slug} replica: statement fails offline verification" for _ in failed]
    return problems


# -- webhooks -----------------------------------------------------------------------------


def _cursor_positions(cursor: str) -> dict[str, tuple[int, int]]:
    from exchange.feed import Cursor

    return Cursor.decode(cursor).positions


def replay(hook: Hook) -> Result:
    """The receiver's log applied as a member would: 2xx deliveries in arrival order,
    a ``webhook-id`` already processed dropped."""
    state: dict[SignalKey, tuple[Any, ...]] = {}
    seen_ids: set[str] = set()
    duplicates = retried = backwards = 0
    positions: dict[str, tuple[int, int]] = {}
    values: set[SignalKey] = set()
    filtered_out = 0
    for item in hook.log:
        if torn(item):
            continue
        body = orjson.loads(item.body)
        if body.get("type") != "changes":
            continue
        values.update((c["signal_type"], c["value"]) for c in body["changes"])
        if item.status >= 300:
            retried += 1
            continue
        webhook_id = item.headers.get("webhook-id", "")
        if webhook_id in seen_ids:
            duplicates += 1
            continue
        seen_ids.add(webhook_id)
        for change in body["changes"]:
            if hook.signal_types and change["signal_type"] not in hook.signal_types:
                filtered_out += 1
            state[(change["signal_type"], change["value"])] = normal(change)
        for key, (period, position) in _cursor_positions(body["cursor"]).items():
            before = positions.get(key)
            if before is not None and before[0] == period and position < before[1]:
                backwards += 1
            positions[key] = (period, position)
    return {
        "state": state,
        "deliveries": len(seen_ids),
        "failed_attempts": retried,
        "duplicates": duplicates,
        "cursor_backwards": backwards,
        "filter_violations": filtered_out,
        "values": values,
        "changes": sum(1 for _ in state),
    }


def hook_oracle(hook: Hook, oracle: dict[SignalKey, Snapshot]) -> dict[SignalKey, tuple[Any, ...]]:
    return {
        k: normal(s)
        for k, s in oracle.items()
        if not hook.signal_types or k[0] in hook.signal_types
    }


def wait_hooks(hooks: list[Hook], oracles: dict[str, dict[SignalKey, Snapshot]], timeout: float):
    """Wait until every receiver's replayed state equals its oracle (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(not _compare(replay(h)["state"], hook_oracle(h, oracles[h.member])) for h in hooks):
            return time.monotonic() - (deadline - timeout)
        time.sleep(1)
    return None


def check_hook(hook: Hook, oracle: dict[SignalKey, Snapshot]) -> Result:
    played = replay(hook)
    problems = [
        f"{hook.member} ({hook.mode}) webhook: {p}"
        for p in _compare(played["state"], hook_oracle(hook, oracle))
    ]
    if played["cursor_backwards"]:
        problems.append(f"{hook.member} webhook: cursor went back {played['cursor_backwards']}x")
    if played["filter_violations"]:
        problems.append(f"{hook.member} webhook: {played['filter_violations']} changes unfiltered")
    problems += [f"{hook.member} webhook: bad signature {b}" for b in hook.bad_signatures[:5]]
    played["problems"] = problems
    return played


# -- leaks and 5xx --------------------------------------------------------------------------


def check_leaks(ledger: Ledger, specs: list[MemberSpec], hooks: list[Hook]) -> Result:
    problems = []
    shown = {spec.slug: set(ledger.shown.get(spec.slug, set())) for spec in specs}
    for hook in hooks:
        shown[hook.member] |= replay(hook)["values"]
    checked = 0
    for spec in specs:
        for key in shown[spec.slug]:
            checked += 1
            if not ledger.allowed(key, spec.audiences):
                problems.append(f"LEAK: {spec.slug} was shown {key[0]}:{key[1]}")
    return {"values_checked": checked, "leaks": len(problems), "problems": problems[:50]}


def check_5xx(ledger: Ledger, windows: list[tuple[float, float]]) -> Result:
    """5xx answers to attempts that overlapped a PostgreSQL down window are explained if
    they are the 503 the forum promises then; any other 5xx, and a 500 even inside a
    window (a traceback where ``database_unavailable`` was due), is reported."""
    inside, outside = [], []
    for attempt in ledger.attempts:
        if 500 <= attempt.status < 600:
            finished = attempt.at + attempt.seconds
            explained = any(attempt.at <= end and finished >= start for start, end in windows)
            (inside if explained and attempt.status != 500 else outside).append(attempt)
    problems = [
        f"{a.status} at {time.strftime('%H:%M:%S', time.localtime(a.at))} {a.endpoint} ({a.member})"
        for a in outside[:30]
    ]
    by_status: dict[str, int] = {}
    for attempt in inside + outside:
        by_status[str(attempt.status)] = by_status.get(str(attempt.status), 0) + 1
    return {
        "attempts": len(ledger.attempts),
        "5xx_in_pg_windows": len(inside),
        "5xx_outside": len(outside),
        "5xx_by_status": dict(sorted(by_status.items())),
        "no_answer": sum(1 for a in ledger.attempts if a.status == 0),
        "problems": problems,
    }
