"""Agents and the runtime that drives them."""

from .registry import AgentRegistry
from .runtime import Agent, Result, Runtime, Task

__all__ = ["Agent", "AgentRegistry", "Result", "Runtime", "Task"]
