"""Hello agent: answers a task with a greeting (package PKG-HELLO-001)."""

from __future__ import annotations

from .runtime import Agent, Result, Task


class Hello(Agent):
    name = "hello"

    def handle(self, task: Task) -> Result:
        name = str(task.payload.get("name", "world")).strip() or "world"
        return Result(output={"greeting": f"hello, {name}"})
