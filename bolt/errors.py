"""Errors bolt raises at its host boundary.

Every user-facing validation failure is a :class:`BoltError` whose message names the
offending field (``problem.target.weights``, ``regularization.tau``, ...). The CLI turns it
into a one-line message and a non-zero exit status.
"""

from __future__ import annotations

__all__ = ["BoltError", "ConfigError", "ResultsError"]


class BoltError(ValueError):
    """A problem with user input; the message names the field at fault."""


class ConfigError(BoltError):
    """An invalid configuration file or value."""


class ResultsError(BoltError):
    """A missing, corrupt or incompatible results file or run directory."""
