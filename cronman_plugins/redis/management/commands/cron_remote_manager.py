"""``manage.py cron_remote_manager REQUEST HOST... [--wait]``: control schedulers through Redis."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from cronman_core.errors import CronmanError
from cronman_core.management.base import CronmanCommand
from cronman_plugins.redis.remote import DEFAULT_WAIT, execute


class Command(CronmanCommand):
    help = (
        "Control cron schedulers on other hosts through Redis (CRONMAN_REDIS_HOST/PORT/DB): "
        "disable, enable, get_status, clear_status or kill:<job spec or PID>, for host names or ALL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "request", metavar="REQUEST", help="disable, enable, get_status, clear_status or kill:<job spec or PID>"
        )
        parser.add_argument("hosts", nargs="+", metavar="HOST", help="scheduler host names, or ALL")
        parser.add_argument(
            "--wait", action="store_true", help="wait until the schedulers applied the request at a tick"
        )
        parser.add_argument(
            "--timeout", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
            help=f"how long --wait waits (default {DEFAULT_WAIT:.0f})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        lines, late = execute(options["request"], options["hosts"], options["wait"], options["timeout"])
        for line in lines:
            self.stdout.write(line)
        if late:
            raise CronmanError(f"not applied within {options['timeout']:g} s by: {', '.join(late)}")
