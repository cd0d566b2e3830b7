"""The apps are reusable: a host project with only the INSTALLED_APPS the README
lists and no RUNS_* setting migrates, passes `check`, and completes a run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = {
    "slug": "hosted",
    "name": "Hosted",
    "publish": True,
    "steps": [{"name": "echo", "action": "builtin.echo"}],
    "triggers": [{"kind": "manual"}],
}


def _manage(*args, env):
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(600)
def test_a_host_project_without_runs_settings_migrates_checks_and_runs(tmp_path):
    # nothing of this project's environment: no RUNS_*, no DATABASE_URL, no broker
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNS_", "DJANGO_", "Q_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "CACHE_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.host_project.settings",
        HOST_PROJECT_DB=str(tmp_path / "host.sqlite3"),
        PYTHONPATH=str(ROOT),
    )
    _manage("migrate", "--no-input", env=env)
    _manage("check", "--fail-level", "WARNING", env=env)
    definition = tmp_path / "hosted.json"
    definition.write_text(json.dumps(DEFINITION))
    _manage("import_automations", str(definition), env=env)
    inputs = json.dumps([{"subject": "a"}, {"subject": "b"}])
    out = _manage("run_automation", "hosted", "--input", inputs, "--inline", env=env)
    assert "completed; items 2, outputs 2, failed 0" in out, out
