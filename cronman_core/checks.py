"""System checks (``manage.py check``): ids ``cronman.E0xx`` (errors) and ``cronman.W0xx`` (warnings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from cronman_core import conf
from cronman_core.cronexpr import CronExprError, get_zone, parse_cron
from cronman_core.datadir import check_subdirs, get_data_dir
from cronman_core.errors import (
    CronmanError,
    DataDirError,
    JobParamsError,
    JobSpecError,
    PluginError,
    SettingError,
    UnknownJobError,
    UsageError,
)
from cronman_core.job import BaseCronJob, cron_job_registry
from cronman_core.jobspec import bind, parse
from cronman_core.pluginapp import CronmanPluginAppConfig
from cronman_core.plugins import CronmanPluginManager, get_plugin_manager
from cronman_core.policies import check_options, policy_for
from cronman_core.schedule import ScheduleEntry
from cronman_core.scheduler.tick import Scheduler


@register("cronman")
def check_plugins_and_data_dir(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Plugins that fail to load, bad settings and an unusable data dir stop ``check``.

    Settings are checked after the plugins load, so that each plugin's own
    declared settings are checked too (cronman.E003).
    """
    errors: list[Error] = []
    try:
        get_plugin_manager()
    except PluginError as exc:
        errors.append(Error(str(exc), hint="Fix or remove the plugin.", id="cronman.E001"))
    except SettingError:
        pass  # reported with the other settings below
    errors += [Error(message, hint=hint, id="cronman.E003") for message, hint in conf.problems()]
    try:
        check_subdirs(get_data_dir())
    except SettingError:
        pass  # reported above
    except DataDirError as exc:
        errors.append(
            Error(
                str(exc),
                hint="Set CRONMAN_DATA_DIR to a directory owned by this user with mode 0700.",
                id="cronman.E002",
            )
        )
    return errors


