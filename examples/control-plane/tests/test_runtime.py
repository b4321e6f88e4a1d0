import pytest

from lib.agents.planner import Planner
from lib.agents.reviewer import Reviewer
from lib.agents.registry import UnknownAgent
from lib.agents.runtime import Runtime


def make_runtime(max_depth=3):
    runtime = Runtime(max_depth=max_depth)
    runtime.register(Planner())
    runtime.register(Reviewer())
    return runtime


def test_planner_hands_steps_to_reviewer():
    results = make_runtime().run("planner", {"goal": "read ticket then comment ticket"})
    assert results[0].output["steps"] == ["read ticket", "comment ticket"]
    assert [r.output["accepted"] for r in results[1:]] == [True, True]


def test_reviewer_rejects_destructive_steps():
    results = make_runtime().run("planner", {"goal": "delete the queue"})
    assert results[1].output["accepted"] is False


def test_every_task_is_recorded_in_the_ledger():
    runtime = make_runtime()
    runtime.run("planner", {"goal": "a then b then c"})
    assert len(runtime.ledger.entries) == 4
    assert runtime.ledger.verify() is None


def test_unknown_agent_is_refused():
    with pytest.raises(UnknownAgent):
        make_runtime().run("nobody", {})
