"""Settings for the Runs project, read from the environment in this one place.

Every setting that differs between machines is an environment variable of the same
name. Unset, the project runs on its embedded default: SQLite in WAL mode and the
django-q2 ORM broker in the same database, no other service.
"""

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RUNS_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_number(name: str, default, kind):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return kind(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} is {value!r}: a {'whole ' if kind is int else ''}number"
        ) from None


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int)


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float)


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [part.strip() for part in value.split(",") if part.strip()]


DEBUG = env_bool("DEBUG", False)
# Robot tokens and signed file URLs are HMACs of SECRET_KEY: a key built into the
# code would let anyone forge them, so only a development machine (DEBUG on) may
# start without one.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a "
            "long random string (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'), or DEBUG=1 on a development machine."
        )
    SECRET_KEY = "dev-only-insecure-key-debug-on"
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "rest_framework",
    "rest_framework.authtoken",  # legacy plain-text tokens (drf_create_token)
    "knox",  # hashed, expiring API tokens (runs.ApiToken)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "django_htmx",  # request.htmx and a vendored htmx for the live fragments
    "automations",
    "runs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # static files from the application server itself (admin CSS, API docs assets)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "runs.evidence.config.AuditActorMiddleware",  # who changed configuration
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "runs_project.urls"
WSGI_APPLICATION = "runs_project.wsgi.application"
ASGI_APPLICATION = "runs_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL, or SQLite tuned for a queue in the same file (WAL, so
# readers never block the writer; IMMEDIATE, so a writing transaction takes the write
# lock up front instead of failing on upgrade; a busy timeout instead of "locked").
# CONN_MAX_AGE (seconds; 0: a connection per request) keeps connections across
# requests in the production server (docs/deploy.md), checked before reuse.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'runs.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 0),
        conn_health_checks=env_bool("CONN_HEALTH_CHECKS", True),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend with a writer that waits for the lock in short steps
    DATABASES["default"]["ENGINE"] = "runs_project.sqlite"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env_int("SQLITE_BUSY_TIMEOUT_SECONDS", 30),
        }
    )
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get(
        "SQLITE_TEST_NAME", str(VAR_DIR / "test.sqlite3")
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # a statement run this many times on a connection is prepared by the server,
    # for the few that bind their parameters there (runs.sql.prepared_cursor: a
    # trigger's read and write); Django's own statements never are. "off" for a
    # pooler that cannot keep prepared statements (PgBouncer before 1.21 in
    # transaction mode)
    _threshold = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5").strip().lower()
    if _threshold not in ("off", "none") and not _threshold.isdigit():
        raise ImproperlyConfigured(
            f"DATABASE_PREPARE_THRESHOLD is {_threshold!r}: a whole number of runs "
            "(0 or more), or 'off'"
        )
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        None if _threshold in ("off", "none") else int(_threshold)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
# timestamps with seconds and zone (2026-12-01 07:00:05 UTC): runs_project/formats
FORMAT_MODULE_PATH = ["runs_project.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
# gzip-compressed copies written at collectstatic, served by WhiteNoise; no manifest,
# so templates render before collectstatic has run (tests, a fresh checkout)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# E-mail through Django's backends; by default into files under var/mail, so nothing
# leaves the machine and every message can be read.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "runs@localhost")

# django-q2. The product keeps its own results (save_limit -1) and treats the database,
# not the queue, as the truth: a step-run task is safe to deliver twice. `timeout` must
# stay below `retry` (a system check refuses otherwise), or a long task is redelivered
# while it still runs.
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": os.environ.get("Q_CLUSTER_NAME", "runs"),
    "workers": env_int("Q_WORKERS", 2),
    "recycle": 500,
    "timeout": env_int("Q_TIMEOUT", 300),
    "retry": env_int("Q_RETRY", 360),
    "max_attempts": 0,
    "ack_failures": True,
    "save_limit": -1,
    "poll": env_float("Q_POLL", 0.1),
    "bulk": env_int("Q_BULK", 5),
    "catch_up": False,
    "sync": env_bool("Q_SYNC", False),
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Runs settings, each from the environment variable of its name. The apps read them
# only through runs/conf.py, which has a default for every one (a host project sets
# none of them); that the list below misses none is tested.
RUNS_LEASE_SECONDS = env_int("RUNS_LEASE_SECONDS", 300)
RUNS_TERMINATING_TIMEOUT_SECONDS = env_int("RUNS_TERMINATING_TIMEOUT_SECONDS", 600)
RUNS_IDEMPOTENCY_KEY_TTL_SECONDS = env_int("RUNS_IDEMPOTENCY_KEY_TTL_SECONDS", 86400)
RUNS_MAX_REQUEST_BYTES = env_int("RUNS_MAX_REQUEST_BYTES", 1_048_576)
RUNS_HOUSEKEEPING_SECONDS = env_int("RUNS_HOUSEKEEPING_SECONDS", 60)
RUNS_STEP_RUN_BUDGET_SECONDS = env_int("RUNS_STEP_RUN_BUDGET_SECONDS", 60)
# a step run that worked this long gives its worker to one that waited as long
RUNS_STEP_RUN_SLICE_SECONDS = env_float("RUNS_STEP_RUN_SLICE_SECONDS", 1.0)
# a step run commits its batch when done, or what it has done after this long
RUNS_COMMIT_SECONDS = env_float("RUNS_COMMIT_SECONDS", 1.0)
RUNS_ACTION_MODULES = env_list("RUNS_ACTION_MODULES", [])
RUNS_ADMIN_BASE_URL = os.environ.get("RUNS_ADMIN_BASE_URL", "http://127.0.0.1:8000")
# Retention (runs.retention; unset = off): archive finished runs after N days,
# delete archived runs N days after they were archived.
RUNS_ARCHIVE_AFTER_DAYS = (
    env_int("RUNS_ARCHIVE_AFTER_DAYS", 0)
    if os.environ.get("RUNS_ARCHIVE_AFTER_DAYS")
    else None
)
RUNS_DELETE_ARCHIVED_AFTER_DAYS = (
    env_int("RUNS_DELETE_ARCHIVED_AFTER_DAYS", 0)
    if os.environ.get("RUNS_DELETE_ARCHIVED_AFTER_DAYS")
    else None
)
# API: the largest single input of a trigger (the whole body: RUNS_MAX_REQUEST_BYTES),
# and the rate of run-starting calls per user ("120/min"; empty: unlimited).
RUNS_MAX_INPUT_BYTES = env_int("RUNS_MAX_INPUT_BYTES", 65_536)
# the largest definitions file (admin upload, import_automations)
RUNS_MAX_DEFINITIONS_BYTES = env_int("RUNS_MAX_DEFINITIONS_BYTES", 1_048_576)
RUNS_API_TRIGGER_RATE = os.environ.get("RUNS_API_TRIGGER_RATE", "120/min")
# Webhooks: HTTP timeout per attempt, attempts before giving up, first backoff
# (doubled per attempt, capped at one hour).
RUNS_WEBHOOK_TIMEOUT_SECONDS = float(
    os.environ.get("RUNS_WEBHOOK_TIMEOUT_SECONDS", "10")
)
RUNS_WEBHOOK_MAX_ATTEMPTS = env_int("RUNS_WEBHOOK_MAX_ATTEMPTS", 8)
RUNS_WEBHOOK_BACKOFF_SECONDS = env_int("RUNS_WEBHOOK_BACKOFF_SECONDS", 30)
# Robots (docs/robots.md): the base URL robots reach this server's work-items API
# at, the largest work item file, how long a signed file URL lives, how much of a
# robot's output is kept as its step run's log (a robot's RC_WORKSPACE_ID is its
# automation's workspace).
RUNS_ROBOT_API_URL = os.environ.get("RUNS_ROBOT_API_URL", RUNS_ADMIN_BASE_URL)
RUNS_ROBOT_MAX_FILE_BYTES = env_int("RUNS_ROBOT_MAX_FILE_BYTES", 52_428_800)
RUNS_ROBOT_URL_SECONDS = env_int("RUNS_ROBOT_URL_SECONDS", 300)
RUNS_ROBOT_LOG_BYTES = env_int("RUNS_ROBOT_LOG_BYTES", 262_144)
# Robots are registered here, by the deployer, never typed into a definition:
# RUNS_ROBOTS is a JSON object of name -> {"command": [...], "cwd", "env"} or
# {"robot_yaml": ".../robot.yaml", "task": "..."}. Unset: the demo's robot.
if os.environ.get("RUNS_ROBOTS"):
    try:
        RUNS_ROBOTS = json.loads(os.environ["RUNS_ROBOTS"])
    except ValueError as exc:
        raise ImproperlyConfigured(f"RUNS_ROBOTS is not valid JSON: {exc}") from None
else:
    RUNS_ROBOTS = {
        "loan-review": {
            "robot_yaml": str(BASE_DIR / "robots" / "example" / "robot.yaml"),
            "task": "Review applications",
        }
    }
# definitions that carry their own robot command (the format before robots were
# registered) run only while this is set: see docs/robots.md, "Migrating"
RUNS_ROBOT_COMMANDS_IN_DEFINITIONS = env_bool(
    "RUNS_ROBOT_COMMANDS_IN_DEFINITIONS", False
)
# a worker running as root starts robots as this user (workers should not be root)
RUNS_ROBOT_USER = os.environ.get("RUNS_ROBOT_USER", "")

# Cache: DRF throttles count here. One process: the default local memory; several
# processes need a shared one: CACHE_URL=redis://host:6379/1.
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
        }
    }

