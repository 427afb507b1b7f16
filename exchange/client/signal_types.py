"""
Signal types: the kinds of value a statement can be about, and their canonical forms.

A member signs the canonical form of a value; the server checks that a submitted value is
already canonical (``validate``) and never rewrites it, because rewriting would break the
signature. The member-side client turns reasonable input into the canonical form before
signing (``normalize``). This module imports nothing from Django so that the client can use it.

Canonical forms (v1):

``pdq``
    The 256-bit PDQ hash as 64 lowercase hex characters::

        f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22

``md5``
    32 lowercase hex characters: ``d41d8cd98f00b204e9800998ecf8427e``.

``sha256``
    64 lowercase hex characters:
    ``e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855``.

``url``
    An absolute ``http`` or ``https`` URL with a host. The scheme and host are lower case,
    the default port (80 for http, 443 for https) and any fragment are removed, and an empty
    path is written as ``/`` (RFC 3986 section 6.2.3 and the WHATWG URL standard agree that
    ``https://example.com`` and ``https://example.com/`` are the same resource). Path and query
    are kept exactly as given: percent-encoding and case there can be significant to the
    server that hosts the content. No whitespace, control characters or user info
    (``user:password@``, which would leak credentials to every member)::

        https://example.com/watch?v=abc  (from " HTTPS://Example.COM:443/watch?v=abc#t=1 ")

``vpdq``
    What python-threatexchange's vpdq extension writes (``vpdq_util.vpdq_to_json``): a JSON
    list, serialised by ``json.dumps`` with its default separators, of one string per frame
    ``"<pdq hex>,<quality>,<seconds>"``. The PDQ hash is 64 lowercase hex characters, the
    quality an integer from 0 to 100 written in decimal, and the seconds a non-negative float
    written with Python's ``format(seconds, ".3")``: three significant digits, so ``0.0``,
    ``1.5``, ``12.3`` and ``1.23e+02`` (for 123.4 s). We require at least one frame and at
    most ``VPDQ_MAX_FRAMES`` (3,600: an hour at one frame per second)::

        ["f8f8...9b22,100,0.0", "f8f8...9b22,87,1.0"]

Adding a signal type is one class below and one line in ``_ALL``.
"""

from __future__ import annotations

import json
import math
import re
from typing import ClassVar

from exchange.client import json_input, jws


class InvalidSignalValue(Exception):
    """A value that is not (or cannot be made into) the canonical form of its type."""

    code = "invalid_value"

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


class UnknownSignalType(Exception):
    """No signal type is registered under the given name."""

    code = "unknown_signal_type"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown signal type {name!r}")
        self.name = name


class SignalType:
    """A kind of signal: ``validate`` is strict (server), ``normalize`` is lenient (client)."""

    name: ClassVar[str]
    description: ClassVar[str]
    content_types: ClassVar[tuple[str, ...]]
    examples: ClassVar[tuple[str, ...]]
    # The longest signed statement about a value of this type, as a compact JWS.
    max_token_length: ClassVar[int] = jws.MAX_TOKEN_LENGTH

    @classmethod
    def normalize(cls, value: str) -> str:
        """Return the canonical form of a reasonable input, or raise InvalidSignalValue."""
        raise NotImplementedError

    @classmethod
    def validate(cls, value: str) -> str:
        """Return ``value`` if it is already canonical, else raise InvalidSignalValue."""
        canonical = cls.normalize(_require_str(value))
        if canonical != value:
            raise InvalidSignalValue(
                f"not in canonical form; the client library's normalize() gives "
                f"{_shorten(canonical)!r}"
            )
        return value


