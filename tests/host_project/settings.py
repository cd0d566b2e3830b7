"""A host project that uses the two apps and nothing of `runs_project`: the
INSTALLED_APPS the README asks for, a Q_CLUSTER, and no RUNS_* setting at all.

`tests/test_host_project.py` runs manage commands with this module; the database
file is HOST_PROJECT_DB (a temporary path the test gives).
"""

import os

SECRET_KEY = "host-project-test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "rest_framework",
    "rest_framework.authtoken",
    "knox",
    "django_filters",
    "drf_spectacular",
    "import_export",
    "automations",
    "runs",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # configuration changes name who made them (the README asks host projects)
    "runs.evidence.config.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.host_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["HOST_PROJECT_DB"],
    }
}
# hashed API tokens: knox with the runs token model, without knox's own table
KNOX_TOKEN_MODEL = "runs.ApiToken"
MIGRATION_MODULES = {"knox": None}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# django-q2 in the same database; timeout below retry, as runs' checks ask
Q_CLUSTER = {
    "name": "host",
    "orm": "default",
    "timeout": 300,
    "retry": 360,
    "save_limit": -1,
}