# E-mail trigger (docs/email.md): size limits, and the IMAP mailbox `fetch_mail`
# polls (no RUNS_IMAP_HOST: no polling); notifications of runs that need people.
RUNS_EMAIL_MAX_MESSAGE_BYTES = env_int("RUNS_EMAIL_MAX_MESSAGE_BYTES", 26_214_400)
RUNS_EMAIL_MAX_ATTACHMENT_BYTES = env_int("RUNS_EMAIL_MAX_ATTACHMENT_BYTES", 10_485_760)
# counted before a message is parsed (security review, finding 7)
RUNS_EMAIL_MAX_HEADER_BYTES = env_int("RUNS_EMAIL_MAX_HEADER_BYTES", 102_400)
RUNS_EMAIL_MAX_ADDRESSES = env_int("RUNS_EMAIL_MAX_ADDRESSES", 100)
RUNS_EMAIL_MAX_PARTS = env_int("RUNS_EMAIL_MAX_PARTS", 100)
RUNS_EMAIL_SUBJECT_TIMEOUT_SECONDS = float(
    os.environ.get("RUNS_EMAIL_SUBJECT_TIMEOUT_SECONDS") or 0.1
)
RUNS_IMAP_HOST = os.environ.get("RUNS_IMAP_HOST", "")
RUNS_IMAP_PORT = env_int("RUNS_IMAP_PORT", 0)  # 0: 993 with SSL, else 143
RUNS_IMAP_USER = os.environ.get("RUNS_IMAP_USER", "")
RUNS_IMAP_PASSWORD = os.environ.get("RUNS_IMAP_PASSWORD", "")
RUNS_IMAP_FOLDER = os.environ.get("RUNS_IMAP_FOLDER", "INBOX")
RUNS_IMAP_SSL = env_bool("RUNS_IMAP_SSL", True)
RUNS_IMAP_TIMEOUT_SECONDS = env_int("RUNS_IMAP_TIMEOUT_SECONDS", 30)
RUNS_IMAP_POLL_MINUTES = env_int("RUNS_IMAP_POLL_MINUTES", 1)
RUNS_NOTIFY_DEFAULT_MODE = os.environ.get("RUNS_NOTIFY_DEFAULT_MODE", "immediate")
RUNS_NOTIFY_DIGEST_MINUTES = env_int("RUNS_NOTIFY_DIGEST_MINUTES", 60)
RUNS_NOTIFY_MAX_ATTEMPTS = env_int("RUNS_NOTIFY_MAX_ATTEMPTS", 5)

