"""Web processes tune the garbage collector once the application is loaded."""

from __future__ import annotations

import gc
import importlib
import sys

from forum.gctune import THRESHOLDS


def test_loading_the_wsgi_application_tunes_the_collector() -> None:
    """Loading the WSGI application sets the collector's thresholds and freezes the objects made at
    start-up."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        if "forum.wsgi" in sys.modules:
            importlib.reload(sys.modules["forum.wsgi"])
        else:
            importlib.import_module("forum.wsgi")
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0  # start-up objects are out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
