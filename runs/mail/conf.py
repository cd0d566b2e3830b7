"""E-mail settings with their defaults, so `runs` also works as a reusable app
whose host project does not define them (runs_project.settings reads them from the
environment)."""

from django.conf import settings

DEFAULTS = {
    "RUNS_EMAIL_MAX_MESSAGE_BYTES": 25 * 1024 * 1024,
    "RUNS_EMAIL_MAX_ATTACHMENT_BYTES": 10 * 1024 * 1024,
    "RUNS_IMAP_HOST": "",
    "RUNS_IMAP_PORT": 0,
    "RUNS_IMAP_USER": "",
    "RUNS_IMAP_PASSWORD": "",
    "RUNS_IMAP_FOLDER": "INBOX",
    "RUNS_IMAP_SSL": True,
    "RUNS_IMAP_TIMEOUT_SECONDS": 30,
    "RUNS_IMAP_POLL_MINUTES": 1,
    "RUNS_NOTIFY_DEFAULT_MODE": "immediate",
    "RUNS_NOTIFY_DIGEST_MINUTES": 60,
    "RUNS_NOTIFY_MAX_ATTEMPTS": 5,
    "RUNS_ADMIN_BASE_URL": "http://127.0.0.1:8000",
}


def get(name: str):
    return getattr(settings, name, DEFAULTS[name])
