"""Cursor pagination: seeks on an indexed, unchanging column, never counts."""

from rest_framework.pagination import CursorPagination


class RunCursorPagination(CursorPagination):
    ordering = "-number"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class IdCursorPagination(RunCursorPagination):
    ordering = "id"


class SeqCursorPagination(RunCursorPagination):
    ordering = "seq"
