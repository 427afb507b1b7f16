from django.urls import path

from . import apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="me"),
    path("members", apis.MemberListApi.as_view(), name="members"),
    path("jwks", apis.JwksApi.as_view(), name="jwks"),
    path("signing-keys", apis.SigningKeyListApi.as_view(), name="signing-keys"),
    path("signing-keys/<str:kid>", apis.SigningKeyApi.as_view(), name="signing-key"),
    path("members/<slug:slug>/jwks", apis.MemberJwksApi.as_view(), name="member-jwks"),
    path("audit/checkpoints", apis.AuditCheckpointsApi.as_view(), name="audit-checkpoints"),
]
