"""The production settings read from the environment: `manage.py check --deploy` is
clean of Django's security warnings with the TLS variables of docs/deploy.md set,
and names each one that is missing without them."""

import ast
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TLS_ENV = {
    "DEBUG": "0",
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "SECURE_PROXY_SSL_HEADER": "1",
    "ALLOWED_HOSTS": "runs.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://runs.example.com",
}


def manage(*args, env: dict, tmp_path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in TLS_ENV}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=ROOT,
        env={
            **clean,
            # a key like the one `./dev up` writes under var/
            "SECRET_KEY": secrets.token_urlsafe(50),
            "RUNS_VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path}/check.sqlite3",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def security_warnings(result) -> list[str]:
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if "(security." in line]


def test_check_deploy_is_clean_with_the_tls_environment(tmp_path):
    result = manage("check", "--deploy", env=TLS_ENV, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert security_warnings(result) == []


def test_check_deploy_names_what_is_missing_without_it(tmp_path):
    # the same check fails without the variables: the clean result above is theirs
    result = manage("check", "--deploy", env={"DEBUG": "0"}, tmp_path=tmp_path)
    codes = {
        line.split("(security.")[1].split(")")[0] for line in security_warnings(result)
    }
    assert {"W004", "W008", "W012", "W016"} <= codes, result.stdout + result.stderr


TLS_SETTINGS = (
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
)


def show(env: dict, tmp_path) -> dict:
    """The TLS settings as a process started with `env` sees them."""
    script = (
        "from django.conf import settings; "
        f"print({{n: getattr(settings, n, None) for n in {TLS_SETTINGS!r}}})"
    )
    result = manage("shell", "-c", script, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def test_tls_settings_follow_the_environment(tmp_path):
    assert show(TLS_ENV, tmp_path) == {
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    }


def test_tls_settings_are_off_by_default_and_the_proxy_header_opt_in(tmp_path):
    # plain http://127.0.0.1 (./dev up) must keep working: nothing forces https
    defaults = show({}, tmp_path)
    assert defaults == {
        **dict.fromkeys(TLS_SETTINGS, False),
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_PROXY_SSL_HEADER": None,
    }
    custom = show(
        {"SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_SCHEME,https"}, tmp_path
    )
    assert custom["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_SCHEME", "https")


def test_a_malformed_proxy_ssl_header_is_refused_with_the_expected_form(tmp_path):
    result = manage(
        "check", env={"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, tmp_path=tmp_path
    )
    assert result.returncode != 0
    assert "HTTP_HEADER_NAME,value" in result.stderr


def test_persistent_connections_follow_the_environment(tmp_path):
    script = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print((d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS']))"
    )

    def database(env):
        result = manage("shell", "-c", script, env=env, tmp_path=tmp_path)
        assert result.returncode == 0, result.stderr
        return ast.literal_eval(result.stdout.strip().splitlines()[-1])

    # a connection per request unless asked; reused ones are checked first
    assert database({}) == (0, True)
    assert database({"CONN_MAX_AGE": "60"}) == (60, True)
