import pytest

from lib.agents.planner import Planner
from lib.agents.reviewer import Reviewer
from lib.agents.runtime import Runtime
from lib.altitude.depth import HARD_LIMIT, DepthExceeded, Level, check_depth


def test_levels_follow_the_convention():
    assert check_depth(0, 3) is Level.GOAL
    assert check_depth(2, 3) is Level.STEP


def test_depth_over_the_limit_is_refused():
    with pytest.raises(DepthExceeded):
        check_depth(4, 3)


def test_limit_is_clamped_to_the_hard_limit():
    with pytest.raises(DepthExceeded):
        check_depth(HARD_LIMIT + 1, 99)


def test_runtime_stops_at_depth_zero():
    runtime = Runtime(max_depth=0)
    runtime.register(Planner())
    runtime.register(Reviewer())
    with pytest.raises(DepthExceeded):
        runtime.run("planner", {"goal": "one step"})
