# the robot fixtures (a live server robots call back, RUNS_ROBOTS registration)
from tests.robots.conftest import (  # noqa: F401
    held_step_run,
    python,
    register_robot,
    robot_server,
)
