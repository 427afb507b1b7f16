"""Building, signing and key files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from exchange.client import jws
from exchange.client.statements import (
    StatementError,
    build_statement,
    generate_key,
    key_id,
    load_private_key,
    sign_statement,
)


def test_build_normalises_the_value_and_fills_iat_and_jti() -> None:
    """The value is made canonical before signing; jti is a fresh uuid4 hex; iat is now."""
    claims = build_statement(
        issuer="acme",
        signal_type="url",
        value=" HTTPS://Example.COM:443/watch?v=abc#t=1 ",
        op="assert",
        labels=["violent-attack", "isis"],
        tlp="amber+strict",
        audience="group:eu-hotline",
        exp=1_900_000_000,
        content_type="url",
        ref="case-42",
    )
    assert claims["value"] == "https://example.com/watch?v=abc"
    assert len(claims["jti"]) == 32 and int(claims["jti"], 16) >= 0
    assert isinstance(claims["iat"], int)
    assert claims["labels"] == ["violent-attack", "isis"]
    assert claims["exp"] == 1_900_000_000 and claims["ref"] == "case-42"
    other = build_statement(
        issuer="acme",
        signal_type="md5",
        value="D41D8CD98F00B204E9800998ECF8427E",
        labels=["x"],
        tlp="red",
        audience="forum",
    )
    assert other["jti"] != claims["jti"]


def test_retraction_has_no_assertion_claims() -> None:
    """A retraction carries only the issuer, time, id, operation and the signal, none of an
    assertion's claims."""
    claims = build_statement(
        issuer="acme", signal_type="md5", value="0" * 32, op="retract", iat=5, jti="j1"
    )
    assert claims == {
        "iss": "acme",
        "iat": 5,
        "jti": "j1",
        "op": "retract",
        "signal_type": "md5",
        "value": "0" * 32,
    }


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"signal_type": "sha1"}, "unknown_signal_type"),
        ({"value": "xyz"}, "invalid_value"),
        ({"labels": []}, "unknown_label"),
        ({"tlp": "white"}, "malformed"),
        ({"audience": "everyone"}, "invalid_audience"),
        ({"content_type": "audio"}, "malformed"),
        ({"jti": "x" * 65}, "malformed"),
    ],
)
def test_invalid_input_raises_with_the_servers_code(
    overrides: dict[str, object], code: str
) -> None:
    """Each invalid field raises a StatementError with the code the server would answer."""
    fields: dict[str, object] = {
        "issuer": "acme",
        "signal_type": "md5",
        "value": "0" * 32,
        "labels": ["a"],
        "tlp": "green",
        "audience": "forum",
    }
    fields.update(overrides)
    with pytest.raises(StatementError) as info:
        build_statement(**fields)  # type: ignore[arg-type]
    assert info.value.code == code


def test_sign_round_trip_verifies_with_exchange_jws(tmp_path: Path) -> None:
    """A signed statement parses, names the key's thumbprint and verifies; it is deterministic."""
    key = generate_key(tmp_path / "key.pem")
    claims = build_statement(
        issuer="acme",
        signal_type="pdq",
        value="F" * 64,
        labels=["a"],
        tlp="clear",
        audience="forum",
    )
    token = sign_statement(claims, key)
    parsed = jws.parse_compact(token)
    assert parsed.claims == claims
    assert parsed.kid == key_id(key) == jws.jwk_thumbprint(jws.public_key_x(key.public_key()))
    assert jws.verify(parsed, key.public_key())
    assert sign_statement(dict(claims), key) == token


def test_key_file_is_private_pem_and_loads(tmp_path: Path) -> None:
    """A generated key file is a PKCS#8 PEM readable by its owner only, loads to the same key, and
    is never overwritten."""
    path = tmp_path / "acme.pem"
    key = generate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert key_id(load_private_key(path)) == key_id(key)
    with pytest.raises(FileExistsError):
        generate_key(path)


def test_loading_a_bad_key_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a key, or no file at all, is a StatementError (``invalid_key`` for the
    former)."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(StatementError) as info:
        load_private_key(bad)
    assert info.value.code == "invalid_key"
    with pytest.raises(StatementError):
        load_private_key(tmp_path / "missing.pem")
