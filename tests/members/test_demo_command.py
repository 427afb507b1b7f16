"""``manage.py demo --no-serve`` sets up a usable forum and can run again."""

import json
import socket
import stat
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from rest_framework.test import APIClient

from members.models import Member, SharingGroup, SigningKey
from tests.support.live_server import LiveForum, cordiale_command, run
from tests.support.processes import free_port

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


def test_a_busy_port_fails_before_anything_is_set_up_or_printed(tmp_path: Path) -> None:
    """With the port already taken, the demo fails at once (``port_in_use``), before it
    migrates, creates members or prints any key."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = StringIO()
        with (
            override_settings(DEBUG=True, VAR_DIR=tmp_path),
            pytest.raises(CommandError, match=f"Port {port}") as failed,
        ):
            call_command("demo", "--port", str(port), stdout=out)
    assert getattr(failed.value, "code", None) == "port_in_use"
    assert out.getvalue() == ""
    assert not Member.objects.filter(slug__startswith="demo-").exists()
    assert not (tmp_path / "demo").exists()


def test_the_served_demo_accepts_local_webhook_receivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the demo serves, a member may create a webhook to a receiver on this machine
    (refused by a forum unless CORDIALE_WEBHOOK_ALLOW_PRIVATE); the demo turns that on
    for its own serving only and restores it after."""
    from members.management.commands import demo

    served: list[int] = []
    real_call_command = demo.call_command

    def fake_call_command(name: str, *args: Any, **kwargs: Any) -> None:
        if name != "runserver":
            real_call_command(name, *args, **kwargs)
            return
        key = json.loads(out.getvalue().strip().splitlines()[-1])["members"]["demo-acme"]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key['api_key']}")
        created = client.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, format="json")
        served.append(created.status_code)

    monkeypatch.setattr(demo, "call_command", fake_call_command)
    out = StringIO()
    with override_settings(DEBUG=True, VAR_DIR=tmp_path, CORDIALE_WEBHOOK_ALLOW_PRIVATE=False):
        call_command("demo", "--port", str(free_port()), stdout=out)
        assert served == [201]
        assert settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE is False
        client = APIClient()
        key = json.loads(out.getvalue().strip().splitlines()[-1])["members"]["demo-globex"]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key['api_key']}")
        refused = client.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, format="json")
        assert refused.status_code == 400, refused.content


@pytest.mark.django_db(transaction=True)
def test_the_printed_cli_session_works_as_printed(
    tmp_path: Path, forum: LiveForum, request: pytest.FixtureRequest
) -> None:
    """The ``cordiale`` session the demo prints, copied as it is (the exports, then sync,
    submit and verify), works against the forum: the replica holds the demo's signals, the
    sample file is accepted, every statement verifies."""
    port = int(forum.url.rsplit(":", 1)[1])
    out = StringIO()
    with override_settings(DEBUG=True, VAR_DIR=tmp_path):
        call_command("demo", "--no-serve", "--port", str(port), stdout=out)
    # The demo prints 127.0.0.1, which its debug settings allow; the test settings do not.
    allow = override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "127.0.0.1"])
    allow.enable()
    request.addfinalizer(allow.disable)
    lines = [line.strip() for line in out.getvalue().splitlines()]
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export ")
    )
    assert set(env) == {"CORDIALE_URL", "CORDIALE_API_KEY", "CORDIALE_SIGNING_KEY"}
    commands = [line.split()[1:] for line in lines if line.startswith(".venv/bin/cordiale ")]
    assert [c[0] for c in commands] == ["sync", "submit", "verify", "webhooks"]
    assert commands[-1][:2] == ["webhooks", "create"]  # for the served demo only

    results = {}
    for args in commands[:3]:
        done = run(cordiale_command(*args), env)
        assert done.returncode == 0, done.stdout + done.stderr
        results[args[0]] = done.last
    assert results["sync"]["signals"] >= 5  # its own three and globex's two forum ones
    assert results["submit"]["accepted"] == 2
    assert results["verify"]["failed"] == 0 and results["verify"]["verified"] >= 5
