"""Test robots, written with robocorp-tasks and robocorp-workitems like any robot.

STARTED_DIR: where a robot notes the items it started (a file per item id), so a
test knows the robot is mid-item.
"""

import os
import signal
import time
from pathlib import Path

from robocorp import workitems
from robocorp.tasks import task


def _started(item) -> None:
    Path(os.environ["STARTED_DIR"], str(item.id)).write_text(str(os.getpid()))


@task
def slow():
    """Takes each item slowly; SIGTERM ends it (Python's default)."""
    for item in workitems.inputs:
        with item:
            _started(item)
            for _ in range(600):
                time.sleep(0.1)
            workitems.outputs.create(payload=item.payload)


@task
def stubborn():
    """Ignores SIGTERM: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for item in workitems.inputs:
        with item:
            _started(item)
            while True:
                time.sleep(0.1)


@task
def careful():
    """Takes 1.5 s per item and answers every item it holds."""
    for item in workitems.inputs:
        with item:
            _started(item)
            deadline = time.time() + 1.5
            while time.time() < deadline:
                time.sleep(0.05)
            workitems.outputs.create(payload=item.payload)
