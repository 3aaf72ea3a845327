"""Shared behaviour of cronman commands: one line and an exit code for user errors."""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cronman_core import conf
from cronman_core.errors import CronmanError
from cronman_core.plugins import get_plugin_manager

logger = logging.getLogger("cronman.command")

#: Django's options of every command (``BaseCommand.create_parser``), by their ``dest``.
DJANGO_OPTIONS = frozenset({"verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color"})


class CronmanCommand(BaseCommand):
    """A command whose :class:`CronmanError` becomes one stderr line and its exit code.

    System checks are not run before each command (``manage.py check`` runs
    them): a worker starts often and must start fast, and a plugin error is
    reported by the command itself as one line. Every declared setting is
    checked first, so a bad one stops the command before it claims, spawns
    or records anything.
    """

    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Django's own options (``--settings``, ``-v``...) are accepted after the action too.

        ``cron_worker status --settings proj.prod`` is how operators type it;
        argparse would hand those options to the action's sub-parser, which
        knew none of them.
        """
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        shared = [a for a in parser._actions if a.option_strings and a.dest in DJANGO_OPTIONS]
        for group in parser._actions:
            if isinstance(group, argparse._SubParsersAction):
                for sub in group.choices.values():
                    for action in shared:
                        own = copy.copy(action)
                        own.default = argparse.SUPPRESS  # given before the action: keep that value
                        sub._add_action(own)
        return parser

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
