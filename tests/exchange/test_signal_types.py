import json
from typing import ClassVar

import pytest

from exchange.client.signal_types import (
    SIGNAL_TYPES,
    InvalidSignalValue,
    Md5Signal,
    PdqSignal,
    Sha256Signal,
    SignalType,
    UnknownSignalType,
    UrlSignal,
    VpdqSignal,
    build_registry,
    get_signal_type,
)
from exchange.client.statement_format import CONTENT_TYPES

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

ALL_TYPES = list(SIGNAL_TYPES.values())

# (type, canonical value) pairs that validate must accept unchanged.
VALID = [
    (PdqSignal, PDQ),
    (Md5Signal, MD5),
    (Sha256Signal, SHA256),
    (UrlSignal, "https://example.com/"),
    (UrlSignal, "http://example.com:8080/a/B%2Fc?q=Mixed&x="),
    (UrlSignal, "https://sub.example.co.uk/path/"),
    (UrlSignal, "https://example.com/?"),
    (UrlSignal, "https://[2001:db8::1]/"),
    (UrlSignal, "https://xn--bcher-kva.example/"),
    (UrlSignal, "https://example.com/caf\u00e9"),
    (VpdqSignal, json.dumps([f"{PDQ},100,0.0"])),
    (VpdqSignal, json.dumps([f"{PDQ},0,0.001", f"{PDQ},50,12.3", f"{PDQ},99,1.23e+02"])),
]

# (type, reasonable but non-canonical input, canonical form)
FIXABLE = [
    (PdqSignal, PDQ.upper(), PDQ),
    (PdqSignal, f"  {PDQ}\n", PDQ),
    (Md5Signal, MD5.upper(), MD5),
    (Md5Signal, f"\t{MD5} ", MD5),
    (Sha256Signal, SHA256.upper(), SHA256),
    (Sha256Signal, f" {SHA256}", SHA256),
    (UrlSignal, "https://example.com", "https://example.com/"),
    (UrlSignal, "HTTPS://example.com/", "https://example.com/"),
    (UrlSignal, "https://Example.COM/Path", "https://example.com/Path"),
    (UrlSignal, "https://example.com:443/a", "https://example.com/a"),
    (UrlSignal, "http://example.com:80/a", "http://example.com/a"),
    (UrlSignal, "http://example.com:0080/a", "http://example.com/a"),
    (UrlSignal, "https://example.com:/a", "https://example.com/a"),
    (UrlSignal, "https://example.com/a#section", "https://example.com/a"),
    (UrlSignal, "https://example.com/a#", "https://example.com/a"),
    (UrlSignal, "https://example.com?q=1", "https://example.com/?q=1"),
    (UrlSignal, " https://example.com/a ", "https://example.com/a"),
    (UrlSignal, "https://[2001:DB8::1]:443/", "https://[2001:db8::1]/"),
    (UrlSignal, "https://b\u00fccher.example/", "https://xn--bcher-kva.example/"),
    (
        VpdqSignal,
        json.dumps([f"{PDQ},100,0.0"], separators=(",", ":")) + "\n",
        json.dumps([f"{PDQ},100,0.0"]),
    ),
    (VpdqSignal, json.dumps([f"{PDQ.upper()},100,0"]), json.dumps([f"{PDQ},100,0.0"])),
    (VpdqSignal, json.dumps([f"{PDQ}, 7 , 1.50"]), json.dumps([f"{PDQ},7,1.5"])),
    (VpdqSignal, json.dumps([f"{PDQ},007,123.456"]), json.dumps([f"{PDQ},7,1.23e+02"])),
    (VpdqSignal, json.dumps([f"{PDQ},100,1e0"]), json.dumps([f"{PDQ},100,1.0"])),
]

# (type, value that neither validate nor normalize accepts)
INVALID = [
    (PdqSignal, ""),
    (PdqSignal, PDQ[:-1]),
    (PdqSignal, PDQ + "0"),
    (PdqSignal, "g" + PDQ[1:]),
    (PdqSignal, MD5),
    (Md5Signal, SHA256),
    (Md5Signal, "z" * 32),
    (Sha256Signal, PDQ[:-2] + "  "),
    (Sha256Signal, "0x" + SHA256[2:]),
    (UrlSignal, ""),
    (UrlSignal, "example.com/path"),
    (UrlSignal, "//example.com/"),
    (UrlSignal, "ftp://example.com/"),
    (UrlSignal, "javascript:alert(1)"),
    (UrlSignal, "https:///path"),
    (UrlSignal, "https://"),
    (UrlSignal, "https://exa mple.com/"),
    (UrlSignal, "https://example.com/a b"),
    (UrlSignal, "https://example.com/a\tb"),
    (UrlSignal, "https://example.com/\x00"),
    (UrlSignal, "https://user:secret@example.com/"),
    (UrlSignal, "https://example.com:99999/"),
    (UrlSignal, "https://example.com:0/"),
    (UrlSignal, "https://example.com:http/"),
    (UrlSignal, "https://exa<mple.com/"),
    (VpdqSignal, ""),
    (VpdqSignal, "[]"),
    (VpdqSignal, "{}"),
    (VpdqSignal, f'"{PDQ},100,0.0"'),
    (VpdqSignal, json.dumps([[PDQ, 100, 0.0]])),
    (VpdqSignal, json.dumps([f"{PDQ},100"])),
    (VpdqSignal, json.dumps([f"{PDQ},100,0.0,1"])),
    (VpdqSignal, json.dumps([f"{PDQ[:-1]},100,0.0"])),
    (VpdqSignal, json.dumps([f"{PDQ},101,0.0"])),
    (VpdqSignal, json.dumps([f"{PDQ},-1,0.0"])),
    (VpdqSignal, json.dumps([f"{PDQ},50.0,0.0"])),
    (VpdqSignal, json.dumps([f"{PDQ},50,-1.0"])),
    (VpdqSignal, json.dumps([f"{PDQ},50,nan"])),
    (VpdqSignal, json.dumps([f"{PDQ},50,inf"])),
    (VpdqSignal, json.dumps([f"{PDQ},50,"])),
    (VpdqSignal, f'["{PDQ},100,0.0", NaN]'),
]


