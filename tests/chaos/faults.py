"""The fault scheduler: one fault every ``interval`` seconds, from a plan made up front.

A webhook receiver goes down first (for ``receiver_down`` seconds, while the others go
on); PostgreSQL restarts (fast shutdown) at about a third and two thirds of the run; in
between, in turn: SIGKILL of a gunicorn worker while a batch is being submitted, of every
Celery pool process while a slow receiver holds a delivery open, of a whole Celery worker,
of beat; Redis stopped for a few seconds and started again on the same port.

PostgreSQL's down windows are recorded from the moment it is told to stop until it
answers again, plus ``PG_GRACE`` seconds (connections the processes held are found dead
only when next used); 5xx answers inside them are explained, others are not.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.cluster import Cluster
from tests.chaos.ledger import Ledger
from tests.chaos.receivers import Hook

PG_GRACE = 5.0
REDIS_DOWN = 5.0
ROTATION = ("web_worker", "celery_child", "redis", "beat", "celery_worker")


def fault_plan(duration: float, interval: float, postgres_restarts: int = 2) -> list[str]:
    """The faults in order, one per ``interval`` within ``duration`` seconds: the receiver
    first, PostgreSQL at even fractions of the run, the rotation in the other slots."""
    slots = max(1, int(duration // interval) - 1)
    plan: list[str | None] = [None] * slots
    for n in range(1, postgres_restarts + 1):
        plan[min(slots - 1, max(1, round(slots * n / (postgres_restarts + 1))))] = "postgres"
    plan[0] = "receiver_down"
    free = (i for i, kind in enumerate(plan) if kind is None)
    for n, i in enumerate(free):
        plan[i] = ROTATION[n % len(ROTATION)]
    return [kind for kind in plan if kind is not None]


@dataclass(eq=False)  # a Thread must stay hashable
class Scheduler(threading.Thread):
    """Runs the plan; ``events`` and ``pg_windows`` are what the report quotes."""

    cluster: Cluster
    hooks: list[Hook]
    ledger: Ledger
    interval: float
    duration: float
    receiver_down: float
    seed: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    pg_windows: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, name="fault-scheduler", daemon=True)
        self.rng = random.Random(self.seed)
        self.plan = fault_plan(self.duration, self.interval)
        self._down: tuple[Hook, float] | None = None

    def run(self) -> None:
        started = time.monotonic()
        for n, kind in enumerate(self.plan, start=1):
            while time.monotonic() < started + n * self.interval:
                self._maybe_bring_up()
                self._revive()
                if self.stop.wait(0.2):
                    return
            at = time.time()
            try:
                detail = getattr(self, f"_{kind}")()
                ok = True
            except Exception as exc:  # a fault that could not be injected is reported
                detail, ok = repr(exc), False
            self.events.append(
                {"at": at, "kind": kind, "detail": detail, "ok": ok, "seconds": time.time() - at}
            )
        while self._down is not None and not self.stop.wait(0.2):
            self._maybe_bring_up()

    def _revive(self) -> None:
        for detail in self.cluster.revive():
            self.events.append(
                {"at": time.time(), "kind": "crash", "detail": detail, "ok": False, "seconds": 0}
            )

    def finish(self) -> None:
        """Stop injecting and undo what is still broken (a receiver still down)."""
        self.stop.set()
        self.join(120)
        if self._down is not None:
            self._down[0].bring_up()
            self._down = None
        self._revive()

    def _maybe_bring_up(self) -> None:
        if self._down is not None and time.monotonic() >= self._down[1]:
            self._down[0].bring_up()
            self._down = None

    # -- the faults -------------------------------------------------------------

    def _receiver_down(self) -> str:
        hook = next(h for h in self.hooks if h.mode == "down")
        hook.take_down()
        self._down = (hook, time.monotonic() + self.receiver_down)
        return f"{hook.member}'s receiver down for {self.receiver_down:.0f} s"

    def _web_worker(self) -> str:
        in_flight = _wait(lambda: self.ledger.submits_in_flight > 0, 5)
        pid = self.rng.choice(self.cluster.web_worker_pids())
        self.cluster.kill_web_worker(pid)
        return f"SIGKILL gunicorn worker {pid} ({'mid-batch' if in_flight else 'idle'})"

    def _celery_child(self) -> str:
        slow = [h for h in self.hooks if h.mode == "slow"]
        for hook in slow:
            hook.in_flight.clear()
        in_flight = _wait(lambda: any(h.in_flight.is_set() for h in slow), 15)
        pids = self.cluster.celery_pool_pids()
        for pid in pids:
            self.cluster.kill_celery_child(pid)
        state = "mid-delivery" if in_flight else "no slow delivery seen"
        return f"SIGKILL {len(pids)} Celery pool processes ({state})"

    def _celery_worker(self) -> str:
        self.cluster.kill_celery_worker(0)
        return "SIGKILL Celery worker 0 (main and pool), started again"

    def _beat(self) -> str:
        self.cluster.kill_beat()
        return "SIGKILL beat, started again"

    def _redis(self) -> str:
        self.cluster.stop_redis()
        time.sleep(REDIS_DOWN)
        self.cluster.start_redis()
        return f"Redis stopped for {REDIS_DOWN:.0f} s, started again"

    def _postgres(self) -> str:
        down = time.time()
        self.cluster.stop_postgres()
        stopped = time.time()
        self.cluster.start_postgres()
        _wait(self.cluster.postgres_answers, 60)
        up = time.time()
        self.pg_windows.append((down, up + PG_GRACE))
        return (
            f"PostgreSQL fast shutdown ({stopped - down:.1f} s), answering after {up - down:.1f} s"
        )


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
