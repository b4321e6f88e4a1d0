"""The agent runtime: runs tasks, enforces depth, records the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib.altitude.depth import check_depth
from lib.ledger.chain import Ledger

from .registry import AgentRegistry


@dataclass
class Task:
    """One unit of work handed to an agent."""

    agent: str
    payload: dict[str, Any]
    depth: int = 0
    parent: str | None = None


@dataclass
class Result:
    """What an agent returns: an output and optional subtasks."""

    output: dict[str, Any] = field(default_factory=dict)
    subtasks: list[Task] = field(default_factory=list)


class Agent:
    """Base class of every agent."""

    name = "agent"

    def handle(self, task: Task) -> Result:
        raise NotImplementedError


class Runtime:
    """Drives agents breadth-first within the altitude depth limit."""

    def __init__(self, max_depth: int = 3, ledger: Ledger | None = None) -> None:
        self.max_depth = max_depth
        self.registry = AgentRegistry()
        self.ledger = ledger if ledger is not None else Ledger()

    def register(self, agent: Agent) -> None:
        self.registry.add(agent)

    def run(self, name: str, payload: dict[str, Any]) -> list[Result]:
        queue = [Task(agent=name, payload=payload)]
        results: list[Result] = []
        while queue:
            task = queue.pop(0)
            check_depth(task.depth, self.max_depth)
            agent = self.registry.get(task.agent)
            result = agent.handle(task)
            self.ledger.append(
                "task.done",
                {"agent": task.agent, "depth": task.depth, "subtasks": len(result.subtasks)},
            )
            for sub in result.subtasks:
                sub.depth = task.depth + 1
                sub.parent = task.agent
                queue.append(sub)
            results.append(result)
        return results
