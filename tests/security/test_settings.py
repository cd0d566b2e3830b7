"""Finding 2 (first half): with no SECRET_KEY the project must not start on a
built-in key (anyone could forge signed file URLs and robot tokens with it)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


SHOW_KEY = (
    "import django; django.setup(); from django.conf import settings; "
    "print('key', len(settings.SECRET_KEY))"
)


def start(tmp_path, code: str = SHOW_KEY, **env) -> subprocess.CompletedProcess:
    """Load the project's settings in a fresh process, with `env` only, and run
    `code` there."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL"}
    }
    clean.update(
        DJANGO_SETTINGS_MODULE="runs_project.settings",
        RUNS_VAR_DIR=str(tmp_path),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_secret_key_and_debug_off_refuses_to_start(tmp_path):
    done = start(tmp_path, DEBUG="0")
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "SECRET_KEY" in done.stderr and "DEBUG" in done.stderr


def test_an_empty_secret_key_is_no_key(tmp_path):
    done = start(tmp_path, DEBUG="0", SECRET_KEY="")
    assert done.returncode != 0 and "ImproperlyConfigured" in done.stderr


def test_a_given_secret_key_is_used(tmp_path):
    done = start(tmp_path, DEBUG="0", SECRET_KEY="k" * 60)
    assert done.returncode == 0, done.stderr
    assert "key 60" in done.stdout


def test_debug_on_still_starts_without_a_key(tmp_path):
    # ./dev up exports DEBUG=1 on a developer's machine
    done = start(tmp_path, DEBUG="1")
    assert done.returncode == 0, done.stderr


SHOW_THRESHOLD = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"
)


def _threshold(tmp_path, value: str | None) -> str:
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused"}
    if value is not None:
        env["DATABASE_PREPARE_THRESHOLD"] = value
    done = start(tmp_path, SHOW_THRESHOLD, SECRET_KEY="k" * 60, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_postgresql_prepares_hot_statements_unless_told_not_to(tmp_path):
    assert _threshold(tmp_path, None) == "5"
    assert _threshold(tmp_path, "12") == "12"
    assert _threshold(tmp_path, "off") == "None"


def test_a_bad_prepare_threshold_refuses_to_start_and_names_it(tmp_path):
    for value in ("soon", "-1", "2.5"):
        done = start(
            tmp_path,
            SHOW_THRESHOLD,
            SECRET_KEY="k" * 60,
            DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
            DATABASE_PREPARE_THRESHOLD=value,
        )
        assert done.returncode != 0, value
        assert "ImproperlyConfigured" in done.stderr, done.stderr
        assert "DATABASE_PREPARE_THRESHOLD" in done.stderr, done.stderr


def test_a_setting_that_is_not_a_number_refuses_to_start_and_names_it(tmp_path):
    for name, value in (
        ("RUNS_STEP_RUN_SLICE_SECONDS", "soon"),
        ("RUNS_COMMIT_SECONDS", "1s"),
        ("RUNS_LEASE_SECONDS", "2.5"),
    ):
        done = start(tmp_path, SECRET_KEY="k" * 60, **{name: value})
        assert done.returncode != 0, name
        assert "ImproperlyConfigured" in done.stderr, done.stderr
        assert name in done.stderr, done.stderr


def test_the_step_run_slice_is_read_from_the_environment(tmp_path):
    code = (
        "import django; django.setup(); from runs.conf import runs_settings; "
        "print(runs_settings.STEP_RUN_SLICE_SECONDS)"
    )
    done = start(tmp_path, code, SECRET_KEY="k" * 60, RUNS_STEP_RUN_SLICE_SECONDS="0.5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.5"
