"""A robot's artifacts directory (`output/`) is kept as its step run's files; its
log is stored without terminal escape codes; only regular files are kept."""

import hashlib

import pytest

from runs.engine import run_until_idle
from runs.models import StepRun, WorkItemFile
from runs.robots.artifacts import ansi_strip
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
