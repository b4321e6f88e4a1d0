"""Altitude: depth limits of task decomposition."""

from .depth import HARD_LIMIT, DepthExceeded, Level, check_depth

__all__ = ["HARD_LIMIT", "DepthExceeded", "Level", "check_depth"]
