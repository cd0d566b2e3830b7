"""A JSON parser that refuses an oversized body before reading it.

DRF's JSONParser reads the whole body first (`request.body`), capped only by
Django's DATA_UPLOAD_MAX_MEMORY_SIZE; this one checks Content-Length against
RUNS_MAX_REQUEST_BYTES and reads at most one byte past the limit, so a huge body is
answered 413 without being held in memory. What it reads goes through `json_parse`,
the one rule for JSON from outside (the API and the robots' work-items API).
"""

import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, get_encoding
from rest_framework.renderers import JSONRenderer

from runs.conf import runs_settings

from .errors import RequestTooLarge


def max_request_bytes() -> int:
    return runs_settings.MAX_REQUEST_BYTES


def too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"request body is larger than the limit of {limit} bytes "
        "(RUNS_MAX_REQUEST_BYTES)"
    )


class LimitedJSONParser(BaseParser):
    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = max_request_bytes()
        request = parser_context.get("request")
        if request is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise ParseError("Content-Length is not a number") from None
            if declared > limit:
                raise too_large(limit)
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large(limit)
        encoding = get_encoding(parser_context)
        try:
            return json_parse(raw.decode(encoding))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from None


class JSONBoundsError(ValueError):
    """JSON text that parses but cannot be stored or compared: the text says why."""


# A lone (unpaired) UTF-16 surrogate: json.loads turns a pair of escapes into one
# character, so whatever remains in this range is half a character.
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_parse(text: str):
    """Parse JSON from outside, refusing what no database column can hold.

    NaN and ±Infinity are not JSON; a number too large for a float (`1e400`)
    would become inf; a lone surrogate (`"\\ud800"`) is not encodable as UTF-8, so
    SQLite and PostgreSQL would fail on save (a 500) or later on read. Raises
    JSONBoundsError (a ValueError) for those and json's ValueError for bad text.
    """
    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except RecursionError:
        raise JSONBoundsError("nested too deeply") from None
    _refuse_surrogates(value)
    return value


def _refuse_constant(name):
    raise JSONBoundsError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise JSONBoundsError(f"the number {text[:40]} is too large")
    return number


def _refuse_surrogates(value) -> None:
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise JSONBoundsError(
                "a string holds a lone UTF-16 surrogate (half a character)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_surrogates(key)
            _refuse_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_surrogates(item)
