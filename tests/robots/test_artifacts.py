"""A robot's artifacts directory (`output/`) is kept as its step run's files; its
log is stored without terminal escape codes; only regular files are kept."""

import hashlib
import tempfile

import pytest
from django.urls import reverse

from runs.engine import run_until_idle
from runs.models import StepRun, WorkItemFile
from runs.robots.artifacts import ansi_strip
from runs.robots.console import robot_log_clean
from runs.services import run_start
from tests.api.conftest import client_for
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

SCRIPT = r"""
import os, pathlib, sys
out = pathlib.Path(os.environ["ROBOT_ARTIFACTS"])
(out / "screens").mkdir(parents=True, exist_ok=True)
(out / "report.txt").write_text("all checked\n")
(out / "screens" / "page1.png").write_bytes(b"\x89PNG fake")
os.symlink("/etc/passwd", out / "passwd")
print("\x1b[1;32mgreen\x1b[0m done \x1b]0;title\x07ok")
print("screens in", out / "screens")
sys.exit(0)
"""


def test_output_folder_is_kept_as_step_run_files_and_log_has_no_ansi(
    robot_server, automation, tmp_path, register_robot
):
    script = tmp_path / "artifacts.py"
    script.write_text(SCRIPT)
    auto = automation(
        {
            "name": "review",
            "action": "builtin.robot",
            "parameters": register_robot(command=["{python}", str(script)]),
        }
    )
    run = run_start(automation=auto, inputs=[{"subject": "ann"}])
    run_until_idle(run)
    step_run = StepRun.objects.get(run=run)
    assert "green done ok" in step_run.log and "\x1b" not in step_run.log
    # the server's temp directory is not the reader's business: a placeholder
    assert "screens in <robot-temp>/output/screens" in step_run.log, step_run.log
    assert tempfile.gettempdir() + "/" not in step_run.log
    assert "artifact passwd: not a regular file, not kept" in step_run.log
    files = {f.name: f for f in WorkItemFile.objects.filter(step_run=step_run)}
    assert sorted(files) == ["report.txt", "screens/page1.png"]
    report = files["report.txt"]
    assert report.work_item_id is None and report.size == len(b"all checked\n")
    assert report.sha256 == hashlib.sha256(b"all checked\n").hexdigest()

    # listed and downloadable by whoever may view the run, as an attachment
    viewer = make_user("vera", ["view_run"])
    api = client_for(viewer)
    rows = api.get(f"/api/v1/runs/{run.pk}/files/").json()["results"]
    listed = {r["name"]: r for r in rows}
    assert listed["report.txt"]["step_run"] == step_run.pk
    assert listed["report.txt"]["work_item"] is None
    assert listed["report.txt"]["step"] == "review"
    download = api.get(listed["report.txt"]["download_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    assert b"".join(download.streaming_content) == b"all checked\n"
    # nobody else
    assert client_for(make_user("nina")).get(
        listed["report.txt"]["download_url"]
    ).status_code in (403, 404)


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[2K\x1b[1Gline", "line"),
        ("\x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("plain [text]", "plain [text]"),
    ],
)
def test_ansi_strip(raw, clean):
    assert ansi_strip(raw) == clean


def test_robot_log_clean_strips_escapes_and_temp_paths():
    temp = tempfile.gettempdir()
    raw = (
        f"\x1b[32mOK\x1b[0m wrote {temp}/runs-robot-ab_12x/output/a.png\n"
        f"cache at {temp}/pip-cache/x, not /tmpfoo/{temp.strip('/')}x\n"
    )
    assert robot_log_clean(raw) == (
        "OK wrote <robot-temp>/output/a.png\n"
        f"cache at <tmp>/pip-cache/x, not /tmpfoo/{temp.strip('/')}x\n"
    )


@pytest.mark.django_db
def test_step_run_page_and_log_api_show_a_stored_log_cleaned(automation, client):
    """Rows stored before the rule: cleaned when shown, in admin and the API."""
    run = run_start(automation=automation("builtin.echo"), inputs=[{"subject": "a"}])
    run_until_idle(run)
    step_run = StepRun.objects.get(run=run)
    temp = tempfile.gettempdir()
    StepRun.objects.filter(pk=step_run.pk).update(
        log=f"\x1b[1;31mred\x1b[0m {temp}/runs-robot-q1w2/output/x.txt\n"
    )
    viewer = make_user("vera", ["view_run", "view_steprun"], is_staff=True)
    client.force_login(viewer)
    page = client.get(reverse("admin:runs_steprun_change", args=[step_run.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "red &lt;robot-temp&gt;/output/x.txt" in body
    assert "\x1b" not in body and f"{temp}/runs-robot" not in body
    text = client_for(viewer).get(f"/api/v1/runs/{run.pk}/step-runs/{step_run.pk}/log/")
    assert text.content.decode() == "red <robot-temp>/output/x.txt\n"
