"""Agent runtime of the example control plane."""

__version__ = "0.3.0"
