"""Depth limits: how deep a chain of subtasks may go."""

from __future__ import annotations

from enum import IntEnum

HARD_LIMIT = 5


class Level(IntEnum):
    """Named altitudes, as docs/altitude/levels.md defines them."""

    GOAL = 0
    PLAN = 1
    STEP = 2
    ACTION = 3
    CALL = 4
    DETAIL = 5


class DepthExceeded(RuntimeError):
    def __init__(self, depth: int, max_depth: int) -> None:
        super().__init__(f"task depth {depth} exceeds the limit {max_depth}")
        self.depth = depth
        self.max_depth = max_depth


def effective_limit(max_depth: int) -> int:
    """The configured limit, clamped to the hard limit."""
    if max_depth < 0:
        raise ValueError("max_depth must not be negative")
    return min(max_depth, HARD_LIMIT)


def check_depth(depth: int, max_depth: int) -> Level:
    """Returns the level of `depth`, or raises DepthExceeded."""
    limit = effective_limit(max_depth)
    if depth > limit:
        raise DepthExceeded(depth, limit)
    return Level(depth)
