"""Exceptions that the commands turn into one line and a documented exit code."""

from __future__ import annotations


class CronmanError(Exception):
    """Base class of every error cronman reports to a user as one line."""

    exit_code = 1


class UsageError(CronmanError):
    """Something the user can fix: bad job spec, unknown job, bad settings (exit 2)."""

    exit_code = 2


class JobSpecError(UsageError, ValueError):
    """A job spec that does not follow the grammar; names the offending character range."""

    def __init__(self, message: str, spec: str, start: int, end: int) -> None:
        self.spec = spec
        self.start = start
        self.end = end
        self.reason = message
        super().__init__(f"invalid job spec {spec!r}: {message} at characters {start}-{end}")


class UnknownJobError(UsageError, LookupError):
    """No job class is registered under the name."""


class JobParamsError(UsageError):
    """Job spec params that do not fit the job's ``run()`` signature."""


class PluginError(UsageError):
    """A plugin that cannot be imported or implements an unknown hook."""


class DataDirError(UsageError):
    """The data dir is missing, unsafe or unusable."""


class DataDirNotWritable(DataDirError):
    """The data dir cannot be written now (a read-only filesystem): it may pass, unlike the others."""


class SettingError(UsageError):
    """A ``CRONMAN_*`` setting of the wrong type or out of range (exit 2)."""
