"""One root error with an exit status; the CLI turns any of them into a message and that status."""

from __future__ import annotations

__all__ = ["ConfigError", "ConsentgateError", "GateFailed", "InputError", "RunFailed"]


class ConsentgateError(Exception):
    """Root of consentgate's errors; `exit_code` is the process exit status it maps to."""

    exit_code = 4


class ConfigError(ConsentgateError):
    """Usage or configuration is wrong; nothing was read. The message names the file and key."""

    exit_code = 2


class InputError(ConsentgateError):
    """An input path cannot be used (missing, unreadable, matches nothing)."""

    exit_code = 2


class GateFailed(ConsentgateError):
    """The leak gate found something; nothing was published to training."""

    exit_code = 3


class RunFailed(ConsentgateError):
    """The run failed (I/O, runner error); nothing was published."""

    exit_code = 4
