from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import health

handler400 = "forum.api.handler400"
handler403 = "forum.api.handler403"
handler404 = "forum.api.handler404"
handler500 = "forum.api.handler500"

api_v1: list[URLPattern | URLResolver] = [
    path("", include("members.urls")),
    path("", include("exchange.urls")),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "docs/",
        # The split view serves its start-up script as a file: no inline script to allow.
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[]
        ),
        name="docs",
    ),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("readyz/web", health.readyz_web, name="readyz-web"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
]
