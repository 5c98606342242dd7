"""The exit codes every ``python -m bot`` command shares, and the error that means "change the command line"."""

from __future__ import annotations

EXIT_OK = 0
"""Done."""
EXIT_FAILED = 1
"""The command ran and failed."""
EXIT_CONFIG = 2
"""The command line or the configuration must change first."""


class UsageError(Exception):
    """The command line names something that cannot work; the message says what to change (exit 2)."""
