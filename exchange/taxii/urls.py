from django.urls import path

from . import views

# Collection and object ids are matched loosely here; the views answer 404 for any id
# that is not one of the caller's.
urlpatterns = [
    path("", views.DiscoveryView.as_view(), name="taxii-discovery"),
    path(f"{views.API_ROOT}/", views.ApiRootView.as_view(), name="taxii-root"),
    path(
        f"{views.API_ROOT}/collections/", views.CollectionsView.as_view(), name="taxii-collections"
    ),
    path(
        f"{views.API_ROOT}/collections/<str:collection_id>/",
        views.CollectionView.as_view(),
        name="taxii-collection",
    ),
    path(
        f"{views.API_ROOT}/collections/<str:collection_id>/objects/",
        views.ObjectsView.as_view(),
        name="taxii-objects",
    ),
    path(
        f"{views.API_ROOT}/collections/<str:collection_id>/objects/<str:object_id>/",
        views.ObjectView.as_view(),
        name="taxii-object",
    ),
    path(
        f"{views.API_ROOT}/collections/<str:collection_id>/objects/<str:object_id>/versions/",
        views.VersionsView.as_view(),
        name="taxii-versions",
    ),
    path(
        f"{views.API_ROOT}/collections/<str:collection_id>/manifest/",
        views.ManifestView.as_view(),
        name="taxii-manifest",
    ),
]
