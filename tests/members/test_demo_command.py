"""``manage.py demo --no-serve`` sets up a usable forum and can run again."""

import json
import stat
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from rest_framework.test import APIClient

from members.models import Member, SharingGroup, SigningKey

pytestmark = pytest.mark.django_db


def run_demo(var_dir: Path) -> dict[str, Any]:
    out = StringIO()
    with override_settings(DEBUG=True, VAR_DIR=var_dir):
        call_command("demo", "--no-serve", stdout=out)
    summary: dict[str, Any] = json.loads(out.getvalue().strip().splitlines()[-1])
    return summary


def test_demo_sets_up_members_keys_and_statements(tmp_path: Path) -> None:
    """Two active members with working all-scope keys, private keys written 0600, a group,
    and each member's statements in the other's feed; a second run reuses all of it."""
    first = run_demo(tmp_path)
    assert set(first["members"]) == {"demo-acme", "demo-globex"}
    for slug, info in first["members"].items():
        assert info["statements"]["accepted"] == 3
        pem = Path(info["signing_key"])
        assert pem.parent == tmp_path / "demo"
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {info['api_key']}")
        assert client.get("/api/v1/me").json()["member"]["slug"] == slug
    globex = APIClient()
    globex.credentials(HTTP_AUTHORIZATION=f"Bearer {first['members']['demo-globex']['api_key']}")
    members = {
        s["member"]
        for c in globex.get("/api/v1/changes").json()["changes"]
        for s in c["statements"]
    }
    assert members == {"demo-acme", "demo-globex"}

    second = run_demo(tmp_path)
    assert second["admin"] == first["admin"]
    assert second["members"]["demo-acme"]["api_key"] != first["members"]["demo-acme"]["api_key"]
    assert Member.objects.filter(slug__startswith="demo-").count() == 2
    assert SigningKey.objects.count() == 2
    assert SharingGroup.objects.get(slug="demo-group").members.count() == 2


def test_demo_refuses_without_debug(tmp_path: Path) -> None:
    """The ``demo`` command refuses to run unless DEBUG is on."""
    with override_settings(DEBUG=False, VAR_DIR=tmp_path), pytest.raises(CommandError):
        call_command("demo", "--no-serve", stdout=StringIO())
