"""Test support: the one home of fixtures and helpers for real services.

- ``services``: when a test that needs PostgreSQL, Redis or a browser skips loudly, and
  when it fails (``CI=true``).
- ``redis``, ``processes``, ``receivers``, ``database``: a private redis-server, a Celery
  worker, gunicorn, the ``deploy/bin`` entrypoints, HTTP receivers on 127.0.0.1, database
  URLs and scratch databases. Benchmarks under ``tests/bench`` use them too, so they
  import no Django at module level.
- ``live_server``: a live forum and the member's command line against it.
- ``labels``: the seeded label taxonomy put back after a flush.
- ``fixtures``: the pytest plugin (registered in ``tests/conftest.py``) that hands these
  to every test package.
"""
