"""Logs: LOG_FORMAT=json with run and step-run ids, quiet robot access lines, no
traceback for a refused request."""

import io
import json
import logging
import logging.config
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from automations.actions import action
from runs.engine import run_until_idle
from runs.models import StepRun
from runs.services import run_start

ROOT = Path(__file__).resolve().parents[2]


@action("test.ops_log")
def ops_log(ctx):
    logging.getLogger("runs.actions.test").warning("looked at %s", ctx.subject)
    return ctx.payload


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def collected():
    """Records that got past a logger's own filters."""
    attached = []

    def attach(name):
        handler = Collect()
        logging.getLogger(name).addHandler(handler)
        attached.append((name, handler))
        return handler.records

    yield attach
    for name, handler in attached:
        logging.getLogger(name).removeHandler(handler)


@pytest.fixture
def console():
    """What the project's console handler writes, for the duration of a test."""
    handler = next(
        h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.fixture
def json_console():
    """The project's LOGGING as LOG_FORMAT=json configures it, writing here."""
    config = json.loads(json.dumps(django_settings.LOGGING))
    config["handlers"]["console"]["formatter"] = "json"
    logging.config.dictConfig(config)
    handler = next(
        h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
    )
    stream = io.StringIO()
    handler.setStream(stream)
    yield stream
    logging.config.dictConfig(django_settings.LOGGING)


def test_log_format_json_selects_one_json_object_per_line():
    env = {
        **os.environ,
        "LOG_FORMAT": "json",
        "DJANGO_SETTINGS_MODULE": "runs_project.settings",
    }
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('runs.engine').warning('hello %s', 'world')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    line = json.loads(lines[0])
    assert line["message"] == "hello world"
    assert line["level"] == "WARNING" and line["logger"] == "runs.engine"
    assert "time" in line


@pytest.mark.django_db
def test_engine_lines_carry_the_run_and_step_run_ids(automation, json_console):
    run = run_start(automation=automation("test.ops_log"), inputs=[{"subject": "a-1"}])
    run_until_idle(run)
    lines = [json.loads(line) for line in json_console.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"] == "runs.actions.test"]
    assert len(ours) == 1, lines
    step_run = StepRun.objects.get(run=run)
    assert ours[0]["message"] == "looked at a-1"
    assert ours[0]["run_id"] == str(run.pk)
    assert ours[0]["step_run_id"] == str(step_run.pk)


def test_lines_outside_a_step_run_have_no_run_ids(json_console):
    logging.getLogger("runs.engine").warning("between runs")
    line = json.loads(json_console.getvalue().splitlines()[-1])
    assert line["message"] == "between runs"
    assert "run_id" not in line and "step_run_id" not in line


def _runserver_line(path, status):
    # what django.core.servers.basehttp.WSGIRequestHandler.log_message logs
    logging.getLogger("django.server").info(
        '"%s" %s %s',
        f"GET {path} HTTP/1.1",
        str(status),
        "12",
        extra={"status_code": status},
    )


def _gunicorn_line(path, status):
    # what gunicorn.glogging.Logger.access logs: its format, then the atoms
    logging.getLogger("gunicorn.access").info(
        '%(h)s "%(r)s" %(s)s',
        {"h": "10.0.0.1", "r": f"GET {path}", "U": path, "s": str(status)},
    )


@pytest.mark.parametrize(
    "emit,logger",
    [
        (_runserver_line, "django.server"),
        (_gunicorn_line, "gunicorn.access"),
    ],
)
def test_successful_robot_calls_leave_no_access_line(collected, emit, logger):
    records = collected(logger)
    emit(
        "/robots/process-v1/workspaces/default/processes/p/runs/r/robotRuns/x/"
        "activities/y/reserve-next-work-item",
        200,
    )
    emit("/robots/json-v1/workspaces/default/work-items/1/data", 304)
    emit("/robots/json-v1/workspaces/default/work-items/1/data", 403)  # refused: kept
    emit("/api/v1/runs/", 200)  # not a robot: kept
    emit("/admin/", 500)
    messages = [r.getMessage() for r in records]
    assert len(messages) == 3, messages
    assert "403" in messages[0] and "/api/v1/runs/" in messages[1]


@pytest.mark.django_db
def test_a_refused_request_logs_one_line_without_a_traceback(client, user, console):
    client.force_login(user)  # staff, without permission to view runs
    response = client.get("/admin/runs/run/")
    assert response.status_code == 403
    out = console.getvalue()
    assert "Forbidden (Permission denied): /admin/runs/run/" in out
    assert "Traceback" not in out
    assert len(out.strip().splitlines()) == 1, out


@pytest.mark.django_db
def test_a_suspicious_request_logs_without_a_traceback(client, console):
    response = client.get("/healthz", HTTP_HOST="evil.example")
    assert response.status_code == 400
    out = console.getvalue()
    assert "Invalid HTTP_HOST header" in out and "Traceback" not in out


@pytest.mark.django_db
def test_a_server_error_keeps_its_traceback(client, console, monkeypatch):
    def broken(request):
        raise RuntimeError("a real bug")

    monkeypatch.setattr("runs.ops.health.readiness", lambda: broken(None))
    client.raise_request_exception = False
    assert client.get("/readyz").status_code == 500
    out = console.getvalue()
    assert "Traceback" in out and "a real bug" in out


@pytest.mark.django_db
def test_a_refused_request_is_one_json_line(client, user, json_console):
    client.force_login(user)
    assert client.get("/admin/runs/run/").status_code == 403
    lines = [json.loads(line) for line in json_console.getvalue().splitlines()]
    assert len(lines) == 1, lines
    assert lines[0]["status_code"] == 403 and lines[0]["level"] == "WARNING"
    assert "exc_info" not in lines[0] and "request" not in lines[0]


def test_with_debug_on_a_refused_request_is_one_line_without_a_traceback():
    """DEBUG=1 (./dev up --dev-server): Django's own "django" handler printed each
    403 a second time, with its traceback; the project's console is the only one."""
    env = {
        **os.environ,
        "DEBUG": "1",
        "LOG_FORMAT": "text",
        "DJANGO_SETTINGS_MODULE": "runs_project.settings",
    }
    code = (
        "import django, logging; django.setup()\n"
        "from django.core.exceptions import PermissionDenied\n"
        "from django.utils.log import log_response\n"
        "from django.http import HttpResponseForbidden\n"
        "from django.test import RequestFactory\n"
        "request = RequestFactory().get('/admin/runs/run/')\n"
        "try:\n"
        "    raise PermissionDenied\n"
        "except PermissionDenied as exc:\n"
        "    log_response('Forbidden (Permission denied): %s', request.path,\n"
        "        response=HttpResponseForbidden(), request=request, exception=exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in out.stderr.splitlines() if "Forbidden" in line]
    assert lines == [
        "WARNING django.request Forbidden (Permission denied): /admin/runs/run/"
    ], out.stderr
    assert "Traceback" not in out.stderr
