"""Benchmarks (not part of the test run). They start processes without DJANGO_DEBUG,
which need a forum key: one throwaway key per checkout, made once under var/."""

import os
from pathlib import Path

from members.forum_key import forum_key_file_ensure

_KEY = Path(__file__).resolve().parents[2] / "var" / "bench-forum-key.pem"
os.environ.setdefault("CORDIALE_FORUM_KEY_FILE", str(_KEY))
forum_key_file_ensure(Path(os.environ["CORDIALE_FORUM_KEY_FILE"]))
