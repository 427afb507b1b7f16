"""Tuning Python's cyclic garbage collector for the long-running server processes.

Building a feed page of 10,000 snapshots, or judging a batch of 1,000 statements,
allocates hundreds of thousands of small dicts, lists and tuples, none of them in a
reference cycle (reference counting frees them). With the default thresholds the
collector runs after every 700 net allocations and, as the page's objects survive into
the older generations, keeps rescanning them together with every long-lived object of
the process: measured, a third of a feed page's time in-process (17.7-19.9 us a
snapshot, 13.4 with this tuning, 13.0 with the collector off).

So, once a server process has loaded the application: collect, then freeze everything
alive (modules, settings, URL patterns: never freed, never worth scanning again), and
collect the young generation after 50,000 net allocations instead of 700. Cycles are
still collected, only less often; the extra young objects held meanwhile are a few MB.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def tune_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
