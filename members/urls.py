from django.urls import path

from . import apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="me"),
    path("members", apis.MemberListApi.as_view(), name="members"),
    path("jwks", apis.JwksApi.as_view(), name="jwks"),
    path("members/<slug:slug>/jwks", apis.MemberJwksApi.as_view(), name="member-jwks"),
    path("audit/checkpoints", apis.AuditCheckpointsApi.as_view(), name="audit-checkpoints"),
]
