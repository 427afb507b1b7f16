"""One thread per member, acting as a well-behaved member system would through the client
library (``exchange.client``): it signs and submits batches (assertions to the forum or
to its group, co-assertions of signals it received, retractions of its own), syncs its
replica, gives opinions, matches near-duplicate PDQ hashes and looks up values of other
groups. Everything it was told goes to the ledger.

The client retries 429, 5xx and connection errors itself (with ``Retry-After``); a batch
whose retries ran out is sent again, the same tokens, until it gets a definitive answer:
the server answers ``duplicate`` for what it stored already, so every statement ends up
either confirmed or known to be lost."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from exchange.client import CordialeClient, CordialeError, Replica, build_statement
from exchange.client.statements import sign_statement
from tests.chaos.ledger import Ledger, RecordingTransport, SignalKey
from tests.chaos.population import MemberSpec

TYPES = ("md5", "sha256", "pdq", "url")
LABELS = ("recruitment", "glorification", "instruction")
ACTIONS = {"submit": 30, "sync": 25, "opinion": 10, "match": 12, "probe": 10, "retract": 8}


def _transient(exc: CordialeError) -> bool:
    return exc.status in (0, 429) or exc.status >= 500


def random_value(signal_type: str) -> str:
    if signal_type == "md5":
        return uuid.uuid4().hex
    if signal_type == "url":
        return f"https://chaos.example/{uuid.uuid4().hex}"
    return (uuid.uuid4().hex + uuid.uuid4().hex)[:64]


def near(pdq: str, rng: random.Random, bits: int = 6) -> str:
    """``pdq`` with ``bits`` bits flipped: within the default match distance."""
    number = int(pdq, 16)
    for position in rng.sample(range(256), bits):
        number ^= 1 << position
    return f"{number:064x}"


class MemberDriver(threading.Thread):
    """Acts for one member until ``stop`` is set; a batch in progress is finished."""

    def __init__(
        self,
        spec: MemberSpec,
        base_url: str,
        ledger: Ledger,
        stop: threading.Event,
        state_dir: Path,
        *,
        pause: float,
        seed: int,
    ) -> None:
        super().__init__(name=f"driver-{spec.slug}", daemon=True)
        self.spec = spec
        self.ledger = ledger
        self.stop = stop
        self.state_dir = state_dir
        self.pause = pause
        self.rng = random.Random(seed)
        self.client = CordialeClient(
            base_url,
            spec.api_key,
            timeout=30,
            max_retries=8,
            transport=RecordingTransport(ledger, spec.slug),
        )
        self.own: list[tuple[SignalKey, int]] = []  # live assertions: key, iat
        self.done: set[SignalKey] = set()  # asserted once: never asserted again
        self.give_up_at = float("inf")  # set by the campaign when load ends

    # -- the loop ---------------------------------------------------------------

    def run(self) -> None:
        self.replica = Replica(self.state_dir)
        names, weights = zip(*ACTIONS.items(), strict=True)
        try:
            while not self.stop.is_set():
                action = self.rng.choices(names, weights)[0]
                try:
                    getattr(self, action)()
                except CordialeError as exc:
                    if not _transient(exc):
                        self.ledger.note_error(f"{self.spec.slug} {action}: {exc}")
                except Exception as exc:
                    self.ledger.note_error(f"{self.spec.slug} {action}: {exc!r}")
                self.stop.wait(self.rng.uniform(0, 2 * self.pause))
        finally:
            self.replica.close()

    # -- actions ----------------------------------------------------------------

    def submit(self) -> None:
        tokens = []
        for _ in range(self.rng.randint(1, 12)):
            key = self._co_assertable() if self.rng.random() < 0.2 else None
            if key is None or key in self.done:
                signal_type = self.rng.choice(TYPES)
                key = (signal_type, random_value(signal_type))
            self.done.add(key)
            audience = "forum" if self.rng.random() < 0.7 else f"group:{self.spec.group}"
            iat = int(time.time())
            self.ledger.addressed(key, audience)
            claims = build_statement(
                issuer=self.spec.slug, signal_type=key[0], value=key[1], op="assert",
                labels=self.rng.sample(LABELS, self.rng.randint(1, 2)), tlp="green",
                audience=audience, iat=iat,
            )  # fmt: skip
            tokens.append((claims["jti"], sign_statement(claims, self.spec.private_key)))
            self.own.append((key, iat))
        self._send(tokens)

    def retract(self) -> None:
        now = int(time.time())
        ready = [(i, item) for i, item in enumerate(self.own) if item[1] < now]
        if not ready:
            return
        index, (key, iat) = self.rng.choice(ready)
        del self.own[index]
        claims = build_statement(
            issuer=self.spec.slug, signal_type=key[0], value=key[1], op="retract",
            iat=max(now, iat + 1),
        )  # fmt: skip
        self._send([(claims["jti"], sign_statement(claims, self.spec.private_key))])
        self.ledger.count("retractions")

    def _send(self, tokens: list[tuple[str, str]]) -> None:
        """Submit until a definitive answer: transient failures send the same tokens again."""
        with self.ledger.lock:
            for jti, token in tokens:
                self.ledger.sent[(self.spec.slug, jti)] = token
        while True:
            try:
                answer = self.client.submit([token for _, token in tokens])
                break
            except CordialeError as exc:
                if not _transient(exc) or time.monotonic() > self.give_up_at:
                    raise
                self.ledger.count("batches_resent")
                time.sleep(1)
        with self.ledger.lock:
            for (jti, _), item in zip(tokens, answer["results"], strict=True):
                status = item["status"]
                if status in ("accepted", "duplicate"):
                    self.ledger.confirmed[(self.spec.slug, jti)] = status
                else:
                    self.ledger.unexpected.append(f"{self.spec.slug} {jti}: {item}")
            self.ledger.counters["batches"] += 1

    def sync(self) -> None:
        result = self.replica.sync(self.client, limit=self.rng.choice([50, 200, 1000]))
        self.ledger.count("sync_changes", result.changes)
        for refused in result.refused:
            self.ledger.note_error(f"{self.spec.slug} sync refused a statement: {refused}")
        rows = self.replica.execute("SELECT signal_type, value FROM signals")
        with self.ledger.lock:
            self.ledger.shown[self.spec.slug].update((t, v) for t, v in rows)

    def _live_signal(self) -> SignalKey | None:
        rows = self.replica.execute(
            "SELECT signal_type, value FROM signals WHERE deleted = 0 ORDER BY random() LIMIT 1"
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def _co_assertable(self) -> SignalKey | None:
        """A live signal this member received from others (it may assert it too)."""
        key = self._live_signal() if hasattr(self, "replica") else None
        return None if key is None or key in self.done else key

    def opinion(self) -> None:
        key = self._live_signal()
        if key is None:
            return
        try:
            if self.rng.random() < 0.2:
                self.client.delete_opinion(*key)
            else:
                category = self.rng.choice(["positive", "negative", "investigation"])
                self.client.set_opinion(*key, category=category, reason="chaos")
        except CordialeError as exc:
            if exc.status != 404:  # the signal left our view since the last sync
                raise
        self.ledger.count("opinions")

    def match(self) -> None:
        with self.ledger.lock:
            mine = [k for a in self.spec.audiences for k in self.ledger.by_audience[a][-200:]]
            others = [
                k
                for a, keys in self.ledger.by_audience.items()
                if a not in self.spec.audiences
                for k in keys[-200:]
            ]
        queries = [k for k in self.rng.sample(mine, min(3, len(mine))) if k[0] == "pdq"]
        queries += [k for k in self.rng.sample(others, min(3, len(others))) if k[0] == "pdq"]
        if not queries:
            return
        body = [{"signal_type": "pdq", "value": near(v, self.rng)} for _, v in queries]
        answer = self.client.match(body)
        found = _matched(answer)
        with self.ledger.lock:
            self.ledger.shown[self.spec.slug].update(found)
            self.ledger.counters["match_queries"] += len(body)
            self.ledger.counters["matches"] += len(found)

    def probe(self) -> None:
        """Look up a value addressed only to another group: the answer must be 404."""
        with self.ledger.lock:
            others = [
                k
                for a, keys in self.ledger.by_audience.items()
                if a not in self.spec.audiences
                for k in keys[-200:]
            ]
        if not others:
            return
        key = self.rng.choice(others)
        snapshot = self.client.lookup(*key)
        self.ledger.count("probes")
        if snapshot is not None:
            with self.ledger.lock:
                self.ledger.shown[self.spec.slug].add(key)


def _matched(answer: dict[str, Any]) -> set[SignalKey]:
    return {
        (m["signal"]["signal_type"], m["signal"]["value"])
        for result in answer.get("results", [])
        for m in result.get("matches", [])
    }
