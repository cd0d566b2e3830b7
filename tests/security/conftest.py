# the robot fixtures: a step run held as the runner holds it, the live server
from tests.robots.conftest import held_step_run, robot_server  # noqa: F401
