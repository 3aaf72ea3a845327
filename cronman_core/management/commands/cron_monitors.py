"""``manage.py cron_monitors sync [--dry-run]``: the monitoring services' monitors made to match the schedule."""

from __future__ import annotations

import sys
from typing import Any, cast

from django.core.management.base import CommandParser

from cronman_core.errors import CronmanError
from cronman_core.management.base import CronmanCommand
from cronman_core.monitors import monitored_jobs
from cronman_core.plugins import get_plugin_manager


class Command(CronmanCommand):
    help = ("Create or update the monitors of healthchecks.io, Cronitor and Sentry Crons from the schedule "
            "(schedule, time zone, grace, max runtime); --dry-run prints what would change.")

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sync = sub.add_parser("sync", help="make the monitors match the schedule")
        sync.add_argument("--dry-run", action="store_true", help="print the changes, make none")

    def handle(self, *args: Any, **options: Any) -> None:
        pm = get_plugin_manager()
        jobs, problems = monitored_jobs(list(pm.schedule()))
        for problem in problems:
            self.stderr.write(f"not monitored: {problem}")
        apply = not options["dry_run"]
        failed = False
        impls = pm.hook.cronman_monitors_sync.get_hookimpls()
        if not impls:
            raise CronmanError("no monitor plugin is enabled (healthchecks, cronitor or sentry, with their API "
                               "settings: docs/monitoring.md)")
        changes = 0
        for impl in impls:  # in load order
            try:
                lines = cast("list[str] | None", impl.function(jobs=jobs, apply=apply)) or []
            except CronmanError as exc:
                self.stderr.write(f"{impl.plugin_name}: {exc}")
                failed = True
                continue
            for line in lines:
                self.stdout.write(line if apply else f"would {line}")
            changes += len(lines)
        if not changes and not failed:
            self.stdout.write("the monitors match the schedule: nothing to change")
        elif not changes:
            self.stdout.write("nothing changed: the services above could not be read")
        if failed:
            sys.exit(1)
