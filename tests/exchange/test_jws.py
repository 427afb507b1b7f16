import json
import warnings
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws as joserfc_jws
from joserfc.jwk import OKPKey

from exchange.client.jws import (
    MAX_TOKEN_LENGTH,
    InvalidKey,
    MalformedJWS,
    UnsupportedAlgorithm,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    load_public_key,
    parse_compact,
    public_jwk,
    public_key_from_x,
    public_key_x,
    sign_bytes,
    sign_compact,
    verify,
    verify_signature,
)

# RFC 8037 appendix A.1-A.4.
RFC_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

CLAIMS = {"iss": "acme", "iat": 1700000000, "jti": "j-1", "op": "retract", "value": "caf\u00e9"}


@pytest.fixture
def rfc_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC_D))


def _segment(value: Any) -> str:
    return b64url_encode(json.dumps(value).encode())


def _token(header: Any, claims: Any = CLAIMS, signature: bytes = b"\x00" * 64) -> str:
    return f"{_segment(header)}.{_segment(claims)}.{b64url_encode(signature)}"


HEADER = {"alg": "EdDSA", "kid": RFC_KID}


def test_b64url_round_trip() -> None:
    """Encoding drops padding and uses the URL-safe alphabet; decoding inverts it."""
    for length in range(10):
        data = bytes(range(250, 250 - length, -1))
        encoded = b64url_encode(data)
        assert "=" not in encoded and "+" not in encoded and "/" not in encoded
        assert b64url_decode(encoded) == data


@pytest.mark.parametrize(
    "text",
    ["QQ==", "QQ=", "Q", "QUJDR", "QU+D", "QU/D", "QU D", "QU\nD", "QR", "\u00e9\u00e9"],
)
def test_b64url_decode_is_strict(text: str) -> None:
    """Padding, foreign characters, impossible lengths and stray bits are refused."""
    with pytest.raises(MalformedJWS):
        b64url_decode(text)


def test_rfc8037_thumbprint() -> None:
    """RFC 8037 A.3: the thumbprint of the example key."""
    assert jwk_thumbprint(RFC_X) == RFC_KID


def test_rfc8037_key_and_signature(rfc_key: Ed25519PrivateKey) -> None:
    """RFC 8037 A.1, A.2 and A.4: our signer reproduces and our verifier accepts the example."""
    assert public_key_x(rfc_key.public_key()) == RFC_X
    assert sign_bytes({"alg": "EdDSA"}, b"Example of Ed25519 signing", rfc_key) == RFC_JWS
    header, payload, signature = RFC_JWS.split(".")
    key = public_key_from_x(RFC_X)
    assert verify_signature(f"{header}.{payload}".encode(), b64url_decode(signature), key)
    tampered = b64url_decode(payload.replace("RX", "RY"))
    assert not verify_signature(
        f"{header}.{b64url_encode(tampered)}".encode(), b64url_decode(signature), key
    )


def test_rfc8037_example_lacks_kid() -> None:
    """The RFC example has no kid, which statements require."""
    with pytest.raises(MalformedJWS, match="kid"):
        parse_compact(RFC_JWS)


def test_round_trip(rfc_key: Ed25519PrivateKey) -> None:
    """A signed statement parses back to its header and claims and verifies."""
    token = sign_compact(CLAIMS, rfc_key, RFC_KID, typ="cordiale-statement+jwt")
    parsed = parse_compact(token)
    assert parsed.header == {"alg": "EdDSA", "kid": RFC_KID, "typ": "cordiale-statement+jwt"}
    assert parsed.claims == CLAIMS
    assert parsed.kid == RFC_KID
    assert parsed.signing_input == token.rsplit(".", 1)[0].encode()
    assert len(parsed.signature) == 64
    assert verify(parsed, public_key_from_x(RFC_X))
    assert not verify(parsed, Ed25519PrivateKey.generate().public_key())


def test_header_and_payload_are_compact_utf8(rfc_key: Ed25519PrivateKey) -> None:
    """JSON is written without spaces and non-ASCII text as UTF-8, not escapes."""
    header, payload, _ = sign_compact(CLAIMS, rfc_key, RFC_KID).split(".")
    assert b64url_decode(header) == b'{"alg":"EdDSA","kid":"' + RFC_KID.encode() + b'"}'
    assert b'"value":"caf\xc3\xa9"' in b64url_decode(payload)


