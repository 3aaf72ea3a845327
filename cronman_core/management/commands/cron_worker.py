"""``manage.py cron_worker``: run one job here, and inspect or control workers."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandParser

from cronman_core import control
from cronman_core.info import all_jobs, job_info
from cronman_core.management.base import CronmanCommand
from cronman_core.plugins import get_plugin_manager
from cronman_core.worker import run_job

if TYPE_CHECKING:
    from cronman_core.records import RunRecord

class Command(CronmanCommand):
    help = (
        "Run a cron job in this process (run), list jobs (info), or list and control "
        "workers (status, kill, resume, clean, suspend), or print this host's metrics (metrics)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        run = sub.add_parser("run", help="run one job spec in this process")
        run.add_argument("job_spec", help="Name or Name:params")
        info = sub.add_parser("info", help="list jobs, or show one job's docs and params")
        info.add_argument("name", nargs="?")
        info.add_argument("--json", action="store_true", help="machine-readable output")
        status = sub.add_parser("status", help="list recorded workers: ALIVE or DEAD")
        status.add_argument("target", nargs="?", metavar="spec|PID")
        status.add_argument("--json", action="store_true", help="machine-readable output")
        kill = sub.add_parser("kill", help="SIGTERM, then SIGKILL, matching workers")
        kill.add_argument("target", nargs="?", metavar="spec|PID")
        kill.add_argument(
            "--timeout", type=float, default=30.0, metavar="SECONDS",
            help="how long to follow runs on other hosts asked to stop (default 30)",
        )
        resume = sub.add_parser("resume", help="restart killed workers of can_resume jobs")
        resume.add_argument("target", nargs="?", metavar="spec|PID")
        clean = sub.add_parser("clean", help="forget dead workers so resume skips them")
        clean.add_argument("target", nargs="?", metavar="spec|PID")
        sub.add_parser("suspend", help="clean, then kill every worker (resume restarts them)")
        sub.add_parser("metrics", help="print this host's metrics (Prometheus text format)")

    def handle(self, *args: Any, **options: Any) -> None:
        get_plugin_manager()  # a broken plugin stops every action with one line
        getattr(self, f"handle_{options['action']}")(**options)

    def handle_metrics(self, **options: Any) -> None:
        self.stdout.write(get_plugin_manager().metrics(), ending="")

    def handle_run(self, job_spec: str, **options: Any) -> None:
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
            none = {"name": "(none)", "kind": "", "required": False, "default": None}
            for p in data["params"] or [none]:
                default = f"default {p['default']}" if p["default"] else ""
                flag = "required" if p["required"] else default
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

    def _entries(self, entries: list[control.WorkerEntry]) -> None:
        """Tab-separated lines (the job spec last: it may hold spaces), then totals."""
        lines = [
            f"{e.status}\t{e.record.pid}\t{e.record.host}\t{e.record.started_at}\t"
            f"{e.record.key}\t{e.progress or '-'}\t{e.record.job_spec}\n"
            for e in entries
        ]
        self.stdout.write("".join(lines), ending="")
        counts = control.totals(entries)
        parts = [f"{counts[name]} {name}" for name in sorted(counts) if name != "total"]
        self.stdout.write(f"Total: {counts['total']}" + (f" ({', '.join(parts)})" if parts else ""))

    def handle_status(self, target: str | None = None, **options: Any) -> None:
        entries = control.status(target)
        if options["json"]:
            data = {"workers": [e.as_dict() for e in entries], "totals": control.totals(entries)}
            self.stdout.write(json.dumps(data, indent=2))
            return
        self.stdout.write("STATUS\tPID\tHOST\tSTARTED\tNAME\tPROGRESS\tJOB SPEC")
        self._entries(entries)
        if not entries:
            self.stderr.write(f"({control.where_records()})")

    def handle_kill(self, target: str | None = None, **options: Any) -> None:
        self._entries(control.kill(target, everywhere=True, timeout=options["timeout"]))

    def handle_resume(self, target: str | None = None, **options: Any) -> None:
        results = control.resume(target)
        for result in results:
            pid = "-" if result.pid is None else str(result.pid)
            line = f"{result.outcome}\t{pid}\t{result.record.job_spec}"
            self.stdout.write(line + (f"\t{result.detail}" if result.detail else ""))
        self.stdout.write(f"Resumed: {sum(r.outcome == 'RESUMED' for r in results)}")
        if any(result.outcome == "FAILED" for result in results):
            sys.exit(1)

    def _cleaned(self, removed: list[RunRecord]) -> None:
        for record in removed:
            self.stdout.write(f"CLEANED\t{record.pid}\t{record.job_spec}")
        self.stdout.write(f"Cleaned: {len(removed)}")

    def handle_clean(self, target: str | None = None, **options: Any) -> None:
        self._cleaned(control.clean(target))

    def handle_suspend(self, **options: Any) -> None:
        removed, killed = control.suspend()
        self._cleaned(removed)
        self._entries(killed)