# Evidence (docs/evidence.md): the Ed25519 key that signs chain checkpoints and
# evidence packs (PEM or a base64 32-byte seed; unset: derived from SECRET_KEY and
# `check --deploy` warns), and a directory where checkpoints are also appended.
RUNS_LEDGER_SIGNING_KEY = os.environ.get("RUNS_LEDGER_SIGNING_KEY", "")
RUNS_CHECKPOINT_DIR = os.environ.get("RUNS_CHECKPOINT_DIR", "")
# Fernet keys of secrets and webhook secrets, newest first, comma-separated (empty:
# one derived from SECRET_KEY); `manage.py secrets_reencrypt` after adding a key
RUNS_SECRET_KEYS = env_list("RUNS_SECRET_KEYS", [])
# Operations (docs/operations.md): a bearer token /metrics asks for (empty: none),
# how recently /readyz must have seen a worker cluster (and whether it looks),
# and how long a work item may wait pending before its run's owners are told.
RUNS_METRICS_TOKEN = os.environ.get("RUNS_METRICS_TOKEN", "")
RUNS_READY_CLUSTER_SECONDS = env_int("RUNS_READY_CLUSTER_SECONDS", 180)
RUNS_READY_CHECK_CLUSTER = env_bool("RUNS_READY_CHECK_CLUSTER", True)
RUNS_SLA_PENDING_SECONDS = (
    env_int("RUNS_SLA_PENDING_SECONDS", 0)
    if os.environ.get("RUNS_SLA_PENDING_SECONDS")
    else None
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # knox's hashed tokens, then legacy DRF tokens: both `Authorization: Token`
        "runs.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "runs.api.errors.api_exception_handler",
}
KNOX_TOKEN_MODEL = "runs.ApiToken"
# knox's own migrations create its AuthToken table even when the model is swapped
# (they predate the swappable option); an unused table with a key to auth_user
# makes `flush` fail on PostgreSQL. runs.ApiToken has its own migration.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {"TOKEN_TTL": None, "AUTH_HEADER_PREFIX": "Token"}  # expiry: per token
SPECTACULAR_SETTINGS = {
    "TITLE": "Runs API",
    "DESCRIPTION": "Start, watch and control runs of automations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # the docs page's assets come from drf-spectacular-sidecar: no CDN needed
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # three machines have a `state`: each its own enum name, not a hashed one
    # (and no warning when the schema is built)
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "runs.states.RunState",
        "StepRunStateEnum": "runs.states.StepRunState",
        "WorkItemStateEnum": "runs.states.WorkItemState",
    },
}

