"""The members' webhook receivers: real HTTP servers on 127.0.0.1 that record every
request (body and headers as they came, what they answered) and verify its Standard
Webhooks signature on arrival, as a member's receiver would. Some answer at once, some
late, some fail a share of requests, one filters by signal type; one is taken down for
minutes by the scheduler."""

from __future__ import annotations

import threading
import time

from standardwebhooks.webhooks import Webhook

from tests.support.receivers import Received, Receiver

MODES = ("normal", "slow", "failing", "down", "filtered")
SLOW_DELAY = 1.5
FAIL_RATIO = 0.3
FILTER_TYPES = ["pdq", "md5"]


class Hook:
    """One webhook endpoint of a member and the receiver behind it."""

    def __init__(self, member: str, mode: str) -> None:
        self.member = member
        self.mode = mode
        self.endpoint_id = 0
        self.secret = ""
        self.in_flight = threading.Event()  # a slow receiver is holding a delivery open
        self.bad_signatures: list[str] = []
        self.down_since: float | None = None
        self.receiver = self._receiver(0, [])

    @property
    def signal_types(self) -> list[str]:
        return FILTER_TYPES if self.mode == "filtered" else []

    @property
    def log(self) -> list[Received]:
        with self.receiver.lock:
            return list(self.receiver.requests)

    def _receiver(self, port: int, requests: list[Received]) -> Receiver:
        receiver = Receiver(
            requests=requests,
            delay=SLOW_DELAY if self.mode == "slow" else 0.0,
            fail_ratio=FAIL_RATIO if self.mode == "failing" else 0.0,
            on_request=self._arrived,
            port=port,
        )
        receiver.port = receiver.server.server_address[1]
        # A sender that gives up mid-request (a killed worker, the deadline) is expected.
        receiver.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        return receiver

    def _arrived(self, item: Received) -> None:
        if self.mode == "slow":
            self.in_flight.set()
        if torn(item):
            return  # the sender died mid-body; it never saw an answer and sends it again
        try:
            Webhook(self.secret).verify(item.body, item.headers, json_parse=False)
        except Exception as exc:  # a bad or missing secret, a bad header: all refused
            self.bad_signatures.append(f"{item.headers.get('webhook-id')}: {exc}")

    def take_down(self) -> None:
        """Close the server: connections are refused until ``bring_up``."""
        self.receiver.close()
        self.down_since = time.monotonic()

    def bring_up(self) -> None:
        """A new server on the same port, recording into the same log."""
        self.receiver = self._receiver(self.receiver.port, self.receiver.requests)
        self.down_since = None

    def close(self) -> None:
        if self.down_since is None:
            self.receiver.close()


def torn(item: Received) -> bool:
    """A request whose body stopped short of its ``content-length``: the sender was killed
    mid-request. A real receiver fails to read it and answers nothing; it never counts."""
    announced = int(item.headers.get("content-length", "0") or 0)
    return len(item.body) < announced or not item.body


def hooks_start(members: list[str]) -> list[Hook]:
    """One receiver per member of ``members``, modes in turn (``MODES``)."""
    return [Hook(member, MODES[i % len(MODES)]) for i, member in enumerate(members)]
