"""Finding 1: an Author ran any OS command on the worker (a `builtin.robot` step's
`command`), as root, with the worker's DATABASE_URL in reach. Robots are now
registered by the deployer (RUNS_ROBOTS); definitions only name them."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from automations.definitions import DefinitionError, automation_import
from automations.models import Automation
from runs.checks import robots_registered
from runs.engine import run_until_idle
from runs.models import Run, WorkItem
from runs.robots.registry import RobotRefused, robot_launch
from runs.services import run_start
from runs.states import RunState, WorkItemState
from tests.factories import make_user

SHELL = ["/bin/sh", "-c", "id > /tmp/x; cat /proc/$PPID/environ"]


def definition(parameters, slug="robot-cmd"):
    return {
        "slug": slug,
        "name": "Robot",
        "publish": True,
        "steps": [
            {"name": "review", "action": "builtin.robot", "parameters": parameters}
        ],
    }


# -- import ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_definition_with_a_command_is_refused_naming_the_step():
    with pytest.raises(DefinitionError) as refused:
        automation_import(definition({"command": SHELL}))
    message = str(refused.value)
    assert "steps[0] (review).parameters.command" in message
    assert "RUNS_ROBOTS" in message and "RUNS_ROBOT_COMMANDS_IN_DEFINITIONS" in message
    assert not Automation.objects.filter(slug="robot-cmd").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "parameters",
    [
        {"cwd": "/"},
        {"env": {"LD_PRELOAD": "/tmp/evil.so"}},
        {},
        {"robot": "loan-review", "command": SHELL},
        {"robot": "loan-review", "env": {"PYTHONPATH": "/tmp"}},
    ],
)
def test_a_definition_may_not_shape_the_process(parameters):
    with pytest.raises(DefinitionError):
        automation_import(definition(parameters))


@pytest.mark.django_db
def test_an_unknown_robot_is_refused_at_import(settings):
    settings.RUNS_ROBOTS = {"known": {"command": ["true"]}}
    with pytest.raises(DefinitionError) as refused:
        automation_import(definition({"robot": "nope"}))
    assert "no robot 'nope'" in str(refused.value) and "known" in str(refused.value)
    automation_import(definition({"robot": "known"}))  # a registered name imports


@pytest.mark.django_db
def test_import_automations_command_refuses_it_too(tmp_path):
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(definition({"command": SHELL})))
    with pytest.raises(Exception) as refused:
        call_command("import_automations", str(path))
    assert "steps[0] (review).parameters.command" in str(refused.value)
    assert not Automation.objects.filter(slug="robot-cmd").exists()


@pytest.mark.django_db
def test_admin_import_refuses_it_for_an_author(client):
    client.force_login(make_user("ada", role="Author"))
    upload = io.BytesIO(json.dumps([definition({"command": SHELL})]).encode())
    upload.name = "defs.json"
    page = client.post(
        reverse("admin:automations_automation_import_definitions"), {"file": upload}
    ).content.decode()
    assert "nothing will be imported" in page
    assert "steps[0] (review).parameters.command" in page
    assert 'name="payload"' not in page
    assert not Automation.objects.filter(slug="robot-cmd").exists()


@pytest.mark.django_db
def test_the_deployers_flag_lets_commands_in(settings):
    settings.RUNS_ROBOT_COMMANDS_IN_DEFINITIONS = True
    automation_import(definition({"command": ["true"], "cwd": ".", "env": {}}))


# -- run ------------------------------------------------------------------------


def env_dump_robot(tmp_path) -> list[str]:
    """A robot that writes its environment and uid to files and exits."""
    script = tmp_path / "dump.py"
    script.write_text(
        "import json, os, sys\n"
        "out = os.environ['DUMP_TO']\n"
        "json.dump(dict(os.environ), open(out + '/env.json', 'w'))\n"
        "open(out + '/uid', 'w').write(str(os.getuid()))\n"
    )
    return [sys.executable, str(script)]


@pytest.mark.django_db(transaction=True)
def test_a_stored_version_with_a_command_refuses_to_run(settings, tmp_path):
    marker = tmp_path / "ran"
    settings.RUNS_ROBOT_COMMANDS_IN_DEFINITIONS = True
    auto = automation_import(
        definition({"command": ["/bin/sh", "-c", f"touch {marker}"]})
    ).automation
    settings.RUNS_ROBOT_COMMANDS_IN_DEFINITIONS = False  # the deployer's new default
    run = run_start(automation=auto, inputs=[{"subject": "ann"}])
    run_until_idle(run)
    run.refresh_from_db()
    assert not marker.exists()
    item = WorkItem.objects.get(run=run)
    assert item.state == WorkItemState.FAILED
    assert "RUNS_ROBOT_COMMANDS_IN_DEFINITIONS" in item.failure_message
    assert "step review" in item.failure_message
    assert run.state == RunState.FAILED and "commands in definitions" in run.error

    settings.RUNS_ROBOT_COMMANDS_IN_DEFINITIONS = True  # the migration path
    again = run_start(automation=auto, inputs=[{"subject": "ann"}])
    run_until_idle(again)
    assert marker.exists()


@pytest.mark.django_db(transaction=True)
def test_the_robot_gets_only_its_listed_environment(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://worker:secret@db/runs")
    monkeypatch.setenv("RUNS_IMAP_PASSWORD", "hunter2")
    assert os.environ.get("SECRET_KEY")  # the worker has one (pytest-env)
    settings.RUNS_ROBOTS = {
        "dump": {
            "command": env_dump_robot(tmp_path),
            "cwd": str(tmp_path),
            "env": {"DUMP_TO": str(tmp_path), "REGION": "eu"},
        }
    }
    auto = automation_import(definition({"robot": "dump"})).automation
    run = run_start(automation=auto, inputs=[{"subject": "ann"}])
    run_until_idle(run)
    env = json.loads((tmp_path / "env.json").read_text())
    for secret in ("DATABASE_URL", "SECRET_KEY", "RUNS_IMAP_PASSWORD", "REDIS_URL"):
        assert secret not in env
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"  # not the worker's PATH
    assert env["DUMP_TO"] == str(tmp_path) and env["REGION"] == "eu"
    assert env["RC_PROCESS_RUN_ID"] == str(run.pk) and env["RC_API_WORKITEM_TOKEN"]
    allowed = {
        "DUMP_TO",
        "REGION",
        "PATH",
        "HOME",
        "LANG",
        "ROBOT_ROOT",
        "ROBOT_ARTIFACTS",
        "PYTHONUNBUFFERED",
    }
    extra = {k for k in env if not k.startswith("RC_")} - allowed
    # the interpreter may add a few of its own (e.g. LC_CTYPE on some builds)
    assert extra <= {"LC_CTYPE"}, extra


ROBOT_USER = "runs-robot-test"


@pytest.fixture
def robot_user():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the worker does not run as root here: no user to switch to")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is absent: cannot create a user to run the robot as")
    exists = subprocess.run(["id", ROBOT_USER], capture_output=True, check=False)
    if exists.returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", ROBOT_USER], check=True
        )
    import pwd

    return pwd.getpwnam(ROBOT_USER)


@pytest.mark.django_db(transaction=True)
def test_a_root_worker_runs_robots_as_runs_robot_user(settings, robot_user):
    # a directory the robot user can read and write (pytest's tmp dirs are 0700);
    # the system interpreter: the venv's may sit under /root
    shared = Path(tempfile.mkdtemp(prefix="runs-robot-user-"))
    try:
        shared.chmod(0o777)
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        command = env_dump_robot(shared)
        command[0] = python
        (shared / "dump.py").chmod(0o644)
        settings.RUNS_ROBOT_USER = ROBOT_USER
        settings.RUNS_ROBOTS = {
            "dump": {
                "command": command,
                "cwd": str(shared),
                "env": {"DUMP_TO": str(shared)},
            }
        }
        auto = automation_import(definition({"robot": "dump"})).automation
        run = run_start(automation=auto, inputs=[{"subject": "ann"}])
        run_until_idle(run)
        assert int((shared / "uid").read_text()) == robot_user.pw_uid != 0
        env = json.loads((shared / "env.json").read_text())
        assert env["HOME"] == robot_user.pw_dir
        assert Run.objects.get(pk=run.pk).state != RunState.RUNNING
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# -- registrations --------------------------------------------------------------

TEMPLATE_YAML = """\
tasks:
  consumer:
    command:
      - python
      - -m
      - robocorp.tasks
      - run
      - tasks.py
      - -t
      - consumer
  producer:
    shell: python -m robocorp.tasks run tasks.py -t producer
