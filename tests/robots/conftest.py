import sys
from pathlib import Path

import pytest

pytest.importorskip("robocorp.workitems")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "robots" / "example"
ROBOTS = Path(__file__).resolve().parent / "robots"


def robocorp_command(task="review_applications"):
    return ["{python}", "-m", "robocorp.tasks", "run", "tasks.py", "-t", task]


@pytest.fixture
def robot_server(live_server, settings):
    """The live server robots call back (their subprocess speaks HTTP to it)."""
    settings.RUNS_ROBOT_API_URL = live_server.url
    return live_server


@pytest.fixture
def python():
    return sys.executable
