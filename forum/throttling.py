"""Throttles: per member and scope, charged by the work a request asks for, counted
atomically.

Two budgets apply to a request, both per member (per client address before
authentication) and per fixed window of the rate's period:

- requests: the view's ``throttle_scope`` (``read``, ``submit``, ``feedback``,
  ``manage``), one unit per request, as DRF's ``ScopedRateThrottle``;
- work: the view's ``work_scope`` (``statements`` submitted, ``match_hashes`` searched,
  ``feed_rows`` asked for), ``view.throttle_cost(request)`` units. A batch of 10,000
  statements costs 10,000 units, not one request's worth.

Rates are DRF rate strings in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (``"100000/min"``).

Counting. DRF's ``SimpleRateThrottle`` reads a list of timestamps, appends to it and
writes it back: concurrent requests read the same list and all pass. Here a window is one
integer in the cache under ``throttle:<scope>:<ident>:<window number>``, created with
``cache.add`` and increased with ``cache.incr`` by the request's cost; both are atomic on
Redis (SET NX, INCRBY) and on the in-memory cache (under its lock). A request is admitted
when the counter, after its own increment, is within the rate, so the units admitted in
a window never exceed it, however many requests race; a refused request takes its units
back. A fixed window lets a client spend a rate at the end of one window and again at
the start of the next (at most twice the rate over one period): the price of needing
nothing but ``add`` and ``incr``, which every Django cache offers.

A request that alone costs more than a whole window's rate could never pass: it gets a
413 ``exceeds_rate_limit`` problem at once instead of 429s for ever. Throttled requests
get 429 ``throttled`` with ``Retry-After``: the seconds until the window ends.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from forum.errors import DomainError

logger = logging.getLogger(__name__)


class ExceedsRateLimit(DomainError):
    """One request costs more than the scope allows in a whole period."""

    code = "exceeds_rate_limit"
    status = 413
    title = "Request exceeds the rate limit"


class ScopedWorkThrottle(SimpleRateThrottle):
    """Admit a request if its scope's request budget and work budget both have room."""

    cache_format = "throttle:%(scope)s:%(ident)s:%(window)d"

    def __init__(self) -> None:
        # Rates depend on the view: read them in allow_request, as ScopedRateThrottle does.
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        charged: list[tuple[str, int]] = []
        for scope, cost in self._charges(request, view):
            key = self._take(request, scope, cost)
            if key is None:
                for taken, units in charged:
                    self._give_back(taken, units)
                return False
            charged.append((key, cost))
        return True

    def wait(self) -> float | None:
        return self.wait_seconds

    @staticmethod
    def problem_codes(view: Any, method: str) -> dict[int, tuple[str, ...]]:
        """The problems this throttle answers for the view (the OpenAPI schema's)."""
        codes: dict[int, tuple[str, ...]] = {}
        if getattr(view, "throttle_scope", None):
            codes[429] = ("throttled",)
        if getattr(view, "work_scope", None):
            codes[413] = (ExceedsRateLimit.code,)
        return codes

    def _charges(self, request: Request, view: Any) -> list[tuple[str, int]]:
        charges: list[tuple[str, int]] = []
        if getattr(view, "throttle_scope", None):
            charges.append((view.throttle_scope, 1))
        if getattr(view, "work_scope", None):
            charges.append((view.work_scope, max(1, int(view.throttle_cost(request)))))
        return charges

    def _take(self, request: Request, scope: str, cost: int) -> str | None:
        """Charge ``cost`` units to the scope's current window: the counter's key, or
        None (and ``wait_seconds`` set) if the window has no room for them."""
        self.scope = scope
        limit, period = self.parse_rate(self.THROTTLE_RATES.get(scope))
        if limit is None or period is None:
            return ""  # a scope without a rate is not limited
        if cost > limit:
            raise ExceedsRateLimit(
                f"This request costs {cost:,} units of the {scope!r} budget, which allows "
                f"{limit:,} per {period} s: split it into requests of at most {limit:,}."
            )
        now = self.timer()
        window = int(now // period)
        ident = request.user.pk if request.user and request.user.is_authenticated else None
        key = self.cache_format % {
            "scope": scope,
            "ident": ident if ident is not None else self.get_ident(request),
            "window": window,
        }
        try:
            used = _charge(self.cache, key, cost, 2 * period)
        except Exception as exc:  # the shared cache (Redis) is down: count in this process
            logger.warning("throttle counters fall back to this process: %s", exc)
            used = _charge(_FALLBACK, key, cost, 2 * period)
            key = _FALLBACK_MARK + key
        if used <= limit:
            return key
        self._give_back(key, cost)
        self.wait_seconds = max(1.0, math.ceil((window + 1) * period - now))
        return None

    def _give_back(self, key: str, units: int) -> None:
        if not key:
            return
        cache = self.cache
        if key.startswith(_FALLBACK_MARK):
            cache, key = _FALLBACK, key.removeprefix(_FALLBACK_MARK)
        # ValueError: the window expired meanwhile, nothing left to give back to.
        with contextlib.suppress(Exception):
            cache.decr(key, units)


def _charge(cache: BaseCache, key: str, cost: int, timeout: int) -> int:
    """Add ``cost`` to the window's counter and return the new count (atomic on Redis and
    in memory). The counter is kept past the window's end so that a request arriving just
    then finds it."""
    cache.add(key, 0, timeout=timeout)
    try:
        return int(cache.incr(key, cost))
    except ValueError:  # evicted between add and incr: start it again
        cache.add(key, 0, timeout=timeout)
        return int(cache.incr(key, cost))


# Losing Redis must not take the API down with it (DESIGN.md: Redis is never the only
# copy of anything, and the API keeps answering without it). While the shared cache
# errors, each process counts on its own, as it does when no Redis is configured: the
# limits then hold per process instead of per forum, never not at all.
_FALLBACK = LocMemCache("cordiale-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
_FALLBACK_MARK = "fallback:"
