from django.urls import path

from . import apis

urlpatterns = [
    path("signal-types", apis.SignalTypesApi.as_view(), name="signal-types"),
    path("labels", apis.LabelsApi.as_view(), name="labels"),
    path("statements", apis.StatementsApi.as_view(), name="statements"),
    path("changes", apis.ChangesApi.as_view(), name="changes"),
    path("match", apis.MatchApi.as_view(), name="match"),
    path("signals/<str:signal_type>/<path:value>", apis.SignalApi.as_view(), name="signal"),
    path("opinions/<str:signal_type>/<path:value>", apis.OpinionApi.as_view(), name="opinion"),
]
