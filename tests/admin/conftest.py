"""Staff accounts for the admin tests: a superuser and a view-only reviewer, both
signed in with a verified second factor."""

from typing import Any

import pytest

from tests.factories import make_staff, verified_admin_client

# The apps whose models the console shows; a viewer may look at all of them.
CONSOLE_APPS = ("members", "exchange", "auth", "otp_totp", "axes")


def make_viewer(username: str = "viewer") -> tuple[Any, Any]:
    """A staff user (not a superuser) holding every ``view_*`` permission of the
    console's models and nothing else, with a confirmed TOTP device."""
    from django.contrib.auth.models import Permission

    user, device = make_staff(username)
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])
    user.user_permissions.set(
        Permission.objects.filter(
            codename__startswith="view_", content_type__app_label__in=CONSOLE_APPS
        )
    )
    return user, device


@pytest.fixture
def viewer_client() -> Any:
    return verified_admin_client(*make_viewer())


@pytest.fixture
def root_client() -> Any:
    return verified_admin_client(*make_staff("root"))
