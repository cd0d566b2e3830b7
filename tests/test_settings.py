"""runs_project/settings.py is the one place that reads the environment: every
setting of runs.conf is read there from the variable of the same name."""

import re
from pathlib import Path

import pytest

from runs.conf import DEFAULTS

SETTINGS = (
    Path(__file__).resolve().parents[1] / "runs_project" / "settings.py"
).read_text()


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_runs_setting_is_read_from_the_environment(name):
    # os.environ.get("RUNS_X", …), env_int("RUNS_X", …), env_list(…), env_bool(…)
    assert re.search(rf'\(\s*"RUNS_{name}"', SETTINGS), f"RUNS_{name} is not read"
