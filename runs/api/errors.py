"""One error shape for the whole API: `{"detail": "…", "code": "…"}`.

Service errors are translated here, so views stay thin: RunsError → 400 (404 for
code "not_found", 403 for NotAllowed, 409 for NotRunnable and in-flight keys, 422 for
a reused key), IllegalTransition → 409 with the machine's reason.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from ..services import NotAllowed, NotRunnable, RunsError
from ..states import IllegalTransition
from .idempotency import KeyInFlight, KeyReused


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body too large"
    default_code = "too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"
    default_code = "conflict"


class Unprocessable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "unprocessable"
    default_code = "unprocessable"


def _service_error(exc: Exception) -> exceptions.APIException:
    message = str(exc)
    if isinstance(exc, IllegalTransition):
        return Conflict(message, code="illegal_transition")
    code = exc.code
    if isinstance(exc, KeyReused):
        return Unprocessable(message, code=code)
    if isinstance(exc, (KeyInFlight, NotRunnable)):
        return Conflict(message, code=code)
    if isinstance(exc, NotAllowed):
        return exceptions.PermissionDenied(message, code=code)
    if code == "not_found":
        return exceptions.NotFound(message, code=code)
    problems = getattr(exc, "problems", None)  # InvalidInput: per field
    if problems:
        return exceptions.ValidationError(
            {where: [text] for where, text in problems}, code=code
        )
    return exceptions.ValidationError({"detail": message}, code=code)


def _flatten(detail, path="") -> list[tuple[str, str, str]]:
    """(field path, message, code) for every leaf of a ValidationError detail."""
    if isinstance(detail, dict):
        return [
            leaf
            for key, value in detail.items()
            for leaf in _flatten(
                value,
                path
                if key in ("detail", "non_field_errors")
                else f"{path}.{key}"
                if path
                else str(key),
            )
        ]
    if isinstance(detail, list):
        return [
            leaf
            for index, value in enumerate(detail)
            for leaf in _flatten(
                value, f"{path}[{index}]" if isinstance(value, (dict, list)) else path
            )
        ]
    return [(path, str(detail), getattr(detail, "code", None) or "invalid")]


def api_exception_handler(exc, context):
    if isinstance(exc, (RunsError, IllegalTransition)):
        exc = _service_error(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        leaves = _flatten(exc.detail) or [("", "invalid request", "invalid")]
        response.data = {
            "detail": "; ".join(f"{p}: {m}" if p else m for p, m, _ in leaves),
            "code": leaves[0][2],
        }
        if isinstance(exc.detail, dict) and set(exc.detail) != {"detail"}:
            response.data["errors"] = exc.detail
    else:
        code = exc.get_codes()
        response.data = {
            "detail": str(exc.detail),
            "code": code if isinstance(code, str) else "error",
        }
    return response
