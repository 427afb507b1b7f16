"""``cordiale keys`` end to end, each command a real process against a live forum: a new
member registers its key itself, an admin approves it by kid, the member rotates to a new
key with no admin and retires the old one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.live_server import LiveForum, LiveMember, cordiale_command, manage, run

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "signal_type,value,labels,tlp,audience\n"


def test_register_approve_rotate_retire(forum: LiveForum, tmp_path: Path) -> None:
    """keygen writes the public JWK beside the key; keys register leaves it pending (its
    statements rejected unknown_key); approve_signing_key activates it; keys rotate makes a
    new key active at once and --retire-old retires the first; keys list shows it all."""
    api_key = manage("create_member", "acme", "--name", "Acme")["api_key"]
    first = tmp_path / "acme.pem"
    keygen = run(cordiale_command("keygen", "--out", str(first)))
    assert keygen.returncode == 0, keygen.stderr
    public = json.loads((tmp_path / "acme.pub.jwk").read_text())
    assert public["kid"] == keygen.last["kid"] and "d" not in public
    member = LiveMember("acme", api_key, first, keygen.last["kid"], forum.url)

    registered = forum.cli(member, "keys", "register")
    assert registered.returncode == 0, registered.stderr
    assert registered.last["status"] == "pending" and registered.last["kid"] == member.kid
    assert "approve" in registered.stderr

    data = tmp_path / "one.csv"
    data.write_text(HEADER + "md5,d41d8cd98f00b204e9800998ecf8427e,recruitment,green,forum\n")
    refused = forum.cli(member, "submit", str(data))
    assert refused.returncode == 1 and refused.last["rejected"] == 1
    assert "unknown_key" in refused.stderr

    assert manage("approve_signing_key", member.kid) == {"kid": member.kid, "status": "active"}
    # The journal remembers the rejection; unknown_key rows are sent again by default.
    accepted = forum.cli(member, "submit", str(data))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.last["accepted"] == 1

    second = tmp_path / "acme-2026.pem"
    rotated = forum.cli(member, "keys", "rotate", "--new-key", str(second), "--retire-old")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.last["status"] == "active" and rotated.last["retired"] == member.kid
    assert (tmp_path / "acme-2026.pub.jwk").exists()

    moved = LiveMember("acme", api_key, second, rotated.last["kid"], forum.url)
    data2 = tmp_path / "two.csv"
    data2.write_text(HEADER + "md5,0cc175b9c0f1b6a831c399e269772661,recruitment,green,forum\n")
    assert forum.cli(moved, "submit", str(data2)).last["accepted"] == 1
    data3 = tmp_path / "three.csv"
    data3.write_text(HEADER + "md5,92eb5ffee6ae2fec3ad71c777531578f,recruitment,green,forum\n")
    old_again = forum.cli(member, "submit", str(data3))
    assert old_again.returncode == 1 and "revoked_key" in old_again.stderr

    listed = forum.cli(moved, "keys", "list")
    statuses = {k["kid"]: k["status"] for k in listed.last["keys"]}
    assert statuses == {member.kid: "retired", moved.kid: "active"}
