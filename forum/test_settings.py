"""Settings for the test suite: the real settings with a throwaway secret and fast hashing."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production")

from members.forum_key import forum_key_file_ensure

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Each test run counts throttles under its own prefix in a shared Redis.
CACHES["default"]["KEY_PREFIX"] = f"cordiale-test-{os.getpid()}"  # noqa: F405
WHITENOISE_AUTOREFRESH = True  # no collected static directory in tests
SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP

# Concurrent test runs against one PostgreSQL server each get their own test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_cordiale_{os.getpid()}"}  # noqa: F405

# Processes the tests start (workers, gunicorn) run without DJANGO_DEBUG and inherit this
# environment: one throwaway forum key per checkout, made once.
os.environ.setdefault("CORDIALE_FORUM_KEY_FILE", str(VAR_DIR / "test-forum-key.pem"))  # noqa: F405
CORDIALE_FORUM_KEY_FILE = os.environ["CORDIALE_FORUM_KEY_FILE"]
forum_key_file_ensure(Path(CORDIALE_FORUM_KEY_FILE))
# Match index snapshots of this run (and of the processes it starts) in a directory of
# its own, removed at exit: never the host's cache directory that a server would use.
if "CORDIALE_MATCH_INDEX_DIR" not in os.environ:
    _match_index_dir = tempfile.TemporaryDirectory(prefix="cordiale-test-match-index-")
    os.environ["CORDIALE_MATCH_INDEX_DIR"] = _match_index_dir.name
CORDIALE_MATCH_INDEX_DIR = Path(os.environ["CORDIALE_MATCH_INDEX_DIR"])
