"""The admin app, configured to serve ``forum.admin_site.CordialeAdminSite``.

Kept apart from ``forum.admin_site`` because app configs load before models, and the
site's login form imports the user model.
"""

from django.contrib.admin.apps import AdminConfig


class CordialeAdminConfig(AdminConfig):
    default_site = "forum.admin_site.CordialeAdminSite"
