"""Reviewer agent: accepts or rejects one planned step."""

from __future__ import annotations

from .runtime import Agent, Result, Task

BLOCKED_VERBS = ("delete", "drop", "wipe")


class Reviewer(Agent):
    name = "reviewer"

    def handle(self, task: Task) -> Result:
        step = str(task.payload.get("step", ""))
        verb = step.split(" ", 1)[0].lower() if step else ""
        accepted = bool(step) and verb not in BLOCKED_VERBS
        return Result(output={"step": step, "accepted": accepted})