def _require_str(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSignalValue(f"must be a string; got {type(value).__name__}")
    return value


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_HEX_RE = re.compile(r"[0-9a-fA-F]+")


class HexDigestSignal(SignalType):
    """A fixed-length hash written as lowercase hex."""

    hex_length: ClassVar[int]

    @classmethod
    def normalize(cls, value: str) -> str:
        return cls._check(_require_str(value).strip().lower())

    @classmethod
    def validate(cls, value: str) -> str:
        if _require_str(value) != value.strip():
            cls._fail("surrounding whitespace")
        cls._check(value)
        if value != value.lower():
            cls._fail("upper case")
        return value

    @classmethod
    def _check(cls, value: str) -> str:
        if len(value) != cls.hex_length:
            cls._fail(f"{len(value)} characters")
        if not _HEX_RE.fullmatch(value):
            cls._fail("a non-hex character")
        return value

    @classmethod
    def _fail(cls, got: str) -> None:
        raise InvalidSignalValue(f"must be {cls.hex_length} lowercase hex characters; got {got}")


class PdqSignal(HexDigestSignal):
    name = "pdq"
    description = "PDQ perceptual hash of an image (Hamming distance matching)."
    content_types = ("photo",)
    hex_length = 64
    examples = (
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        "0000000000000000000000000000000000000000000000000000000000000000",
    )


class Md5Signal(HexDigestSignal):
    name = "md5"
    description = "MD5 digest of the exact bytes of a file."
    content_types = ("photo", "video", "pdf", "text", "file")
    hex_length = 32
    examples = ("d41d8cd98f00b204e9800998ecf8427e",)


class Sha256Signal(HexDigestSignal):
    name = "sha256"
    description = "SHA-256 digest of the exact bytes of a file."
    content_types = ("photo", "video", "pdf", "text", "file")
    hex_length = 64
    examples = ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",)


_URL_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<authority>[^/?#]*)"
    r"(?P<rest>[^#]*)"
    r"(?P<fragment>#.*)?",
    re.DOTALL,
)
_AUTHORITY_RE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]*)(?::(?P<port>[^:]*))?")
# Unreserved characters, sub-delims and percent-encoding (RFC 3986 reg-name); no userinfo.
_REG_NAME_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class UrlSignal(SignalType):
    name = "url"
    description = "Absolute http(s) URL where the content was found."
    content_types = ("url",)
    examples = (
        "https://example.com/",
        "https://example.com/watch?v=dQw4w9WgXcQ",
        "http://[2001:db8::1]:8080/path/a%20b",
    )

    @classmethod
    def normalize(cls, value: str) -> str:
        value = _require_str(value).strip()
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise InvalidSignalValue("must not contain whitespace or control characters")
        match = _URL_RE.fullmatch(value)
        if match is None:
            raise InvalidSignalValue("must be an absolute http or https URL")
        scheme = match["scheme"].lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidSignalValue(f"scheme must be http or https; got {scheme!r}")
        host, port = cls._split_authority(match["authority"])
        port_part = "" if port in ("", _DEFAULT_PORTS[scheme]) else f":{port}"
        rest = match["rest"]
        if not rest.startswith("/"):
            rest = "/" + rest
        return f"{scheme}://{host}{port_part}{rest}"

    @classmethod
    def validate(cls, value: str) -> str:
        canonical = cls.normalize(_require_str(value))
        if canonical == value:
            return value
        if value != value.strip():
            reason = "surrounding whitespace"
        elif "#" in value:
            reason = "a fragment"
        else:
            reason = "an upper-case scheme or host, a default port or an empty path"
        raise InvalidSignalValue(
            f"URL is not canonical ({reason}); canonical form: {_shorten(canonical)}"
        )

    @classmethod
    def _split_authority(cls, authority: str) -> tuple[str, str]:
        """Return (lowercased host, port without leading zeros or '' for none)."""
        if "@" in authority:
            raise InvalidSignalValue("must not contain user info (user:password@)")
        match = _AUTHORITY_RE.fullmatch(authority)
        if match is None:
            raise InvalidSignalValue(f"invalid host or port in {authority!r}")
        host = match["host"]
        if not host:
            raise InvalidSignalValue("must have a host")
        if not host.startswith("["):
            if not host.isascii():
                try:
                    host = host.encode("idna").decode("ascii")
                except UnicodeError as exc:
                    raise InvalidSignalValue(f"invalid host {host!r}") from exc
            if not _REG_NAME_RE.fullmatch(host):
                raise InvalidSignalValue(f"invalid host {host!r}")
        port = match["port"] or ""
        if port:
            if not port.isdigit() or not port.isascii() or not 0 < int(port) < 65536:
                raise InvalidSignalValue(f"port must be a number from 1 to 65535; got {port!r}")
            port = str(int(port))
        return host.lower(), port


_VPDQ_MAX_QUALITY = 100
# An hour of video at one frame per second; python-threatexchange hashes one frame a second.
VPDQ_MAX_FRAMES = 3600


