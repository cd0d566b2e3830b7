"""System checks for the e-mail settings."""

from django.core.checks import Error, register

from ..conf import runs_settings


@register()
def mail_settings_valid(app_configs=None, **kwargs):
    errors = []
    mode = runs_settings.NOTIFY_DEFAULT_MODE
    if mode not in ("immediate", "digest", "off"):
        errors.append(
            Error(
                f"RUNS_NOTIFY_DEFAULT_MODE is {mode!r}.",
                hint="Use immediate, digest or off.",
                id="runs.E101",
            )
        )
    for name in (
        "RUNS_EMAIL_MAX_MESSAGE_BYTES",
        "RUNS_EMAIL_MAX_ATTACHMENT_BYTES",
        "RUNS_EMAIL_MAX_HEADER_BYTES",
        "RUNS_EMAIL_MAX_ADDRESSES",
        "RUNS_EMAIL_MAX_PARTS",
        "RUNS_NOTIFY_DIGEST_MINUTES",
        "RUNS_IMAP_POLL_MINUTES",
    ):
        value = runs_settings.get(name)
        if not isinstance(value, int) or value < 1:
            errors.append(
                Error(
                    f"{name} must be a positive integer, got {value!r}.", id="runs.E102"
                )
            )
    timeout = runs_settings.EMAIL_SUBJECT_TIMEOUT_SECONDS
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or (timeout <= 0)
    ):
        errors.append(
            Error(
                "RUNS_EMAIL_SUBJECT_TIMEOUT_SECONDS must be a positive number, "
                f"got {timeout!r}.",
                id="runs.E102",
            )
        )
    return errors
