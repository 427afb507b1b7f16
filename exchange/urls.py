from django.urls import path

from . import apis
from .disputes import apis as dispute_apis
from .sightings import apis as sighting_apis
from .webhooks import apis as webhook_apis

urlpatterns = [
    path("signal-types", apis.SignalTypesApi.as_view(), name="signal-types"),
    path("labels", apis.LabelsApi.as_view(), name="labels"),
    path("statements", apis.StatementsApi.as_view(), name="statements"),
    path("changes", apis.ChangesApi.as_view(), name="changes"),
    path("match", apis.MatchApi.as_view(), name="match"),
    path("signals/<str:signal_type>/<path:value>", apis.SignalApi.as_view(), name="signal"),
    path("opinions/<str:signal_type>/<path:value>", apis.OpinionApi.as_view(), name="opinion"),
    path("disputes", dispute_apis.DisputesApi.as_view(), name="disputes"),
    path("disputes/<int:pk>", dispute_apis.DisputeApi.as_view(), name="dispute"),
    path(
        "disputes/<int:pk>/responses",
        dispute_apis.DisputeResponsesApi.as_view(),
        name="dispute-responses",
    ),
    path("sightings", sighting_apis.SightingsApi.as_view(), name="sightings"),
    path(
        "sightings/<str:signal_type>/<path:value>",
        sighting_apis.SignalSightingsApi.as_view(),
        name="signal-sightings",
    ),
    path("webhooks", webhook_apis.WebhookListApi.as_view(), name="webhooks"),
    path("webhooks/<int:pk>", webhook_apis.WebhookApi.as_view(), name="webhook"),
    path(
        "webhooks/<int:pk>/deliveries",
        webhook_apis.WebhookDeliveriesApi.as_view(),
        name="webhook-deliveries",
    ),
    path("webhooks/<int:pk>/ping", webhook_apis.WebhookPingApi.as_view(), name="webhook-ping"),
    path(
        "webhooks/<int:pk>/rotate-secret",
        webhook_apis.WebhookRotateSecretApi.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "webhooks/<int:pk>/enable", webhook_apis.WebhookEnableApi.as_view(), name="webhook-enable"
    ),
]
