"""Settings of the `runs` and `automations` apps, with a default for every name.

The one place that reads `settings.RUNS_*` (as DRF's `api_settings` and django-q2's
`Conf` do): a host project that sets none of them migrates and runs. Read a value
as `runs_settings.LEASE_SECONDS` (the `RUNS_` prefix left off); it is looked up on
every access, so `override_settings` in tests takes effect at once.
`runs_project/settings.py` reads the same names from the environment.
"""

from django.conf import settings

DEFAULTS = {
    # engine
    "LEASE_SECONDS": 300,
    "TERMINATING_TIMEOUT_SECONDS": 600,
    "HOUSEKEEPING_SECONDS": 60,
    "STEP_RUN_BUDGET_SECONDS": 60,
    # a step run gives its worker to one that waited this long (0: never)
    "STEP_RUN_SLICE_SECONDS": 1.0,
    "COMMIT_SECONDS": 1.0,
    "ACTION_MODULES": [],
    "ADMIN_BASE_URL": "http://127.0.0.1:8000",
    # retention (None: off)
    "ARCHIVE_AFTER_DAYS": None,
    "DELETE_ARCHIVED_AFTER_DAYS": None,
    # API
    "IDEMPOTENCY_KEY_TTL_SECONDS": 86400,
    "MAX_REQUEST_BYTES": 1_048_576,
    "MAX_INPUT_BYTES": 65_536,
    # definitions files (admin upload, import_automations)
    "MAX_DEFINITIONS_BYTES": 1_048_576,
    "API_TRIGGER_RATE": "120/min",
    # webhooks
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_BACKOFF_SECONDS": 30,
    # robots
    "ROBOT_API_URL": "http://127.0.0.1:8000",
    "ROBOT_MAX_FILE_BYTES": 52_428_800,
    "ROBOT_URL_SECONDS": 300,
    "ROBOT_LOG_BYTES": 262_144,
    # evidence: the Ed25519 key of checkpoints and packs (PEM or base64 seed;
    # empty: derived from SECRET_KEY), and a directory for the checkpoint log
    "LEDGER_SIGNING_KEY": "",
    "CHECKPOINT_DIR": "",
    # secrets: Fernet keys, newest first (empty: one derived from SECRET_KEY)
    "SECRET_KEYS": [],
    # robots the deployer registered (runs.robots.registry); definitions name one
    "ROBOTS": {},
    # definitions may carry their own command (the format before registration)
    "ROBOT_COMMANDS_IN_DEFINITIONS": False,
    # the OS user robots run as when the worker is root ("": the worker's)
    "ROBOT_USER": "",
    # e-mail intake and notifications
    "EMAIL_MAX_MESSAGE_BYTES": 25 * 1024 * 1024,
    "EMAIL_MAX_ATTACHMENT_BYTES": 10 * 1024 * 1024,
    # counted on the raw bytes before a message is parsed (Postfix's
    # header_size_limit is 102400 too)
    "EMAIL_MAX_HEADER_BYTES": 102_400,
    "EMAIL_MAX_ADDRESSES": 100,
    "EMAIL_MAX_PARTS": 100,
    "EMAIL_SUBJECT_TIMEOUT_SECONDS": 0.1,
    "IMAP_HOST": "",
    "IMAP_PORT": 0,
    "IMAP_USER": "",
    "IMAP_PASSWORD": "",
    "IMAP_FOLDER": "INBOX",
    "IMAP_SSL": True,
    "IMAP_TIMEOUT_SECONDS": 30,
    "IMAP_POLL_MINUTES": 1,
    "NOTIFY_DEFAULT_MODE": "immediate",
    "NOTIFY_DIGEST_MINUTES": 60,
    "NOTIFY_MAX_ATTEMPTS": 5,
    # operations (runs.ops; docs/operations.md)
    "METRICS_TOKEN": "",
    "READY_CLUSTER_SECONDS": 180,
    "READY_CHECK_CLUSTER": True,
    "SLA_PENDING_SECONDS": None,
}


class RunsSettings:
    """`runs_settings.NAME` is `settings.RUNS_NAME`, or its default."""

    def __getattr__(self, name: str):
        if name not in DEFAULTS:
            raise AttributeError(f"no Runs setting {name!r} (see runs.conf.DEFAULTS)")
        return getattr(settings, "RUNS_" + name, DEFAULTS[name])

    def get(self, name: str):
        """The value of a setting by its full name (`"RUNS_LEASE_SECONDS"`)."""
        return getattr(self, name.removeprefix("RUNS_"))


runs_settings = RunsSettings()
