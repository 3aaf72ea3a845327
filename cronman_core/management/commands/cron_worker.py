"""``manage.py cron_worker``: run one job here, and inspect or control workers."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandParser

from cronman_core.info import all_jobs, job_info
from cronman_core.management.base import CronmanCommand
from cronman_core.plugins import get_plugin_manager


class Command(CronmanCommand):
    help = "Run a cron job in this process (run), or list jobs (info)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        run = sub.add_parser("run", help="run one job spec in this process")
        run.add_argument("job_spec", help="Name or Name:params")
        info = sub.add_parser("info", help="list jobs, or show one job's docs and params")
        info.add_argument("name", nargs="?")
        info.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        get_plugin_manager()  # a broken plugin stops every action with one line
        getattr(self, f"handle_{options['action']}")(**options)

    def handle_run(self, job_spec: str, **options: Any) -> None:
        from cronman_core.worker import run_job

        code = run_job(job_spec)
        sys.stdout.flush()
        if code:
            sys.exit(code)

    def handle_info(self, name: str | None = None, **options: Any) -> None:
        if name:
            data = job_info(name)
            if options["json"]:
                self.stdout.write(json.dumps(data, indent=2))
                return
            self.stdout.write(f"{data['name']}{data['signature']}  [{data['class']}]")
            if data["doc"]:
                self.stdout.write(data["doc"])
            if data["run_doc"]:
                self.stdout.write(f"\nrun(): {data['run_doc']}")
            self.stdout.write("\nParameters:")
            for p in data["params"] or [{"name": "(none)", "kind": "", "required": False, "default": None}]:
                flag = "required" if p["required"] else (f"default {p['default']}" if p["default"] else "")
                self.stdout.write(f"  {p['name']:<20} {p['kind']:<22} {flag}".rstrip())
            return
        jobs = all_jobs()
        if options["json"]:
            self.stdout.write(json.dumps(jobs, indent=2))
            return
        for data in jobs:
            summary = data["doc"].splitlines()[0] if data["doc"] else ""
            self.stdout.write(f"{data['name']:<30} {summary}")
        self.stdout.write(f"{len(jobs)} job(s)")