condaConfigFile: conda.yaml
artifactsDir: output
PATH:
  - .
  - bin
PYTHONPATH:
  - .
  - libraries
"""


def test_a_robot_yaml_registration_takes_command_path_and_artifacts(settings, tmp_path):
    (tmp_path / "robot.yaml").write_text(TEMPLATE_YAML)
    settings.RUNS_ROBOTS = {
        "orders-producer": {
            "robot_yaml": str(tmp_path / "robot.yaml"),
            "task": "producer",
            "env": {"ORDERS": "1"},
        },
        "orders-consumer": {
            "robot_yaml": str(tmp_path / "robot.yaml"),
            "task": "consumer",
            "python": "/opt/robots/env/bin/python",
        },
    }
    producer = robot_launch({"robot": "orders-producer"})
    assert producer.command == [
        sys.executable,
        "-m",
        "robocorp.tasks",
        "run",
        "tasks.py",
        "-t",
        "producer",
    ]
    assert producer.cwd == str(tmp_path) and producer.artifacts_dir == "output"
    path = producer.env["PATH"].split(os.pathsep)
    assert path[:3] == [
        str(tmp_path),
        str(tmp_path / "bin"),
        str(Path(sys.executable).parent),
    ]
    assert producer.env["PYTHONPATH"] == os.pathsep.join(
        [str(tmp_path), str(tmp_path / "libraries")]
    )
    assert producer.env["ORDERS"] == "1"
    consumer = robot_launch({"robot": "orders-consumer"})
    assert consumer.command[0] == "/opt/robots/env/bin/python"
    assert consumer.command[-1] == "consumer"
    assert "/opt/robots/env/bin" in consumer.env["PATH"]


def test_broken_registrations_are_system_check_errors(settings, tmp_path):
    (tmp_path / "robot.yaml").write_text(TEMPLATE_YAML)
    settings.RUNS_ROBOTS = {
        "no-task": {"robot_yaml": str(tmp_path / "robot.yaml"), "task": "reporter"},
        "no-file": {"robot_yaml": str(tmp_path / "missing.yaml"), "task": "x"},
        "no-command": {"cwd": "/srv"},
        "typo": {"command": ["true"], "enviroment": {}},
    }
    messages = " | ".join(e.msg for e in robots_registered() if e.id == "runs.E201")
    assert "no task 'reporter'" in messages and "consumer, producer" in messages
    assert "'no-file'" in messages and "'no-command'" in messages
    assert "enviroment" in messages
    with pytest.raises(RobotRefused):
        robot_launch({"robot": "no-task"})


def test_the_demo_robot_is_registered():
    launch = robot_launch({"robot": "loan-review"})
    assert launch.cwd.endswith("robots/example")
    assert (
        launch.command[0] == sys.executable and "review_applications" in launch.command
    )
