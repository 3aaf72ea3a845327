"""``manage.py cron_scheduler``: one tick, the daemon, enable/disable, upcoming fires."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import threading
from typing import Any

from django.core.management.base import CommandParser

from cronman_core.control import HostControl
from cronman_core.cronexpr import describe
from cronman_core.datadir import get_data_dir
from cronman_core.errors import UsageError
from cronman_core.job import cron_job_registry
from cronman_core.jobspec import parse
from cronman_core.management.base import CronmanCommand
from cronman_core.pauses import Pause, now_iso
from cronman_core.plugins import get_plugin_manager
from cronman_core.process import hostname
from cronman_core.scheduler.daemon import run_daemon, stop_on_signals
from cronman_core.scheduler.tick import Scheduler
from cronman_core.switch import SchedulerSwitch

logger = logging.getLogger("cronman.scheduler")

#: ``next N`` lists at most this many fire times per entry: enough to read, bounded in time.
MAX_NEXT = 1000


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_NEXT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_NEXT}: {value}")
    return value


class Command(CronmanCommand):
    help = ("Start due cron jobs (run: one tick, daemon: keep ticking), enable/disable, pause/unpause a job, "
            "next.")

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sub.add_parser("run", help="one tick: start every job due since the last tick (crontab)")
        sub.add_parser("daemon", help="keep running, starting each job at its time")
        for name, verb in (("enable", "start spawning again"), ("disable", "stop spawning workers")):
            action = sub.add_parser(name, help=verb)
            action.add_argument(
                "--workers",
                action="store_true",
                help="also resume suspended workers at the next tick"
                if name == "enable"
                else "also suspend running workers (resumed by enable --workers)",
            )
        pause = sub.add_parser("pause", help="start nothing of a job until unpause; its fires are missed")
        pause.add_argument("name", help="job name")
        pause.add_argument("--reason", required=True, help="why (shown by next, the admin and the missed rows)")
        unpause = sub.add_parser("unpause", help="start a paused job's fires again")
        unpause.add_argument("name", help="job name")
        upcoming = sub.add_parser("next", help="the next N fire times of every entry")
        upcoming.add_argument("count", nargs="?", type=_count, default=5, metavar="N")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"handle_{options['action']}")(**options)

    def handle_run(self, **options: Any) -> None:
        result = Scheduler().tick()
        if not result.enabled:
            self.stdout.write("Scheduler is disabled: nothing started.")

    def handle_daemon(self, **options: Any) -> None:
        scheduler = Scheduler(long_lived=True)
        logger.info("scheduler daemon starting (PID %d): %s", os.getpid(), scheduler.describe())
        stop, reload = threading.Event(), threading.Event()
        with stop_on_signals(stop, reload):
            run_daemon(scheduler, stop, reload)

    def handle_enable(self, workers: bool = False, **options: Any) -> None:
        control = HostControl(SchedulerSwitch(get_data_dir()))
        was = "Scheduler was already enabled." if control.is_enabled() else "Scheduler enabled."
        control.enable(workers=workers)
        self.stdout.write(was + (" Workers resume at the next tick." if workers else ""))

    def handle_disable(self, workers: bool = False, **options: Any) -> None:
        control = HostControl(SchedulerSwitch(get_data_dir()))
        was = "Scheduler disabled." if control.is_enabled() else "Scheduler was already disabled."
        control.disable(workers=workers)
        self.stdout.write(was + (" Running workers suspended." if workers else ""))

    @staticmethod
    def _job_name(name: str) -> str:
        spec = parse(name)
        if spec.args or spec.kwargs:
            raise UsageError(f"a job is paused by its name, not a job spec: {spec.name!r}, not {name!r}")
        cron_job_registry.get(spec.name)  # unknown: one line with "did you mean"
        return spec.name

    def handle_pause(self, name: str, reason: str, **options: Any) -> None:
        name = self._job_name(name)
        if not reason.strip():
            raise UsageError("--reason must say why")
        store = get_plugin_manager().pause_store()
        pause = Pause(name, reason.strip(), f"{getpass.getuser()}@{hostname()}", now_iso())
        store.pause(pause)
        self.stdout.write(f"Paused {name}: {pause.reason}. Its fires are recorded as missed until unpause.")

    def handle_unpause(self, name: str, **options: Any) -> None:
        name = self._job_name(name)
        was = get_plugin_manager().pause_store().unpause(name)
        self.stdout.write(f"Unpaused {name} ({was.describe()})." if was else f"{name} was not paused.")

    def handle_next(self, count: int = 5, **options: Any) -> None:
        scheduler = Scheduler()
        rows = scheduler.upcoming(count)
        if not rows:
            raise UsageError("no schedule entries (set CRONMAN_JOBS_MODULE or enable a plugin)")
        self.stdout.write(f"Time zone: {scheduler.zone_name}")
        held = scheduler.held_until()
        if held is not None:
            self.stdout.write(
                f"Held until {scheduler.format_time(held)}: the clock is {held - scheduler.clock.time():.0f} s behind "
                "the last tick (it was fast and was corrected?); fire times up to then already ran "
                "and do not fire again, so nothing fires before then."
            )
        paused = scheduler.pm.pause_store().paused()
        for name in sorted(paused):
            self.stdout.write(f"Paused: {name}, {paused[name].describe()}")
        for entry, instants in rows:
            shown = entry.job_spec if entry.job_spec.isprintable() else repr(entry.job_spec)
            words = describe(entry.time_spec) if not isinstance(instants, str) else ""
            self.stdout.write(f"{shown}  [{' '.join(entry.time_spec.split())}]  ({entry.source})"
                              + (f"  {words}" if words else ""))
            if isinstance(instants, str):
                self.stdout.write(f"  error: {instants}")
                continue
            try:
                spec, _job_class = scheduler.pm.resolve(entry.job_spec)
            except UsageError as exc:  # the tick skips it too (see manage.py check)
                self.stdout.write(f"  cannot run: {exc}")
                continue
            if spec.name in paused:
                self.stdout.write(f"  {paused[spec.name].describe()} (its fires are missed until unpause)")
            if not instants:
                self.stdout.write("  never")
            for instant in instants:
                ran = "  (already ran)" if held is not None and instant <= held else ""
                self.stdout.write(f"  {scheduler.format_time(instant)}{ran}")
