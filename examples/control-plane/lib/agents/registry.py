"""Registry of the agents a runtime knows by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runtime import Agent


class UnknownAgent(KeyError):
    """Raised when a task names an agent that was never registered."""


class AgentRegistry:
    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}

    def add(self, agent: Agent) -> None:
        if agent.name in self._agents:
            raise ValueError(f"agent {agent.name!r} is already registered")
        self._agents[agent.name] = agent

    def get(self, name: str) -> Agent:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(name) from None

    def names(self) -> list[str]:
        return sorted(self._agents)
