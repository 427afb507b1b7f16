"""Signal values through POST /api/v1/statements, for every registered signal type.

Canonical values are accepted and stored exactly as signed. Invalid values and
non-canonical spellings of valid ones are ``invalid_value`` and leave no trace: the
server validates and never rewrites a signed value.
"""

from __future__ import annotations

import json

import pytest

from exchange.client.signal_types import SIGNAL_TYPES
from exchange.models import Signal, Statement
from tests.factories import Party, make_party

pytestmark = pytest.mark.django_db

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ2 = "0f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22f"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _vpdq(*frames: str, sep: str = ", ") -> str:
    return "[" + sep.join(json.dumps(f) for f in frames) + "]"


VALID: dict[str, list[str]] = {
    "pdq": [PDQ, "0" * 64, "f" * 64],
    "md5": [MD5, "0" * 32],
    "sha256": [SHA, "a" * 64],
    "url": [
        "https://example.com/",
        "http://example.com/a/B?q=X#"[:-1],
        "https://example.com:8443/path%20with?x=1&y=2",
        "http://[2001:db8::1]:8080/path/a%20b",
        "https://xn--bcher-kva.example/",
    ],
    "vpdq": [
        _vpdq(f"{PDQ},100,0.0"),
        _vpdq(f"{PDQ},100,0.0", f"{PDQ2},87,1.0", f"{PDQ},42,1.23e+02"),
    ],
}

INVALID: dict[str, list[str]] = {
    "pdq": [
        PDQ.upper(),
        PDQ[:32] + PDQ[32:].upper(),
        f" {PDQ}",
        f"{PDQ}\n",
        PDQ[:-1],
        PDQ + "0",
        PDQ[:-1] + "g",
        "",
        "0x" + PDQ[2:],
    ],
    "md5": [MD5.upper(), f"{MD5} ", MD5[:-1], SHA, "z" * 32],
    "sha256": [SHA.upper(), f"\t{SHA}", SHA[:-2], MD5, SHA[:-1] + "-"],
    "url": [
        "HTTPS://example.com/",
        "https://Example.com/",
        "https://EXAMPLE.COM/path",
        "https://example.com:443/",
        "http://example.com:80/x",
        "https://example.com/#top",
        "https://example.com/page#",
        "https://example.com",
        " https://example.com/",
        "https://example.com/ ",
        "https://example.com/a b",
        "https://user:pw@example.com/",
        "ftp://example.com/",
        "javascript:alert(1)",
        "example.com/",
        "https:///path",
        "https://example.com:0/",
        "https://example.com:99999/",
        "https://example.com:0443/",
        "https://bücher.example/",
        "",
    ],
    "vpdq": [
        "[]",
        _vpdq(f"{PDQ},100,0.0", f"{PDQ2},87,1.0", sep=","),
        _vpdq(f"{PDQ.upper()},100,0.0"),
        _vpdq(f"{PDQ},100,0"),
        _vpdq(f"{PDQ},100,0.00"),
        _vpdq(f"{PDQ},101,0.0"),
        _vpdq(f"{PDQ},-1,0.0"),
        _vpdq(f"{PDQ},100,-1.0"),
        _vpdq(f"{PDQ},100,123.4"),
        _vpdq(f"{PDQ}, 100,0.0"),
        _vpdq(f"{PDQ},100"),
        " " + _vpdq(f"{PDQ},100,0.0"),
        '{"frames": []}',
        "[1, 2]",
        "not json",
    ],
}


def test_cases_cover_every_registered_signal_type() -> None:
    """A new signal type must come with API cases here."""
    assert set(VALID) == set(INVALID) == set(SIGNAL_TYPES)


@pytest.fixture
def acme() -> Party:
    return make_party("acme")


@pytest.mark.parametrize(
    ("signal_type", "value"),
    [(name, v) for name in sorted(SIGNAL_TYPES) for v in VALID[name]],
)
def test_canonical_value_is_accepted_and_stored_as_signed(
    acme: Party, signal_type: str, value: str
) -> None:
    """The canonical form goes through and is echoed and stored byte for byte."""
    body = acme.submit(acme.statement(signal_type, value))
    result = body["results"][0]
    assert result["status"] == "accepted", result
    assert (result["signal_type"], result["value"]) == (signal_type, value)
    assert Signal.objects.get(signal_type=signal_type).value == value


@pytest.mark.parametrize(
    ("signal_type", "value"),
    [(name, v) for name in sorted(SIGNAL_TYPES) for v in INVALID[name]],
)
def test_invalid_or_non_canonical_value_is_rejected(
    acme: Party, signal_type: str, value: str
) -> None:
    """Invalid and non-canonical values are ``invalid_value``, for asserts and retracts."""
    body = acme.submit(
        acme.statement(signal_type, value), acme.statement(signal_type, value, op="retract")
    )
    for result in body["results"]:
        assert (result["status"], result.get("code")) == ("rejected", "invalid_value"), result
        assert result["detail"]
    assert Signal.objects.count() == 0
    assert Statement.objects.count() == 0


@pytest.mark.parametrize("signal_type", sorted(SIGNAL_TYPES))
def test_normalised_input_becomes_acceptable(acme: Party, signal_type: str) -> None:
    """What the client library's ``normalize`` makes of a rejected spelling is accepted
    (so a rejection always has a fix), unless the input is invalid outright."""
    cls = SIGNAL_TYPES[signal_type]
    fixed = set()
    for value in INVALID[signal_type]:
        try:
            fixed.add(cls.normalize(value))
        except Exception:  # noqa: S112 - invalid outright: no canonical form
            continue
    assert fixed, "at least one non-canonical spelling per type"
    body = acme.submit(*[acme.statement(signal_type, v) for v in sorted(fixed)])
    assert body["accepted"] == len(fixed), body
