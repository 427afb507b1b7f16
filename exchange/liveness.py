"""
A live assertion: the one rule for whether a member's current statement about a signal is
seen by its audience now.

A current statement (``exchange.models.CurrentStatement``) is live while

- its ``audience`` is set: it is an assertion. Retractions, withdrawn statements and the
  statements of a key revoked as compromised hold NULL there; and
- its ``exp`` has not passed: NULL, or later than now in Unix seconds; and
- its lapse has not been recorded: ``lapsed`` is false.

``lapsed`` records that the feed has written the lapse (``exchange/services/lapse.py``).
An assertion stops being seen the second it expires, whether or not the sweep has run;
once the lapse is recorded it is final: a read on a host whose clock is behind the
sweeper's (or turned back) must not serve as live what followers were told is gone.
Only a newer statement, which resets ``lapsed``, is seen again.

The rule is spelled three ways, for the three places that need it: ``live`` for a row in
hand, ``live_sql`` and ``unexpired_sql`` for the hand-written SQL of hot paths (the text
those queries always had, which the benchmarks were measured with, plus the ``lapsed``
test on the row already read), and ``live_q`` for the ORM; ``expired_q`` finds the
assertions whose ``exp`` has passed, the lapses the sweep records.
"""

from __future__ import annotations

from django.db.models import Q


def live(exp: int | None, now: int, *, lapsed: bool = False) -> bool:
    """An assertion with expiry ``exp`` (its lapse recorded or not) is still live at ``now``."""
    return not lapsed and (exp is None or exp > now)


def unexpired_sql(table: str = "cs") -> str:
    """SQL, one ``%s`` for now: the row of ``exchange_currentstatement`` aliased ``table``
    (or unqualified, with ``""``) has not expired, by the clock or by a recorded lapse.
    For queries that already require the audience to be one or some given ones, which
    makes the row an assertion."""
    prefix = f"{table}." if table else ""
    return f"(NOT {prefix}lapsed AND ({prefix}exp IS NULL OR {prefix}exp > %s))"


def live_sql(table: str = "cs") -> str:
    """SQL, one ``%s`` for now: the row of ``exchange_currentstatement`` aliased ``table``
    is a live assertion for some audience."""
    return f"{table}.audience IS NOT NULL AND {unexpired_sql(table)}"


def live_q(now: int) -> Q:
    """``CurrentStatement`` rows that are live assertions at ``now``."""
    return Q(audience__isnull=False, lapsed=False) & (Q(exp__isnull=True) | Q(exp__gt=now))


def expired_q(now: int) -> Q:
    """``CurrentStatement`` rows of assertions that are live no more at ``now``: their
    ``exp`` has passed (the lapses the sweep records)."""
    return Q(audience__isnull=False) & Q(exp__lte=now)
