"""Errors a user can act on: each names the cause and the fix, and the CLI prints it without a traceback."""

from __future__ import annotations


class LakehouseError(Exception):
    """A failure with a known cause; ``fix`` tells the user what to do about it."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class InputError(LakehouseError):
    """An input the job was given (a file, a folder) does not exist or cannot be read: running it again
    unchanged fails the same way, so schedulers do not retry it (exit code 66, EX_NOINPUT of sysexits.h)."""

    exit_code = 66


class ConfigError(LakehouseError):
    """The configuration file is missing, unreadable or does not match the expected shape."""


class StackError(LakehouseError):
    """A local-stack service could not be started, stopped or reached."""


class ServiceUnavailable(StackError):
    """A job needs a service that is not reachable."""
