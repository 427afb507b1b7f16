from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import TemplateView
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

# What the forum is and the ways in: the demo's first URL and the admin's "View site".
# A static page, the same for everybody: it names no member and needs no key.
landing_page = TemplateView.as_view(
    template_name="forum/home.html", http_method_names=["get", "head", "options"]
)

urlpatterns = [
    path("", landing_page, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("readyz/web", health.readyz_web, name="readyz-web"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("taxii2/", include("exchange.taxii.urls")),
]
