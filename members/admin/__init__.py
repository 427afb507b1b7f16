"""The forum admins' console for membership: one module per area, each registering its
admins when ``admin.autodiscover()`` imports this package.

Every change goes through the services (``members.services``, ``members.applications``,
``members.staff``) with the actor ``admin:<username>``, so an admin action is audited
and reaches the change feed exactly like the same command would. Nothing here edits a
model directly; what no service changes is read-only. The helpers the areas share are
in ``forum.admin_helpers``.
"""

from . import (  # noqa: F401  (each registers its admins)
    applications,
    audit,
    groups,
    keys,
    members,
    reports,
    staff_accounts,
)
