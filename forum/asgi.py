import os

from django.core.asgi import get_asgi_application

from forum.gctune import tune_collector

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forum.settings")
application = get_asgi_application()
tune_collector()  # see forum/gctune.py
