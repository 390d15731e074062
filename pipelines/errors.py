"""One root error with an exit status; the CLI turns any of them into a message and that status.

Exit statuses (the run contract, docs/run-contract.md):

| status | error | meaning |
|---|---|---|
| 0 | | published (or the command did what it was asked) |
| 2 | ConfigError, InputError | usage, configuration or an unusable path: nothing was read |
| 3 | GateFailed | the leak gate failed: nothing was published to training |
| 4 | RunFailed | the run failed (I/O, runner): nothing was published; a retry may succeed |
| 5 | InputMissing | the day's input has not landed (nothing matches): retry later |
| 6 | Interrupted | stopped by SIGINT or SIGTERM: nothing new was published |
"""

from __future__ import annotations

__all__ = [
    "EXIT_STATUSES",
    "ConfigError",
    "ConsentgateError",
    "GateFailed",
    "InputError",
    "InputMissing",
    "Interrupted",
    "RunFailed",
]


class ConsentgateError(Exception):
    """Root of consentgate's errors; `exit_code` is the process exit status it maps to."""

    exit_code = 4


class ConfigError(ConsentgateError):
    """Usage or configuration is wrong; nothing was read. The message names the file and key."""

    exit_code = 2


class InputError(ConsentgateError):
    """An input path cannot be used (unreadable, not a file type the job reads, misplaced)."""

    exit_code = 2


class InputMissing(InputError):
    """An input the run needs is not there yet (no file matches): a scheduler retries later."""

    exit_code = 5


class GateFailed(ConsentgateError):
    """The leak gate found something; nothing was published to training."""

    exit_code = 3


class RunFailed(ConsentgateError):
    """The run failed (I/O, runner error); nothing was published."""

    exit_code = 4


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM ended the command; nothing new was published.

    Deliberately not a ConsentgateError (an Exception): like KeyboardInterrupt, it must pass
    through every `except Exception` on its way out, Beam's included.
    """

    exit_code = 6

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


# status -> what it means; docs/run-contract.md and the README list the same (tests/test_docs.py).
EXIT_STATUSES = {
    0: "published",
    2: "usage or configuration error",
    3: "the leak gate failed",
    4: "the run failed",
    5: "the input has not landed",
    6: "interrupted",
}
