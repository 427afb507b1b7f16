"""The campaign's CI profile (about three minutes, part of the suite that .ci/run runs),
and the checks it stands on, each shown to fail on what it must catch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.checks import check_5xx, check_hook, check_leaks, replay
from tests.chaos.faults import ROTATION, fault_plan
from tests.chaos.ledger import Attempt, Ledger
from tests.chaos.population import MemberSpec
from tests.chaos.receivers import Hook
from tests.support.postgres import need_postgres_binaries
from tests.support.processes import ROOT
from tests.support.receivers import Received
from tests.support.services import unavailable


def _snapshot(value: str, jws: str = "a.b.c", deleted: bool = False) -> dict:
    statements = [] if deleted else [{"jws": jws}]
    return {"signal_type": "md5", "value": value, "deleted": deleted, "statements": statements}


def _delivery(hook: Hook, webhook_id: str, changes: list[dict], position: int, status: int = 204):
    from exchange.feed import Cursor

    cursor = Cursor({"0": (1, position)}).encode()
    body = json.dumps({"type": "changes", "changes": changes, "cursor": cursor}).encode()
    headers = {"webhook-id": webhook_id}
    hook.receiver.requests.append(Received("/hook", headers, body, time.time(), status=status))


@pytest.fixture
def hook():
    h = Hook("chaos-00", "normal")
    yield h
    h.close()


def test_replay_drops_repeated_ids_skips_failed_attempts_and_finds_a_lost_change(hook) -> None:
    """A receiver's log is applied as a member would: a failed attempt and a repeated
    ``webhook-id`` change nothing (the repeat is counted); a change of the feed that never
    arrived is reported, and so is a cursor that went back."""
    _delivery(hook, "m1", [_snapshot("v1")], 1, status=500)
    _delivery(hook, "m1", [_snapshot("v1")], 1)
    _delivery(hook, "m2", [_snapshot("v1", deleted=True)], 2)
    _delivery(hook, "m1", [_snapshot("v1")], 1)  # a late repeat must not resurrect v1
    played = replay(hook)
    assert (played["deliveries"], played["duplicates"], played["failed_attempts"]) == (2, 1, 1)
    assert played["state"][("md5", "v1")] == ("deleted",)

    oracle = {("md5", "v1"): _snapshot("v1", deleted=True), ("md5", "v2"): _snapshot("v2")}
    problems = check_hook(hook, oracle)["problems"]
    assert len(problems) == 1 and "md5:v2" in problems[0]

    _delivery(hook, "m3", [], 1)
    assert check_hook(hook, oracle)["cursor_backwards"] == 1


def test_leaks_are_values_never_addressed_to_an_audience_of_the_member(hook) -> None:
    """A value shown to a member is fine when some statement addressed it to the forum or
    to the member's group, and a leak otherwise, whichever read path showed it."""
    ledger = Ledger()
    ledger.addressed(("md5", "forum-value"), "forum")
    ledger.addressed(("md5", "g0-value"), "group:g0")
    ledger.addressed(("md5", "g1-value"), "group:g1")
    spec = MemberSpec("chaos-00", "key", None, "g0")  # type: ignore[arg-type]
    ledger.shown["chaos-00"] = {("md5", "forum-value"), ("md5", "g0-value")}
    assert check_leaks(ledger, [spec], [hook])["leaks"] == 0

    _delivery(hook, "m1", [_snapshot("g1-value", deleted=True)], 1)  # even a tombstone
    result = check_leaks(ledger, [spec], [hook])
    assert result["leaks"] == 1 and "g1-value" in result["problems"][0]


def test_5xx_are_explained_only_when_they_overlap_a_postgresql_down_window() -> None:
    """An attempt that started before PostgreSQL stopped and got a 503 while it was down
    is explained; a 5xx at any other time, or a 500 even inside the window, is reported."""
    ledger = Ledger()
    ledger.attempts += [
        Attempt(99.0, "POST /api/v1/statements", 503, 2.0, "chaos-00"),
        Attempt(105.0, "GET /api/v1/changes", 503, 0.1, "chaos-01"),
        Attempt(106.0, "GET /api/v1/jwks", 500, 0.1, "chaos-03"),
        Attempt(200.0, "POST /api/v1/match", 500, 0.1, "chaos-02"),
        Attempt(201.0, "POST /api/v1/match", 200, 0.1, "chaos-02"),
    ]
    result = check_5xx(ledger, [(100.0, 110.0)])
    assert (result["5xx_in_pg_windows"], result["5xx_outside"]) == (2, 2)
    assert result["5xx_by_status"] == {"500": 2, "503": 2}
    assert "GET /api/v1/jwks (chaos-03)" in result["problems"][0]
    assert "POST /api/v1/match (chaos-02)" in result["problems"][1]


def test_the_fault_plan_has_every_fault_and_two_postgresql_restarts() -> None:
    """The CI profile's ninety seconds hold each fault at least once, PostgreSQL twice,
    and the receiver goes down first so that it has time to come back."""
    plan = fault_plan(90, 10)
    assert plan[0] == "receiver_down"
    assert plan.count("postgres") == 2
    assert set(ROTATION) <= set(plan)


@pytest.mark.chaos
@pytest.mark.slow
def test_the_ci_profile_loses_nothing_leaks_nothing_and_has_no_unexplained_5xx(
    tmp_path: Path,
) -> None:
    """``python -m tests.chaos --profile ci``: 20 members for 90 seconds under every fault
    (PostgreSQL restarted twice); every check passes and the faults really happened."""
    need_postgres_binaries()
    if shutil.which("redis-server") is None:
        unavailable("CI=true but the campaign needs redis-server", "SKIPPED LOUDLY: no redis")
    summary_file, log = tmp_path / "summary.json", tmp_path / "campaign.log"
    with log.open("wb") as out:
        code = subprocess.call(
            [sys.executable, "-m", "tests.chaos", "--profile", "ci", "--json", str(summary_file)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    output = log.read_text(errors="replace")
    assert code == 0, output[-6000:]
    summary = json.loads(summary_file.read_text())
    assert summary["passed"] and not summary["problems"]
    kinds = [event["kind"] for event in summary["faults"] if event["ok"]]
    assert kinds.count("postgres") == 2 and set(ROTATION) <= set(kinds), summary["faults"]
    assert summary["statements"]["accepted"] > 500
    assert summary["webhooks"]["changes_delivered"] > 1000
    assert summary["leaks"]["values_checked"] > 1000


def test_a_delivery_torn_by_a_killed_sender_is_not_replayed() -> None:
    """A request cut short of its content-length (the sender was SIGKILLed mid-body) is
    what a real receiver cannot read: the replay skips it instead of failing on it."""
    from tests.chaos.receivers import torn
    from tests.support.receivers import Received

    whole = Received("/hook", {"content-length": "2"}, b"{}", 0.0)
    cut = Received("/hook", {"content-length": "120"}, b'{"type": "cha', 0.0)
    empty = Received("/hook", {"content-length": "120"}, b"", 0.0)
    assert not torn(whole) and torn(cut) and torn(empty)
