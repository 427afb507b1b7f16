"""The statement format module: the example it documents, and that it needs no Django."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import base64url, jws, statement_format

RFC_8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"


def _documented_token() -> str:
    docstring = statement_format.__doc__ or ""
    block = docstring.split("the example above is the token::", 1)[1].split("(one string", 1)[0]
    return "".join(block.split())


def test_the_documented_token_verifies_and_carries_the_documented_claims() -> None:
    """The example token in the docstring is the example claims, signed with the RFC 8037
    key, and satisfies every rule of the vocabulary the module states."""
    parsed = jws.parse_compact(_documented_token())
    assert parsed.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    private = Ed25519PrivateKey.from_private_bytes(base64url.decode_canonical(RFC_8037_D))
    assert jws.verify(parsed, private.public_key())
    claims = parsed.claims
    assert set(statement_format.REQUIRED_CLAIMS) <= set(claims)
    assert claims["op"] == statement_format.OP_ASSERT
    assert claims["tlp"] in statement_format.TLP_VALUES
    assert claims["audience"] == statement_format.AUDIENCE_FORUM


def test_audience_claims_for_groups_round_trip() -> None:
    """``group:<slug>`` names the group; ``forum`` and other text name none."""
    assert statement_format.group_audience("eu-hotline") == "group:eu-hotline"
    assert statement_format.audience_group_slug("group:eu-hotline") == "eu-hotline"
    assert statement_format.audience_group_slug("group:") == ""
    assert statement_format.audience_group_slug("forum") is None


@pytest.mark.parametrize("data", [b"", b"\xfb\xff", b"\x00" * 31, bytes(range(256))])
def test_base64url_round_trips_without_padding(data: bytes) -> None:
    """Encoding leaves no ``=``; both decoders give the bytes back."""
    text = base64url.encode(data)
    assert "=" not in text
    assert base64url.decode(text) == base64url.decode_canonical(text) == data


@pytest.mark.parametrize("text", ["QQ==", "QR", "Q", "Q+8", "Q/8"])
def test_base64url_canonical_decoding_refuses_other_spellings(text: str) -> None:
    """Padding, stray bits, impossible lengths and the standard alphabet are refused."""
    with pytest.raises(base64url.NotCanonical):
        base64url.decode_canonical(text)


def test_the_format_and_the_client_import_without_django() -> None:
    """What the member-side client shares with the server loads in a Python without
    Django, so the client stays usable on its own."""
    code = (
        "import sys\n"
        "import exchange.client.statement_format, exchange.client.base64url, exchange.client.jws\n"
        "import exchange.client, exchange.client.cli\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
