import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from forum.gctune import tune_collector

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forum.settings")
application = get_wsgi_application()

# Import the URLconf, and with it every view, while the worker starts rather than in
# the first request it serves (which would otherwise wait about a second for it);
# then tune the garbage collector for serving (forum/gctune.py).
get_resolver().url_patterns  # noqa: B018 - evaluated for its side effect
tune_collector()