@register("cronman")
def check_schedule(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Schedule entries that could never run (cronman.E010-E015, E017, W010), before any tick."""
    try:
        pm = get_plugin_manager()
    except (PluginError, SettingError):
        return []  # reported as cronman.E001 or cronman.E003
    return [
        (CheckWarning if ".W" in p.id else Error)(p.message, hint=p.hint, id=p.id)
        for p in schedule_problems(pm)
    ]


@register("cronman")
def check_clock(app_configs: Any = None, **kwargs: Any) -> list[CheckWarning]:
    """A clock behind the scheduler's watermark (cronman.W001): nothing fires until it passes it."""
    try:
        scheduler = Scheduler()
        held = scheduler.held_until()
    except CronmanError:
        return []  # reported by the other checks
    if held is None:
        return []
    behind = held - scheduler.clock.time()
    return [CheckWarning(
        f"the clock is {behind:.0f} s behind the scheduler's last tick ({scheduler.format_time(held)}): "
        "fire times up to then already ran, and nothing fires before then",
        hint=f"If the clock was fast and was corrected, wait, or remove {scheduler.state.watermark_path} "
        "to fire from now on (claims still keep each fire to one run).",
        id="cronman.W001",
    )]


@register("cronman")
def check_migrations(
    app_configs: Any = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckWarning]:
    """Unapplied migrations of cronman's apps (cronman.W030): their rows would fail with "no such table".

    ``migrate`` runs the checks with ``databases`` set, just before it applies
    them: the warning is left out there (and with ``check --database``).
    A database that cannot be reached is not this check's business.
    """
    if databases is not None:
        return []
    labels = {c.label for c in apps.get_app_configs() if isinstance(c, CronmanPluginAppConfig)}
    if not labels:
        return []
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except (DatabaseError, ImproperlyConfigured):
        return []
    pending = sorted({migration.app_label for migration, backwards in plan if migration.app_label in labels})
    count = sum(migration.app_label in labels for migration, backwards in plan)
    if not pending:
        return []
    return [CheckWarning(
        f"{count} migration(s) of {', '.join(pending)} not applied: their tables "
        "(run history, Cron Tasks, database schedule entries) cannot be used until they are",
        hint="Run: python manage.py migrate",
        id="cronman.W030",
    )]


OPTIONS_HINT = ("Run policy options: time_zone (an IANA name), misfire_grace and max_runtime (seconds or None), "
                "overlap ('skip', 'replace' or 'wait'), overlap_wait, retries (a whole number), retry_delay; "
                "see docs/scheduling.md, Run policies.")


@dataclass(frozen=True)
class Problem:
    """A schedule problem for ``manage.py check``: check id (``E`` error, ``W`` warning), message, hint."""

    id: str
    message: str
    hint: str


def schedule_problems(pm: CronmanPluginManager) -> list[Problem]:
    """Everything that would stop a schedule entry from running, found before any tick."""
    problems: list[Problem] = []
    try:
        get_zone(conf.time_zone_name())
    except CronmanError as exc:
        problems.append(Problem("cronman.E015", str(exc), "Set CRONMAN_TIME_ZONE (or TIME_ZONE) "
                                "to an IANA zone name such as 'Europe/London'."))
    try:
        entries = list(pm.schedule())
    except CronmanError as exc:
        problems.append(Problem("cronman.E014", f"cannot load schedule entries: {exc}",
                                "Fix CRONMAN_JOBS_MODULE / CRON_JOBS or the plugin that adds entries."))
        return problems
    for name, job_class in cron_job_registry.items():
        if job_class.run is BaseCronJob.run:
            where = f"{job_class.__module__}.{job_class.__qualname__}"
            problems.append(Problem("cronman.E017", f"cron job {name!r} ({where}) has no run() of its own: "
                                    "every run of it would fail",
                                    f"Define run(self, ...) in {job_class.__qualname__}."))
        try:
            policy_for(job_class)
        except UsageError as exc:
            problems.append(Problem("cronman.E016", str(exc), OPTIONS_HINT))
    positions: dict[str, int] = {}
    for entry in entries:
        if "#" in entry.source:  # one entry (dbschedule's), not a list
            where = f"{entry.source}: ({entry.time_spec!r}, {entry.job_spec!r})"
        else:
            position = positions[entry.source] = positions.get(entry.source, -1) + 1
            where = f"{entry.source}[{position}]: ({entry.time_spec!r}, {entry.job_spec!r})"
        problems += entry_problems(pm, entry, where)
    return problems


def entry_problems(pm: CronmanPluginManager, entry: ScheduleEntry, where: str) -> list[Problem]:
    """What would stop one entry from running: its time spec, options and job spec (``where`` leads each)."""
    problems: list[Problem] = []
    try:
        expr = parse_cron(entry.time_spec)
    except CronExprError as exc:
        problems.append(Problem("cronman.E010", f"{where}: {exc}", "Use 5 fields (minute hour "
                                "day-of-month month day-of-week) or an alias such as @hourly."))
    else:
        if not expr.possible:
            problems.append(Problem("cronman.W010", f"{where}: no date matches {expr.text!r}, "
                                    "it never fires", "Check the day-of-month and month fields."))
    try:
        check_options(entry.option_dict, f"{where} options")
    except UsageError as exc:
        problems.append(Problem("cronman.E016", str(exc), OPTIONS_HINT))
    try:
        spec = parse(entry.job_spec)
        job_class = cron_job_registry.get(spec.name)
    except JobSpecError as exc:
        problems.append(Problem("cronman.E012", f"{where}: {exc}",
                                "Write the job spec as Name or Name:value,key=value."))
        return problems
    except UnknownJobError as exc:
        problems.append(Problem("cronman.E011", f"{where}: {exc}",
                                "Register the job class in a cron_jobs module, or fix the name "
                                "(see manage.py cron_worker info)."))
        return problems
    try:
        bind(job_class, spec, pm.reserved_params)
    except JobParamsError as exc:
        problems.append(Problem("cronman.E013", f"{where}: {exc}",
                                f"Give the params that {spec.name}.run() accepts "
                                f"(see manage.py cron_worker info {spec.name})."))
    return problems
