"""Every administration command of CONTRACT.md, through ``call_command``: each acts
through its service and ends its output with one JSON line; bad input is a CommandError."""

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError

from members.models import AuditEntry, Member, SharingGroup, SigningKey
from members.services import api_key_lookup
from tests.factories import MemberFactory, make_party

pytestmark = pytest.mark.django_db

RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def run(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command(*args, stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue().strip().splitlines()[-1])
    return result


def test_create_member() -> None:
    """create_member: an active member and an all-scope key that authenticates."""
    result = run("create_member", "acme", "--name", "Acme")
    assert result["member"] == "acme"
    key = api_key_lookup(result["api_key"])
    assert key is not None and key.member.slug == "acme"
    assert sorted(key.scopes) == ["feedback", "manage", "read", "submit"]
    assert Member.objects.get(slug="acme").status == Member.Status.ACTIVE


def test_create_member_twice_is_an_error() -> None:
    """Creating a member whose slug exists is a command error (``member_exists``)."""
    run("create_member", "acme", "--name", "Acme")
    with pytest.raises(CommandError, match="member_exists"):
        run("create_member", "acme", "--name", "Acme again")


def test_issue_api_key_with_all_and_some_scopes() -> None:
    """issue_api_key: all scopes by default, exactly --scopes when given."""
    member = MemberFactory()
    everything = run("issue_api_key", member.slug)
    assert everything["member"] == member.slug
    assert sorted(everything["scopes"]) == ["feedback", "manage", "read", "submit"]
    some = run("issue_api_key", member.slug, "--scopes", "read,submit")
    assert some["scopes"] == ["read", "submit"]
    key = api_key_lookup(some["api_key"])
    assert key is not None and key.scopes == ["read", "submit"]


def test_issue_api_key_rejects_unknown_scope() -> None:
    """Issuing an API key with a scope that does not exist is a command error
    (``invalid_scopes``)."""
    member = MemberFactory()
    with pytest.raises(CommandError, match="invalid_scopes"):
        run("issue_api_key", member.slug, "--scopes", "read,admin")


def test_register_signing_key_with_x() -> None:
    """register_signing_key with the base64url x prints the RFC 7638 kid."""
    member = MemberFactory()
    assert run("register_signing_key", member.slug, RFC8037_X) == {
        "member": member.slug,
        "kid": RFC8037_KID,
    }
    assert SigningKey.objects.get(kid=RFC8037_KID).member == member


def test_register_signing_key_with_pem_file(tmp_path: Path) -> None:
    """register_signing_key with a PEM public key file."""
    member = MemberFactory()
    public = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "acme.pub.pem"
    pem.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    result = run("register_signing_key", member.slug, str(pem))
    assert result["member"] == member.slug
    assert SigningKey.objects.get(kid=result["kid"]).member == member


def test_register_signing_key_refuses_a_private_key(tmp_path: Path) -> None:
    """Registering a file holding a private key is refused (``invalid_key``): only public keys are
    registered."""
    member = MemberFactory()
    pem = tmp_path / "secret.pem"
    pem.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(CommandError, match="invalid_key"):
        run("register_signing_key", member.slug, str(pem))


def test_revoke_signing_key_from_now() -> None:
    """revoke_signing_key without --compromised-since: revoked, nothing withdrawn."""
    party = make_party()
    assert run("revoke_signing_key", party.kid) == {"kid": party.kid, "status": "revoked"}
    key = SigningKey.objects.get(kid=party.kid)
    assert key.revoked_at is not None and key.compromised_since is None


def test_revoke_signing_key_compromised_since() -> None:
    """revoke_signing_key --compromised-since records the compromise time."""
    party = make_party()
    result = run("revoke_signing_key", party.kid, "--compromised-since", "2026-01-02T03:04:05Z")
    assert result == {"kid": party.kid, "status": "revoked"}
    since = SigningKey.objects.get(kid=party.kid).compromised_since
    assert since is not None and since.isoformat() == "2026-01-02T03:04:05+00:00"


def test_revoke_signing_key_rejects_a_time_without_zone() -> None:
    """A compromise time without a time zone is a command error."""
    party = make_party()
    with pytest.raises(CommandError, match="time zone"):
        run("revoke_signing_key", party.kid, "--compromised-since", "2026-01-02T03:04:05")


def test_create_sharing_group_and_set_members() -> None:
    """create_sharing_group then set_group_members replaces the member list."""
    a, b, c = MemberFactory(slug="a"), MemberFactory(slug="b"), MemberFactory(slug="c")
    created = run("create_sharing_group", "g1", "--members", "b,a", "--name", "Group one")
    assert created == {"group": "g1", "members": ["a", "b"]}
    assert SharingGroup.objects.get(slug="g1").name == "Group one"
    replaced = run("set_group_members", "g1", "--members", "c,a")
    assert replaced == {"group": "g1", "members": ["a", "c"]}
    assert set(SharingGroup.objects.get(slug="g1").members.all()) == {a, c}
    assert b not in SharingGroup.objects.get(slug="g1").members.all()


def test_set_member_status() -> None:
    """set_member_status moves through the lifecycle; an impossible move is an error."""
    member = MemberFactory()
    assert run("set_member_status", member.slug, "suspended") == {
        "member": member.slug,
        "status": "suspended",
    }
    assert run("set_member_status", member.slug, "active")["status"] == "active"
    assert run("set_member_status", member.slug, "expelled")["status"] == "expelled"
    with pytest.raises(CommandError, match="invalid_transition"):
        run("set_member_status", member.slug, "active")


def test_verify_audit_ok() -> None:
    """verify_audit on an intact chain: ok with the number of entries."""
    make_party()
    assert run("verify_audit") == {"ok": True, "entries": AuditEntry.objects.count()}


@pytest.mark.parametrize(
    "args",
    [
        ("issue_api_key", "nobody"),
        ("register_signing_key", "nobody", RFC8037_X),
        ("set_member_status", "nobody", "active"),
        ("create_sharing_group", "g", "--members", "nobody"),
        ("set_group_members", "no-group", "--members", "nobody"),
        ("revoke_signing_key", "no-such-kid"),
    ],
)
def test_unknown_names_are_command_errors(args: tuple[str, ...]) -> None:
    """An unknown member, group or kid is a CommandError naming it, and changes nothing."""
    before = AuditEntry.objects.count()
    with pytest.raises(CommandError, match="No "):
        run(*args)
    assert AuditEntry.objects.count() == before


def test_key_arguments_may_start_with_a_dash() -> None:
    """A kid or x beginning with '-' (1 in 64 keys) is still taken as the argument."""
    party = make_party()
    key = SigningKey.objects.get(kid=party.kid)
    SigningKey.objects.filter(pk=key.pk).update(kid="-" + key.kid[1:])
    out = StringIO()
    call_command("revoke_signing_key", "-" + key.kid[1:], stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["status"] == "revoked"
