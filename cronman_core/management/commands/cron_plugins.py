"""``manage.py cron_plugins``: every active plugin, its origin and its hooks."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from cronman_core.management.base import CronmanCommand
from cronman_core.plugins import get_plugin_manager


class Command(CronmanCommand):
    help = "List active cronman plugins: name, source, version, hooks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        pm = get_plugin_manager()
        rows = [
            {
                "name": info.name,
                "source": info.source,
                "path": info.path,
                "version": info.version,
                "hooks": pm.plugin_hooks(info.module),
            }
            for info in pm.infos.values()
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for row in rows:
            self.stdout.write(
                f"{row['name']:<28} {row['source']:<12} {row['version']:<9} {row['path']}\n"
                f"    hooks: {', '.join(row['hooks']) or '-'}"
            )
        self.stdout.write(f"{len(rows)} plugin(s) active")
