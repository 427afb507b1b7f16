"""The request body parser of every DRF endpoint: JSON, with the depth limit of every
document a client sends (``exchange.client.json_input``), so that a body nested thousands of
levels deep is a 400 ``malformed_request`` problem rather than a RecursionError (a 500).
Parsing with orjson also keeps DRF's strictness: ``NaN`` and ``Infinity`` are refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers

from .client import json_input


class JSONParser(parsers.JSONParser):
    """Parses a JSON body; anything that is not JSON of bounded depth is a ParseError."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            return json_input.loads(stream.read().decode(encoding))
        except (UnicodeDecodeError, LookupError, ValueError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