class VpdqSignal(SignalType):
    name = "vpdq"
    description = (
        "vPDQ video hash: PDQ hashes of frames with quality and time, "
        "as written by python-threatexchange's vpdq extension."
    )
    content_types = ("video",)
    # 3,600 frames are ~300 kB of value and ~400 kB signed: above the ordinary limit.
    max_token_length = jws.MAX_LONG_TOKEN_LENGTH
    examples = (
        json.dumps(
            [
                "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,100,0.0",
                "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b23,87,1.0",
                "0f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22f,42,1.23e+02",
            ]
        ),
    )

    @classmethod
    def normalize(cls, value: str) -> str:
        try:
            frames = json_input.loads_with(_require_str(value), parse_constant=_reject_constant)
        except ValueError as exc:
            raise InvalidSignalValue(f"must be a JSON list of frame strings: {exc}") from exc
        if not isinstance(frames, list) or not frames:
            raise InvalidSignalValue("must be a non-empty JSON list of frame strings")
        if len(frames) > VPDQ_MAX_FRAMES:
            raise InvalidSignalValue(
                f"at most {VPDQ_MAX_FRAMES} frames (an hour at one frame per second); "
                f"got {len(frames)}"
            )
        canonical = [cls._normalize_frame(index, frame) for index, frame in enumerate(frames)]
        # Exactly python-threatexchange's json.dumps(list_of_str) with default separators.
        return json.dumps(canonical)

    @classmethod
    def validate(cls, value: str) -> str:
        canonical = cls.normalize(_require_str(value))
        if canonical != value:
            raise InvalidSignalValue(
                "not serialised as python-threatexchange's vpdq extension writes it "
                '(json.dumps list with ", " between items, lowercase hex, decimal quality, '
                'seconds as format(seconds, ".3"), no other whitespace)'
            )
        return value

    @classmethod
    def _normalize_frame(cls, index: int, frame: object) -> str:
        expected = 'must be "<pdq hex>,<quality>,<seconds>"'
        if not isinstance(frame, str):
            raise InvalidSignalValue(f"frame {index} {expected}; got {type(frame).__name__}")
        parts = frame.split(",")
        if len(parts) != 3:
            raise InvalidSignalValue(f"frame {index} {expected}; got {frame!r}")
        try:
            pdq = PdqSignal.normalize(parts[0])
        except InvalidSignalValue as exc:
            raise InvalidSignalValue(f"frame {index}: PDQ hash {exc.hint}") from exc
        quality_str, seconds_str = parts[1].strip(), parts[2].strip()
        if not re.fullmatch(r"[0-9]+", quality_str, re.ASCII):
            raise InvalidSignalValue(f"frame {index}: quality must be an integer; got {parts[1]!r}")
        quality = int(quality_str)
        if quality > _VPDQ_MAX_QUALITY:
            raise InvalidSignalValue(f"frame {index}: quality must be 0 to 100; got {quality}")
        try:
            seconds = float(seconds_str)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0 or not seconds_str.isascii():
            raise InvalidSignalValue(
                f"frame {index}: seconds must be a non-negative number; got {parts[2]!r}"
            )
        # python-threatexchange writes f"{timestamp:.3}": three significant digits.
        return f"{pdq},{quality},{seconds:.3}"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


_ALL: list[type[SignalType]] = [
    PdqSignal,
    Md5Signal,
    Sha256Signal,
    UrlSignal,
    VpdqSignal,
]


def build_registry(signal_types: list[type[SignalType]]) -> dict[str, type[SignalType]]:
    """Map names to signal types; two types with the same name are a programming error."""
    registry: dict[str, type[SignalType]] = {}
    for signal_type in signal_types:
        if signal_type.name in registry:
            raise ValueError(
                f"signal type name {signal_type.name!r} is used by both "
                f"{registry[signal_type.name].__name__} and {signal_type.__name__}"
            )
        registry[signal_type.name] = signal_type
    return registry


SIGNAL_TYPES: dict[str, type[SignalType]] = build_registry(_ALL)


def get_signal_type(name: str) -> type[SignalType]:
    """Return the signal type registered as ``name`` or raise UnknownSignalType."""
    try:
        return SIGNAL_TYPES[name]
    except (KeyError, TypeError):
        raise UnknownSignalType(str(name)) from None


def query_value_error(name: str, value: str) -> dict[str, str] | None:
    """Why ``value`` cannot be a canonical value of the signal type ``name``, as the
    ``{"code", "detail"}`` the API answers for a value looked up or matched; None if it
    can. The same for every caller: it depends on the input alone, never on what is stored.
    """
    try:
        get_signal_type(name).validate(value)
    except UnknownSignalType:
        return {
            "code": UnknownSignalType.code,
            "detail": f"Unknown signal type {name[:40]!r}; see GET /api/v1/signal-types.",
        }
    except InvalidSignalValue as exc:
        return {"code": InvalidSignalValue.code, "detail": f"{name} value {exc}"}
    return None
