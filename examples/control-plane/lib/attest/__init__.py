"""Provenance attestation."""

from .provenance import PREDICATE_TYPE, statement_for

__all__ = ["PREDICATE_TYPE", "statement_for"]
