"""`{"$secret": "NAME.KEY"}` in step parameters: refused when unknown, resolved
only at the call, and no byte of the value anywhere a run that used it wrote."""

import io
import json
import logging
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.urls import reverse

from automations.definitions import DefinitionError
from automations.services import AutomationStateError, version_publish
from runs.engine import run_until_idle
from runs.models import AuditEvent, Run, RunItem, StepRun, WorkItem
from runs.secrets.checks import literal_credentials, literal_credentials_in_steps
from runs.secrets.services import secret_set
from runs.services import run_start
from tests.factories import make_automation, make_user

TOKEN = "tok-9f8e7d6c5b4a-ZETA"
REF = {"$secret": "crm.token"}


class EchoHandler(BaseHTTPRequestHandler):
    """/ok answers 200 with the Authorization header in its JSON; /deny answers
    401 echoing it in the body (as careless servers do)."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = self.headers.get("Authorization", "")
        if self.path.startswith("/ok"):
            body, status, kind = json.dumps({"id": "r1", "auth": seen}), 200, "json"
        else:
            body, status, kind = f"bad credentials: {seen}", 401, "plain"
        self.send_response(status)
        self.send_header("Content-Type", f"application/{kind}")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def http_step(url, **extra):
    return {
        "action": "builtin.http_request",
        "parameters": {
            "url": url,
            "headers": {"Authorization": REF, "X-User": {"$secret": "crm.user"}},
        },
        **extra,
    }


def test_import_refuses_unknown_secrets_and_keys(db):
    secret_set("crm", {"token": TOKEN, "user": "svc"})
    cases = [
        ({"$secret": "nope.token"}, "no secret 'nope'"),
        ({"$secret": "crm.nokey"}, "has no key 'nokey' (keys: token, user)"),
        ({"$secret": "crm"}, "NAME.KEY"),
        ({"$secret": "crm.token", "x": 1}, 'the one key "$secret"'),
        ({"$secret": 5}, "NAME.KEY"),
    ]
    for reference, message in cases:
        with pytest.raises(DefinitionError) as caught:
            make_automation(
                {"action": "builtin.echo", "parameters": {"h": {"a": [reference]}}}
            )
        assert message in str(caught.value)
        assert "steps[0] (step1).parameters.h.a[0]" in str(caught.value)
        assert TOKEN not in str(caught.value)


def test_publish_refuses_a_reference_whose_secret_is_gone(db):
    secret_set("crm", {"token": TOKEN, "user": "svc"})
    auto = make_automation(http_step("http://127.0.0.1:9/"), publish=False)
    from runs.models import Secret

    Secret.objects.filter(name="crm").delete()
    with pytest.raises(AutomationStateError, match="no secret 'crm'"):
        version_publish(auto.versions.get())


def test_a_reference_whose_secret_is_gone_fails_the_item_by_name(db):
    secret_set("crm", {"token": TOKEN, "user": "svc"})
    auto = make_automation(http_step("http://127.0.0.1:9/"))
    from runs.models import Secret

    Secret.objects.filter(name="crm").delete()
    run = run_start(automation=auto, inputs=[{"subject": "a"}])
    run_until_idle(run)
    item = WorkItem.objects.get(run=run)
    assert (item.state, item.failure_code) == ("failed", "secret_unavailable")
    # names the reference (which one first: jsonb orders keys its own way)
    assert "secret reference 'crm." in item.failure_message
    assert "is unavailable" in item.failure_message


def _collect(client, run, tmp_path) -> dict[str, str]:
    """Every byte a run wrote or shows, by where it is."""
    seen = {}
    dump = lambda rows: json.dumps(list(rows), default=str, ensure_ascii=False)  # noqa: E731
    seen["run items"] = dump(RunItem.objects.filter(run=run).values())
    seen["work items"] = dump(WorkItem.objects.filter(run=run).values())
    seen["step runs"] = dump(StepRun.objects.filter(run=run).values())
    seen["runs"] = dump(Run.objects.filter(pk=run.pk).values())
    seen["audit events"] = dump(AuditEvent.objects.values())
    api = f"/api/v1/runs/{run.pk}/"
    for url in (
        api,
        api + "items/",
        api + "work-items/",
        "/api/v1/runs/",
        "/api/v1/audit-events/",
        "/api/v1/runs/export.csv",
    ):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = (
            b"".join(response.streaming_content)
            if response.streaming
            else (response.content)
        )
        seen[url] = body.decode()
    pack = client.get(api + "evidence.zip")
    assert pack.status_code == 200
    path = tmp_path / "pack.zip"
    path.write_bytes(
        b"".join(pack.streaming_content) if pack.streaming else pack.content
    )
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            seen[f"evidence {name}"] = archive.read(name).decode("utf-8", "replace")
    seen["evidence zip"] = path.read_bytes().decode("latin-1")
    out = tmp_path / "cmd.zip"
    call_command(
        "export_evidence",
        "--run",
        str(run.number),
        "--out",
        str(out),
        stdout=io.StringIO(),
    )
    with zipfile.ZipFile(out) as archive:
        seen["export_evidence"] = "".join(
            archive.read(n).decode("utf-8", "replace") for n in archive.namelist()
        )
    version = run.version
    for url in (
        reverse("admin:runs_run_change", args=[run.pk]),
        reverse("admin:runs_run_changelist"),
        reverse("admin:automations_automationversion_change", args=[version.pk]),
        reverse("admin:automations_automation_change", args=[version.automation_id]),
        reverse("admin:runs_secret_changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        seen[url] = response.content.decode()
    exported = io.StringIO()
    call_command("export_automations", stdout=exported)
    seen["export_automations"] = exported.getvalue()
    return seen


def test_no_byte_of_the_value_anywhere_a_run_wrote(
    db, client, echo_server, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    secret_set("crm", {"token": TOKEN, "user": "svc-user-42"})
    auto = make_automation(
        http_step(echo_server + "/ok"),
        http_step(echo_server + "/deny", max_attempts=1),
    )
    run = run_start(automation=auto, inputs=[{"subject": "a"}, {"subject": "b"}])
    run_until_idle(run)
    # the calls had the values: /ok answered with them, /deny refused
    ok, deny = (
        RunItem.objects.filter(run=run, step__name=name).order_by("seq")
        for name in ("step1", "step2")
    )
    assert {r.outcome for r in ok} == {"succeeded"}, [r.failure_cause for r in ok]
    assert {r.failure_type for r in deny} == {"business"}
    # what was written carries the references
    assert ok[0].parameters["headers"]["Authorization"] == REF
    cause = deny[0].failure_cause
    assert "answered 401: bad credentials: [$secret crm.token]" in cause
    output = WorkItem.objects.filter(run=run, step__name="step2").first().payload
    assert output["response"]["auth"] == "[$secret crm.token]"

    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    seen = _collect(client, run, tmp_path)
    seen["logs"] = caplog.text
    leaked = [where for where, text in seen.items() if TOKEN in text]
    assert leaked == []
    assert [w for w, t in seen.items() if "svc-user-42" in t] == []
    assert "crm.token" in seen["run items"]


def test_system_check_warns_about_literal_credentials(db):
    secret_set("crm", {"token": TOKEN, "user": "svc"})
    assert literal_credentials(
        {
            "url": "https://x",
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": REF},
            "auth": {"password": "hunter2"},
            "list": ["Basic dXNlcjpwdw=="],
            "api_key": "",
        }
    ) == [
        "parameters.auth.password",
        "parameters.headers.Authorization",
        "parameters.list[0]",
    ]
    make_automation(
        {
            "action": "builtin.http_request",
            "parameters": {"url": "http://x", "headers": {"Authorization": "Token a"}},
        },
        slug="literal",
    )
    make_automation(http_step("http://x"), slug="clean")
    warnings = literal_credentials_in_steps(databases=["default"])
    assert [w.id for w in warnings] == ["runs.W312"]
    assert "literal v1, step step1: parameters.headers.Authorization" in warnings[0].msg
    assert "Token a" not in warnings[0].msg
    assert literal_credentials_in_steps(databases=None) == []


def test_redactor_catches_escaped_encoded_and_cut_off_values():
    from runs.secrets.references import _redactor

    redact = _redactor([("crm", {"token": 'a"b/c d+é', "other": "zzzz-9999"})])
    label = "[$secret crm.token]"
    assert redact.text('x a"b/c d+é y') == f"x {label} y"
    assert redact.text('{"t": "a\\"b/c d+\\u00e9"}') == f'{{"t": "{label}"}}'
    assert redact.text("q=a%22b%2Fc%20d%2B%C3%A9&") == f"q={label}&"
    assert redact.text("q=a%22b%2Fc+d%2B%C3%A9") == f"q={label}"
    # an error body cut after the value's first characters
    assert redact.text("denied: zzzz-9") == "denied: [$secret crm.other]"
    assert redact.text("denied: zzz") == "denied: zzz"  # under 4: ordinary text
    assert redact.value({"k": ["zzzz-9999"], "zzzz-9999": 1}) == {
        "k": ["[$secret crm.other]"],
        "[$secret crm.other]": 1,
    }


def test_a_secret_no_key_opens_fails_the_item_by_name(db, settings):
    from cryptography.fernet import Fernet

    settings.RUNS_SECRET_KEYS = [Fernet.generate_key().decode()]
    secret_set("crm", {"token": TOKEN, "user": "svc"})
    auto = make_automation(http_step("http://127.0.0.1:9/"))
    settings.RUNS_SECRET_KEYS = [Fernet.generate_key().decode()]  # the key lost
    run = run_start(automation=auto, inputs=[{"subject": "a"}])
    run_until_idle(run)
    item = WorkItem.objects.get(run=run)
    assert (item.state, item.failure_code) == ("failed", "secret_unavailable")
    assert "no key in RUNS_SECRET_KEYS decrypts it" in item.failure_message
    assert StepRun.objects.get(run=run).state == "finished"
