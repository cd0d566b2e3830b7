# the robot fixtures: a step run held as the runner holds it, the live server
from tests.robots.conftest import (  # noqa: F401
    held_step_run,
    register_robot,
    robot_server,
)
