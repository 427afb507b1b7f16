"""The forum's own key: configuration, generation, and rotation without breaking receipts."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.test import override_settings

from exchange.client import jws
from members.forum_key import forum_token_verify
from tests.factories import make_party, pdq
from tests.support.processes import ROOT, production_env

pytestmark = pytest.mark.django_db


def _d(private: Ed25519PrivateKey) -> str:
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return jws.b64url_encode(raw)


def test_rotation_keeps_old_receipts_verifiable() -> None:
    """After the forum key is replaced and the old public key listed in
    CORDIALE_FORUM_PREVIOUS_KEYS, a receipt signed by the old key still verifies against
    the JWKS (old key retired, new key active); new receipts use the new key."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old_x, new_x = jws.public_key_x(old.public_key()), jws.public_key_x(new.public_key())
    acme, globex = make_party("acme"), make_party("globex")
    before, after = pdq(), pdq()
    with override_settings(CORDIALE_FORUM_KEY=_d(old)):
        acme.submit(acme.statement("pdq", before))
    with override_settings(CORDIALE_FORUM_KEY=_d(new), CORDIALE_FORUM_PREVIOUS_KEYS=[old_x]):
        acme.submit(acme.statement("pdq", after))
        keys = {k["kid"]: k for k in globex.get("/api/v1/jwks").json()["keys"] if k.get("forum")}
        assert {(k["x"], k["status"]) for k in keys.values()} == {
            (new_x, "active"),
            (old_x, "retired"),
        }
        for value, x in ((before, old_x), (after, new_x)):
            receipt = globex.get(f"/api/v1/signals/pdq/{value}").json()["statements"][0]["receipt"]
            parsed = jws.parse_compact(receipt)
            assert keys[parsed.kid]["x"] == x
            assert jws.verify(parsed, jws.public_key_from_x(x))
            assert forum_token_verify(receipt, typ="cordiale-receipt") is not None


def test_generate_writes_a_private_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    """``forum_key --generate PATH`` writes a PEM Ed25519 key with mode 0600, prints its
    kid and x, and never overwrites an existing key."""
    path = tmp_path / "forum-key.pem"
    out = StringIO()
    call_command("forum_key", "--generate", str(path), stdout=out)
    printed = json.loads(out.getvalue().strip().splitlines()[-1])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert printed["x"] == jws.public_key_x(key.public_key())
    assert printed["kid"] == jws.jwk_thumbprint(printed["x"])
    with pytest.raises(CommandError, match="never overwritten"):
        call_command("forum_key", "--generate", str(path), stdout=StringIO())
    assert serialization.load_pem_private_key(path.read_bytes(), password=None).public_key()


def test_a_production_process_without_a_forum_key_fails_its_checks() -> None:
    """Outside debug mode, with no forum key configured, ``manage.py check`` (which
    ``migrate`` runs too) fails with cordiale.E001; with the key it passes."""
    env = production_env()
    env.pop("CORDIALE_FORUM_KEY_FILE")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "cordiale.E001" in result.stderr + result.stdout
    ok = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr


def test_generate_inline_key_for_environment_secrets() -> None:
    """``forum_key --generate -`` prints a new key's kid, x and private d; that d in
    CORDIALE_FORUM_KEY makes the forum sign with that key (published in the JWKS)."""
    out = StringIO()
    call_command("forum_key", "--generate", "-", stdout=out)
    printed = json.loads(out.getvalue().strip().splitlines()[-1])
    assert printed["kid"] == jws.jwk_thumbprint(printed["x"])
    with override_settings(CORDIALE_FORUM_KEY=printed["d"]):
        acme = make_party("acme")
        forum = [k for k in acme.get("/api/v1/jwks").json()["keys"] if k.get("forum")]
        assert [(k["kid"], k["x"]) for k in forum] == [(printed["kid"], printed["x"])]
