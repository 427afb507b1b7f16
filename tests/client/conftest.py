"""Fixtures of the member-side tests; the live forum lives in ``tests/client/live.py``."""

from tests.client.live import forum

__all__ = ["forum"]
