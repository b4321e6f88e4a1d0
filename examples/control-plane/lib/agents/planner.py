"""Planner agent: splits a goal into steps handed to the reviewer."""

from __future__ import annotations

from .runtime import Agent, Result, Task


class Planner(Agent):
    name = "planner"

    def __init__(self, max_steps: int = 5) -> None:
        self.max_steps = max_steps

    def handle(self, task: Task) -> Result:
        goal = str(task.payload.get("goal", "")).strip()
        if not goal:
            return Result(output={"error": "empty goal"})
        steps = [s.strip() for s in goal.split(" then ") if s.strip()]
        steps = steps[: self.max_steps]
        subtasks = [Task(agent="reviewer", payload={"step": s}) for s in steps]
        return Result(output={"goal": goal, "steps": steps}, subtasks=subtasks)
