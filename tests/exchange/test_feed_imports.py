"""The change feed stands on its own: importing it brings in no Celery, no webhooks and
no cache, so it can be used and tested without them (its followers register as
listeners at app start instead of being imported by it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter. The forum package is loaded without its ``__init__``, which
# starts the server's Celery app, and the exchange app without its ``ready()``, which
# registers the listeners: what is left is what the feed itself needs, to be imported and
# to append rows (on SQLite in memory).
PROBE = """
import pathlib, sys, types

import django
from django.conf import settings

forum = types.ModuleType("forum")
forum.__path__ = [str(pathlib.Path("forum").resolve())]
sys.modules["forum"] = forum
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "members", "exchange"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
)
import exchange.apps

exchange.apps.ExchangeConfig.ready = lambda self: None
django.setup()
from django.core.management import call_command
from django.db import transaction

call_command("migrate", verbosity=0)
before = set(sys.modules)
import exchange.feed

added = set(sys.modules) - before


class Rollback(Exception):
    pass


try:  # an append runs whatever it would hand the rows to
    with transaction.atomic():
        exchange.feed.feed_append([(0, 1)])
        raise Rollback
except Rollback:
    pass
print("new", *sorted(added))
print("all", *sorted(sys.modules))
"""


def test_importing_the_feed_imports_no_celery_webhooks_or_cache() -> None:
    """A fresh process that imports ``exchange.feed`` and appends a row has loaded no
    Celery (or its broker libraries), no webhook module but the models the app registry
    needs, and the feed's import added no cache module."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}
    loaded, added = lines["all"], lines["new"]
    assert "exchange.feed" in added
    assert [m for m in loaded if m.split(".")[0] in {"celery", "kombu", "redis", "httpx"}] == []
    webhooks = [m for m in loaded if m.startswith("exchange.webhooks.")]
    assert webhooks == ["exchange.webhooks.models"]
    assert "exchange.tasks" not in loaded
    assert [m for m in added if m.startswith("django.core.cache")] == []
