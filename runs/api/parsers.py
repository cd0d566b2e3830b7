"""A JSON parser that refuses an oversized body before reading it.

DRF's JSONParser reads the whole body first (`request.body`), capped only by
Django's DATA_UPLOAD_MAX_MEMORY_SIZE; this one checks Content-Length against
RUNS_MAX_REQUEST_BYTES and reads at most one byte past the limit, so a huge body is
answered 413 without being held in memory.
"""

import json

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
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error: nested too deeply") from None


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")