def test_registry_lists_the_v1_types() -> None:
    """The contract's v1 signal types are registered under their names."""
    assert set(SIGNAL_TYPES) == {"pdq", "md5", "sha256", "url", "vpdq"}
    for name, signal_type in SIGNAL_TYPES.items():
        assert signal_type.name == name
        assert get_signal_type(name) is signal_type


@pytest.mark.parametrize("signal_type", ALL_TYPES, ids=lambda t: t.name)
def test_type_is_described(signal_type: type[SignalType]) -> None:
    """Every type has a description, known content types and at least one example."""
    assert signal_type.description
    assert signal_type.content_types
    assert set(signal_type.content_types) <= set(CONTENT_TYPES)
    assert signal_type.examples


@pytest.mark.parametrize(
    ("signal_type", "example"),
    [(t, e) for t in ALL_TYPES for e in t.examples],
    ids=lambda v: v.name if isinstance(v, type) else None,
)
def test_examples_are_canonical(signal_type: type[SignalType], example: str) -> None:
    """Every published example validates and is its own normal form."""
    assert signal_type.validate(example) == example
    assert signal_type.normalize(example) == example


@pytest.mark.parametrize(("signal_type", "value"), VALID)
def test_canonical_values_are_accepted(signal_type: type[SignalType], value: str) -> None:
    """validate returns a canonical value unchanged and normalize leaves it alone."""
    assert signal_type.validate(value) == value
    assert signal_type.normalize(value) == value


@pytest.mark.parametrize(("signal_type", "value", "canonical"), FIXABLE)
def test_non_canonical_values_are_rejected_then_fixed(
    signal_type: type[SignalType], value: str, canonical: str
) -> None:
    """The server refuses a non-canonical value; the client's normalize fixes it."""
    with pytest.raises(InvalidSignalValue) as excinfo:
        signal_type.validate(value)
    assert excinfo.value.hint
    assert signal_type.normalize(value) == canonical
    assert signal_type.validate(canonical) == canonical


@pytest.mark.parametrize(("signal_type", "value"), INVALID)
def test_invalid_values_are_rejected(signal_type: type[SignalType], value: str) -> None:
    """Values that cannot be made canonical fail both ways, with a hint."""
    with pytest.raises(InvalidSignalValue) as excinfo:
        signal_type.validate(value)
    assert excinfo.value.hint
    with pytest.raises(InvalidSignalValue):
        signal_type.normalize(value)


@pytest.mark.parametrize("signal_type", ALL_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("value", [None, 42, b"abc", ["x"]])
def test_non_strings_are_rejected(signal_type: type[SignalType], value: object) -> None:
    """A JSON claim of the wrong type is an invalid value, not a crash."""
    with pytest.raises(InvalidSignalValue):
        signal_type.validate(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignalValue):
        signal_type.normalize(value)  # type: ignore[arg-type]


def test_hex_hint_names_the_problem() -> None:
    """The hint says what is wrong, so a member can fix its client."""
    with pytest.raises(InvalidSignalValue, match="64 lowercase hex characters; got upper case"):
        PdqSignal.validate(PDQ.upper())
    with pytest.raises(InvalidSignalValue, match="32 lowercase hex characters; got 31 characters"):
        Md5Signal.validate(MD5[:-1])


def test_vpdq_canonical_form_is_what_python_threatexchange_writes() -> None:
    """Mirror of vpdq_util.vpdq_to_json: json.dumps of f"{hex},{quality},{seconds:.3}"."""
    frames = [(PDQ, 100, 0.0), (PDQ, 90, 1.0), (PDQ, 80, 12.345), (PDQ, 70, 1234.5)]
    written = json.dumps([f"{h},{q},{s:.3}" for h, q, s in frames])
    assert written == (f'["{PDQ},100,0.0", "{PDQ},90,1.0", "{PDQ},80,12.3", "{PDQ},70,1.23e+03"]')
    assert VpdqSignal.validate(written) == written


def test_vpdq_keeps_frame_order_and_duplicates() -> None:
    """Frames are part of the signed value: normalisation neither sorts nor dedupes them."""
    value = json.dumps([f"{PDQ},100,2.0", f"{PDQ},100,1.0", f"{PDQ},100,1.0"])
    assert VpdqSignal.normalize(value) == value


def test_unknown_signal_type() -> None:
    """An unregistered name raises UnknownSignalType carrying the name."""
    with pytest.raises(UnknownSignalType) as excinfo:
        get_signal_type("photodna")
    assert excinfo.value.name == "photodna"
    with pytest.raises(UnknownSignalType):
        get_signal_type("PDQ")


def test_registry_rejects_duplicate_names() -> None:
    """Two types registered under one name are a programming error caught at import."""

    class OtherPdq(PdqSignal):
        description: ClassVar[str] = "A second PDQ type."

    with pytest.raises(ValueError, match="'pdq' is used by both PdqSignal and OtherPdq"):
        build_registry([PdqSignal, Md5Signal, OtherPdq])