# Production / TLS (docs/deploy.md). Off by default so plain http://127.0.0.1 works;
# behind TLS set them all and `manage.py check --deploy` is clean.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Opt-in, and only behind a proxy that sets the header itself and strips it from
# clients (else a client claims https): "1" for X-Forwarded-Proto: https, or
# "HTTP_HEADER_NAME,value".
_proxy_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_header.lower() in {"1", "true", "yes", "on"}:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
elif _proxy_header and _proxy_header.lower() not in {"0", "false", "no", "off"}:
    _name, _, _value = _proxy_header.partition(",")
    if not _name.strip().startswith("HTTP_") or not _value.strip():
        raise ValueError(
            "SECURE_PROXY_SSL_HEADER must be 1 or 'HTTP_HEADER_NAME,value', e.g. "
            f"'HTTP_X_FORWARDED_PROTO,https'; got {_proxy_header!r}"
        )
    SECURE_PROXY_SSL_HEADER = (_name.strip(), _value.strip())


# Logs on stderr. LOG_FORMAT=json: one JSON object per line, with the run and step
# run ids on engine lines. Successful robot API calls leave no access line, and a
# refused request (4xx) logs one line without a traceback (runs.ops.logging).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "run_context": {"()": "runs.ops.logging.RunContextFilter"},
        "quiet_robots": {"()": "runs.ops.logging.QuietRobotAccessFilter"},
        "refused_request": {"()": "runs.ops.logging.RefusedRequestFilter"},
    },
    "formatters": {
        "text": {"format": "%(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "runs.ops.logging.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "timestamp": "time",  # ISO 8601, UTC
            "rename_fields": {"levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
            "filters": ["run_context", "refused_request"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        "runs": {"level": os.environ.get("RUNS_LOG_LEVEL", "INFO"), "propagate": True},
        # Django's own records through our handler only: its default "django"
        # handler (DEBUG on) printed a refused request again, with a traceback
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # access lines (runserver; gunicorn with --access-logfile) through the
        # same handler and format, robot API successes left out
        "django.server": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
            "filters": ["quiet_robots"],
        },
        "gunicorn.access": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
            "filters": ["quiet_robots"],
        },
    },
}

VAR_DIR.mkdir(parents=True, exist_ok=True)
