"""Cursor pagination: seeks on an indexed, unchanging column, never counts."""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class RunCursorPagination(CursorPagination):
    ordering = "-number"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request):
        # DRF answers a malformed cursor 404; it is a bad request parameter
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {"cursor": "invalid cursor: use the next/previous links as given"},
                code="invalid_cursor",
            ) from None


class IdCursorPagination(RunCursorPagination):
    ordering = "id"


class SeqCursorPagination(RunCursorPagination):
    ordering = "seq"


class NumberCursorPagination(RunCursorPagination):
    """A job's child runs in the order they started."""

    ordering = "number"
