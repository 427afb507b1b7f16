"""Pausing Python's cyclic garbage collector around bounded bulk work.

Building a feed page of 10,000 snapshots, or judging a batch of 1,000 statements,
allocates hundreds of thousands of small dicts, lists and tuples, none of them in a
reference cycle. Meanwhile the collector would run hundreds of times, each time scanning
those young objects and, every so often, every long-lived object of the process:
measured, 30% of a feed page's time (tests/bench/bench_sync.py). Such objects are freed
by reference counting anyway, so the collector is switched off for the block only.
Memory stays bounded by the block's own work; cycles made meanwhile, in this thread or
another, are collected once the last paused block has ended.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (re-entrant and thread-safe)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()  # leave it off if someone else switched it off
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()


def freeze_startup_objects() -> None:
    """Move everything allocated so far (modules, settings, URL patterns) out of the
    collector's sight: a process that lives for months never frees them, and without
    this every full collection scans them again."""
    gc.collect()
    gc.freeze()
