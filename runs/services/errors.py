"""Errors services raise; interfaces translate them (admin message, API status)."""


class RunsError(Exception):
    """A request the product refuses, with a message a person can act on."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class InvalidRequest(RunsError):
    code = "invalid"


class NotAllowed(RunsError):
    code = "permission_denied"
