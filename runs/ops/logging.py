"""Logging pieces settings.LOGGING names: run context, quiet robots, no tracebacks
for refused requests.

The step run sets `log_context(run_id=…, step_run_id=…)` around its work;
`RunContextFilter` (on the console handler) puts those ids on every record logged
meanwhile in that thread (a contextvar), and the JSON formatter writes them as
fields.
"""

import contextlib
import contextvars
import logging

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "runs_log_context", default=None
)
ROBOT_PATH_PREFIX = "/robots/"


@contextlib.contextmanager
def log_context(**fields):
    """Add `fields` (run_id, step_run_id) to every record logged inside."""
    fields = {name: str(value) for name, value in fields.items()}
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class RunContextFilter(logging.Filter):
    """Copy the current log context onto the record (never drops one)."""

    def filter(self, record):
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _access_path_status(record) -> tuple[str, int | None]:
    """(path, status) of an access line from runserver (`django.server`: args are
    the request line, the status, the size) or gunicorn (`gunicorn.access`: args are
    its atoms, U the path and s the status)."""
    args = record.args
    if isinstance(args, dict):
        path, status = args.get("U", ""), args.get("s")
    elif isinstance(args, tuple) and len(args) >= 2:
        parts = str(args[0]).split()
        path = parts[1] if len(parts) > 1 else ""
        status = getattr(record, "status_code", args[1])
    else:
        return "", None
    try:
        return str(path), int(status)
    except (TypeError, ValueError):
        return str(path), None


class QuietRobotAccessFilter(logging.Filter):
    """Drop the access line of a successful robot API call: robots call the
    work-items API per item and would drown every other line. Errors (4xx, 5xx)
    still show."""

    def filter(self, record):
        path, status = _access_path_status(record)
        robot = path.startswith(ROBOT_PATH_PREFIX)
        return not (robot and status is not None and status < 400)


class RefusedRequestFilter(logging.Filter):
    """A refused request (a 4xx: PermissionDenied, BadRequest, SuspiciousOperation)
    is the caller's mistake, not the server's: keep Django's one line, drop the
    traceback it attaches. On the handler, not a logger: `django.security.*`
    records come from a logger per exception class."""

    def filter(self, record):
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line (python-json-logger), without the `request`
    Django puts on request and access records: its repr says less than the
    message, and a socket's repr is noise."""

    def add_fields(self, log_record, record, message_dict):
        super().add_fields(log_record, record, message_dict)
        log_record.pop("request", None)
