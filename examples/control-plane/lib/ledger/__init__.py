"""Hash-chained ledger."""

from .chain import BrokenChain, Entry, Ledger

__all__ = ["BrokenChain", "Entry", "Ledger"]