def test_tampered_payload_fails(rfc_key: Ed25519PrivateKey) -> None:
    """Changing one claim after signing invalidates the signature."""
    header, _, signature = sign_compact(CLAIMS, rfc_key, RFC_KID).split(".")
    forged = parse_compact(f"{header}.{_segment({**CLAIMS, 'iss': 'evil'})}.{signature}")
    assert forged.claims["iss"] == "evil"
    assert not verify(forged, public_key_from_x(RFC_X))


def test_tampered_signature_fails(rfc_key: Ed25519PrivateKey) -> None:
    """A flipped signature bit is caught by verify."""
    parsed = parse_compact(sign_compact(CLAIMS, rfc_key, RFC_KID))
    flipped = bytes([parsed.signature[0] ^ 1]) + parsed.signature[1:]
    forged = parse_compact(
        parsed.signing_input.decode() + "." + b64url_encode(flipped),
    )
    assert not verify(forged, public_key_from_x(RFC_X))


def _good() -> str:
    return _token(HEADER)


MALFORMED = {
    "two segments": _good().rsplit(".", 1)[0],
    "four segments": _good() + ".AAAA",
    "empty header": "." + _good().split(".", 1)[1],
    "empty payload": _segment(HEADER) + ".." + b64url_encode(b"\x00" * 64),
    "empty signature": _good().rsplit(".", 1)[0] + ".",
    "padding": _good() + "==",
    "plus sign": _good().replace("-", "+").replace("_", "+") + "+",
    "space": " " + _good(),
    "non-ascii": _good() + "\u00e9",
    "header not json": b64url_encode(b"alg") + "." + _good().split(".", 1)[1],
    "header array": _token(["EdDSA"]),
    "header string": _token("EdDSA"),
    "missing alg": _token({"kid": RFC_KID}),
    "missing kid": _token({"alg": "EdDSA"}),
    "empty kid": _token({"alg": "EdDSA", "kid": ""}),
    "numeric kid": _token({"alg": "EdDSA", "kid": 7}),
    "numeric typ": _token({**HEADER, "typ": 1}),
    "crit": _token({**HEADER, "crit": ["exp"], "exp": 1}),
    "b64": _token({**HEADER, "b64": False}),
    "jwk": _token({**HEADER, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": RFC_X}}),
    "jku": _token({**HEADER, "jku": "https://example.com/jwks"}),
    "x5u": _token({**HEADER, "x5u": "https://example.com/cert"}),
    "x5c": _token({**HEADER, "x5c": []}),
    "duplicate header member": (
        b64url_encode(f'{{"alg":"EdDSA","kid":"{RFC_KID}","kid":"other"}}'.encode())
        + "."
        + _good().split(".", 1)[1]
    ),
    "duplicate claim": (
        _segment(HEADER)
        + "."
        + b64url_encode(b'{"iss":"acme","iss":"evil"}')
        + "."
        + b64url_encode(b"\x00" * 64)
    ),
    "NaN claim": (
        _segment(HEADER) + "." + b64url_encode(b'{"iat":NaN}') + "." + b64url_encode(b"\0" * 64)
    ),
    "Infinity claim": (
        _segment(HEADER)
        + "."
        + b64url_encode(b'{"iat":-Infinity}')
        + "."
        + b64url_encode(b"\0" * 64)
    ),
    "payload not json": (
        _segment(HEADER)
        + "."
        + b64url_encode(b"Example of Ed25519 signing")
        + "."
        + b64url_encode(b"\0" * 64)
    ),
    "payload array": _token(HEADER, ["iss", "acme"]),
    "payload utf-16": (
        _segment(HEADER)
        + "."
        + b64url_encode('{"iss":"acme"}'.encode("utf-16"))
        + "."
        + b64url_encode(b"\0" * 64)
    ),
    "63-byte signature": _token(HEADER, signature=b"\x00" * 63),
    "65-byte signature": _token(HEADER, signature=b"\x00" * 65),
    "too long": _token(HEADER, {"pad": "x" * MAX_TOKEN_LENGTH}),
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_tokens_are_rejected(token: str) -> None:
    """Anything outside our strict profile of RFC 7515 raises MalformedJWS with a detail."""
    with pytest.raises(MalformedJWS) as excinfo:
        parse_compact(token)
    assert excinfo.value.detail
    assert excinfo.value.code == "malformed"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES256", "Ed25519", "eddsa", None, 1])
def test_other_algorithms_are_unsupported(alg: object) -> None:
    """Only EdDSA is accepted; the error says which alg was sent."""
    with pytest.raises(UnsupportedAlgorithm, match='"alg" must be "EdDSA"'):
        parse_compact(_token({"alg": alg, "kid": RFC_KID}))


def test_non_string_token() -> None:
    """A statement list item that is not a string is malformed."""
    with pytest.raises(MalformedJWS):
        parse_compact(b"abc.def.ghi")  # type: ignore[arg-type]


def test_unknown_header_members_are_ignored() -> None:
    """RFC 7515 says to ignore header members one does not understand (unless crit)."""
    parsed = parse_compact(_token({**HEADER, "cty": "JWT", "x-note": 1}))
    assert parsed.header["x-note"] == 1


def test_public_jwk() -> None:
    """The published JWK carries the thumbprint as kid."""
    assert public_jwk(RFC_X) == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": RFC_X,
        "kid": RFC_KID,
        "alg": "EdDSA",
        "use": "sig",
    }


def test_load_public_key_from_pem_and_x(rfc_key: Ed25519PrivateKey) -> None:
    """A PEM public key and a bare x give the same x."""
    pem = (
        rfc_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert load_public_key(pem) == RFC_X
    assert load_public_key(f"\n{pem}\n") == RFC_X
    assert load_public_key(RFC_X) == RFC_X
    assert load_public_key(f" {RFC_X}\n") == RFC_X


def test_load_public_key_refuses_private_keys(rfc_key: Ed25519PrivateKey) -> None:
    """A private key pasted by mistake is refused with advice, not silently accepted."""
    pem = rfc_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(InvalidKey, match="private key"):
        load_public_key(pem)


def test_load_public_key_refuses_other_key_types() -> None:
    """An EC public key is not an Ed25519 key."""
    pem = (
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(InvalidKey, match="Ed25519"):
        load_public_key(pem)


@pytest.mark.parametrize(
    "text",
    [
        "",
        RFC_X[:-1],
        RFC_X + "AA",
        RFC_X + "=",
        RFC_D + "AAAA",
        "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----",
    ],
)
def test_load_public_key_refuses_garbage(text: str) -> None:
    """Wrong lengths, padding and broken PEM raise InvalidKey."""
    with pytest.raises(InvalidKey):
        load_public_key(text)


def test_thumbprint_requires_a_valid_x() -> None:
    """A thumbprint is only computed for a 32-byte key."""
    with pytest.raises(InvalidKey):
        jwk_thumbprint("AAAA")


@pytest.fixture
def joserfc_key() -> OKPKey:
    return OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "d": RFC_D, "x": RFC_X})


def test_joserfc_tokens_verify_here(joserfc_key: OKPKey) -> None:
    """A statement signed by an independent JOSE library parses and verifies."""
    payload = json.dumps(CLAIMS).encode()
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates "EdDSA" in favour of "Ed25519".
        warnings.simplefilter("ignore")
        token = joserfc_jws.serialize_compact(
            {"alg": "EdDSA", "kid": RFC_KID}, payload, joserfc_key, algorithms=["EdDSA"]
        )
    parsed = parse_compact(token)
    assert parsed.claims == CLAIMS
    assert verify(parsed, public_key_from_x(RFC_X))


def test_our_tokens_verify_with_joserfc(rfc_key: Ed25519PrivateKey, joserfc_key: OKPKey) -> None:
    """A statement signed here verifies with an independent JOSE library."""
    token = sign_compact(CLAIMS, rfc_key, RFC_KID, typ="JWT")
    public = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": RFC_X})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = joserfc_jws.deserialize_compact(token, public, algorithms=["EdDSA"])
    assert json.loads(result.payload) == CLAIMS
    assert result.headers() == {"alg": "EdDSA", "kid": RFC_KID, "typ": "JWT"}
