"""Shared behaviour of cronman commands: one line and an exit code for user errors."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand

from cronman_core import conf
from cronman_core.errors import CronmanError
from cronman_core.plugins import get_plugin_manager

logger = logging.getLogger("cronman.command")


class CronmanCommand(BaseCommand):
    """A command whose :class:`CronmanError` becomes one stderr line and its exit code.

    System checks are not run before each command (``manage.py check`` runs
    them): a worker starts often and must start fast, and a plugin error is
    reported by the command itself as one line. Every declared setting is
    checked first, so a bad one stops the command before it claims, spawns
    or records anything.
    """

    requires_system_checks: list[str] = []

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            get_plugin_manager()  # loading the plugins declares their settings
            conf.validate()
            return super().execute(*args, **options)
        except CronmanError as exc:
            if conf.debug():
                logger.exception("command failed")
            self.stderr.write(f"Error: {exc}")
            sys.exit(exc.exit_code)
        except Exception as exc:
            # A bug, not bad input: report it, log the traceback, print one line.
            logger.debug("%s failed", self.__class__.__module__, exc_info=True)
            self.report_error(exc)
            self.stderr.write(f"Error: {type(exc).__name__}: {exc}")
            sys.exit(1)

    def report_error(self, exc: BaseException, **context: Any) -> None:
        """Send an unexpected error of the command to the error-reporter plugins."""
        try:
            pm = get_plugin_manager()
        except CronmanError:
            return
        context.setdefault("command", self.__class__.__module__.rsplit(".", 1)[-1])
        pm.report_error(exc, context)
