"""The plugin manager: built-ins, entry points, plugin apps, then settings.

Every plugin, built-in or third-party, is loaded by :func:`_load` from a
dotted module path. A module-level ``plugin_enabled()`` function lets a
built-in switch itself on from its own settings (``CRONMAN_CRONITOR_ENABLED``
...); a plugin named in ``CRONMAN_PLUGINS`` or by an entry point is always on.
``CRONMAN_DISABLED_PLUGINS`` blocks a plugin by name or module path.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy
from django.apps import apps

from cronman_core import __version__, conf, hookspecs
from cronman_core.datadir import get_data_dir
from cronman_core.errors import CronmanError, PluginError, SettingError, UsageError
from cronman_core.job import BaseCronJob, JobRun, cron_job_registry
from cronman_core.jobspec import JobSpec, bind, parse
from cronman_core.locks import LockBackend
from cronman_core.pauses import FilePauseStore, PauseStore
from cronman_core.schedule import Schedule
from cronman_core.spawners import RequestedRun, Spawner, WorkerCommand
from cronman_core.switch import SchedulerControl

logger = logging.getLogger("cronman.plugins")

PROJECT = "cronman"
ENTRY_POINT_GROUP = "cronman"

#: Built-in plugins, loaded by the same code as third-party ones.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "cronman_plugins.jobs_module",
    "cronman_plugins.pidfile",
    "cronman_plugins.local",
    "cronman_plugins.prefork.plugin",
    "cronman_plugins.priority",
    "cronman_plugins.cronitor",
    "cronman_plugins.healthchecks",
    "cronman_plugins.sentry",
    "cronman_plugins.raven_cmd",
    "cronman_plugins.redis.plugin",
    "cronman_plugins.database.plugin",
    "cronman_plugins.celery",
    "cronman_plugins.prometheus.plugin",
)

#: Hooks whose implementations the core calls one by one, isolating failures.
NOTIFICATION_HOOKS = frozenset({
    "cronman_job_started",
    "cronman_job_succeeded",
    "cronman_job_failed",
    "cronman_job_killed",
    "cronman_job_skipped",
    "cronman_job_progress",
    "cronman_report_error",
    "cronman_scheduler_tick",
    "cronman_scheduler_tick_done",
})


@dataclass
class PluginInfo:
    """Where an active plugin came from, for ``cron_plugins`` and error messages."""

    name: str
    source: str  # builtin / entry point / app / setting
    path: str
    version: str
    module: ModuleType
    hooks: list[str] = field(default_factory=list)


class CronmanPluginManager(pluggy.PluginManager):
    """A pluggy manager with one typed method per hook, as tox 4's.

    The core calls hooks only through these methods, so every call site is
    type-checked; the manager also remembers the origin of every plugin.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def plugin_hooks(self, plugin: object) -> list[str]:
        return sorted(caller.name for caller in self.get_hookcallers(plugin) or ())

    def has_impl(self, hook_name: str) -> bool:
        return bool(getattr(self.hook, hook_name).get_hookimpls())

    # -- jobs and specs ---------------------------------------------------------

    @functools.cached_property
    def reserved_params(self) -> frozenset[str]:
        """Job-spec params consumed by plugins (``cronman_reserved_params``)."""
        return frozenset(name for names in self.hook.cronman_reserved_params() for name in names or ())

    def resolve(self, job_spec: str) -> tuple[JobSpec, type[BaseCronJob]]:
        """Parse ``job_spec``, look its job up and bind its params (reserved ones left out).

        A misfit is a :class:`~cronman_core.errors.UsageError` before anything runs.
        """
        spec = parse(job_spec)
        job_class = cron_job_registry.get(spec.name)
        bind(job_class, spec, self.reserved_params)
        return spec, job_class

    def schedule(self) -> Schedule:
        """The schedule from every ``cronman_schedule_entries`` implementation."""
        return Schedule(list(self.hook.cronman_schedule_entries()))

    def schedule_version(self) -> tuple[str, ...]:
        """Every plugin's ``cronman_schedule_version`` token: changes when a schedule source did."""
        return tuple(token for token in self.hook.cronman_schedule_version() if token is not None)

    def schedule_reload(self) -> None:
        """Have every schedule source read itself anew (``cronman_schedule_reload``, SIGHUP)."""
        self.hook.cronman_schedule_reload()

    # -- providers ----------------------------------------------------------------

    def lock_backend(self) -> LockBackend:
        """The lock backend (``cronman_lock_backend``), asked anew at each use."""
        backend: LockBackend | None = self.hook.cronman_lock_backend(data_dir=get_data_dir())
        if backend is None:
            chosen = conf.get("CRONMAN_LOCK_BACKEND")
            if chosen:
                raise UsageError(f"no lock backend: CRONMAN_LOCK_BACKEND = {chosen!r} names no active "
                                 "plugin that implements cronman_lock_backend")
            raise UsageError("no lock backend: enable a plugin that implements cronman_lock_backend")
        return backend

    def pause_store(self) -> PauseStore:
        """Where paused jobs are kept (``cronman_pause_store``; the data dir without one)."""
        store: PauseStore | None = self.hook.cronman_pause_store(data_dir=get_data_dir())
        return store if store is not None else FilePauseStore(get_data_dir())

    def metrics(self) -> str:
        """This host's metrics text (``cronman_metrics``); a :class:`UsageError` without a metrics plugin."""
        text: str | None = self.hook.cronman_metrics()
        if text is None:
            raise UsageError("no metrics: set CRONMAN_PROMETHEUS_ENABLED = True (the prometheus extra), "
                             "or enable another plugin that implements cronman_metrics")
        return text

    def spawner(self, long_lived: bool = False) -> Spawner:
        """The spawner (``cronman_spawner``), asked anew at each spawn."""
        spawner: Spawner | None = self.hook.cronman_spawner(data_dir=get_data_dir(), long_lived=long_lived)
        if spawner is None:
            chosen = conf.get("CRONMAN_SPAWNER")
            if chosen:
                raise UsageError(f"no spawner: CRONMAN_SPAWNER = {chosen!r} names no active "
                                 "plugin that implements cronman_spawner")
            raise UsageError("no spawner: enable a plugin that implements cronman_spawner")
        return spawner

    def worker_command(self, command: WorkerCommand) -> None:
        """Let ``cronman_worker_command`` wrappers rewrite ``command`` in place."""
        self.hook.cronman_worker_command(command=command)

    def requested_runs(self, now: dt.datetime) -> list[RequestedRun]:
        """Every run requested outside the schedule now (``cronman_requested_runs``)."""
        return [
            run if isinstance(run, RequestedRun) else RequestedRun(str(run))
            for runs in self.hook.cronman_requested_runs(now=now)
            for run in runs or ()
        ]

    # -- notifications ------------------------------------------------------------

    def job_started(self, run: JobRun) -> None:
        self._notify("cronman_job_started", run=run)

    def job_succeeded(self, run: JobRun) -> None:
        self._notify("cronman_job_succeeded", run=run)

    def job_failed(self, run: JobRun, exc: BaseException) -> None:
        self._notify("cronman_job_failed", run=run, exc=exc)

    def job_killed(self, run: JobRun, signum: int) -> None:
        self._notify("cronman_job_killed", run=run, signum=signum)

    def job_progress(self, run: JobRun) -> None:
        self._notify("cronman_job_progress", run=run)

    def job_skipped(self, run: JobRun, reason: str) -> None:
        self._notify("cronman_job_skipped", run=run, reason=reason)

    def report_error(self, exc: BaseException, context: dict[str, Any], run: JobRun | None = None) -> None:
        self._notify("cronman_report_error", exc=exc, context=context, run=run)

    def scheduler_tick(self, control: SchedulerControl, now: dt.datetime) -> None:
        self._notify("cronman_scheduler_tick", control=control, now=now)

    def fires_missed(self, job_spec: str, first: dt.datetime, count: int, reason: str, key: str) -> None:
        self._notify("cronman_fires_missed", job_spec=job_spec, first=first, count=count, reason=reason, key=key)

    def scheduler_tick_done(
        self, control: SchedulerControl, now: dt.datetime, spawned: list[str], error: BaseException | None
    ) -> None:
        self._notify("cronman_scheduler_tick_done", control=control, now=now, spawned=spawned, error=error)

    def _notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of a notification hook, isolating failures.

        pluggy stops at the first exception; a notifier that raises must
        neither silence the others nor change a job's outcome. Wrapper
        implementations are refused at load (:func:`_refuse_wrappers`).
        """
        for impl in reversed(getattr(self.hook, hook_name).get_hookimpls()):
            try:
                impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception:
                logger.exception("plugin %s failed in %s", impl.plugin_name, hook_name)


def plugin_name(path: str) -> str:
    """A plugin's one name: its module's last part (a package plugin's ``plugin`` module: its package)."""
    return path.removesuffix(".plugin").rsplit(".", 1)[-1]


def _disabled(name: str, path: str, disabled: Iterable[str]) -> bool:
    return name in disabled or path in disabled or path.removesuffix(".plugin") in disabled


def _refuse_wrappers(pm: CronmanPluginManager, module: ModuleType) -> None:
    """Raise ValueError for a wrapper on a notification hook: the core's isolation can't run it."""
    for caller in pm.get_hookcallers(module) or ():
        if caller.name not in NOTIFICATION_HOOKS:
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is module and (impl.wrapper or impl.hookwrapper):
                raise ValueError(
                    f"{caller.name} is a notification hook: wrapper implementations are not "
                    "supported (each implementation is called on its own)"
                )


def _load(
    pm: CronmanPluginManager,
    name: str,
    source: str,
    path: str,
    version: str,
    explicit: bool,
    disabled: frozenset[str],
) -> None:
    if _disabled(name, path, disabled):
        return
    try:
        module = importlib.import_module(path)
    except Exception as exc:
        raise PluginError(
            f"cannot load cronman plugin {name!r} ({source}: {path}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if pm.is_registered(module):
        return
    enabled = getattr(module, "plugin_enabled", None)
    try:
        if not explicit and callable(enabled) and not enabled():
            return
    except SettingError:
        raise  # named as a setting (cronman.E003), not as a plugin
    except CronmanError as exc:  # switched on, but unusable (a missing library, a bad option): its own words
        raise PluginError(str(exc)) from exc
    try:
        pm.register(module, name=name)
        pm.check_pending()
        _refuse_wrappers(pm, module)
    except (pluggy.PluginValidationError, ValueError) as exc:
        if pm.is_registered(module):
            pm.unregister(module)
        raise PluginError(
            f"invalid cronman plugin {name!r} ({source}: {path}): {exc}"
        ) from exc
    version = getattr(module, "__version__", version)
    pm.infos[name] = PluginInfo(name, source, path, str(version), module, pm.plugin_hooks(module))


@dataclass(frozen=True)
class EntryPoint:
    name: str
    value: str
    version: str


def _entry_points() -> list[EntryPoint]:
    """Entry points of group ``cronman``, from one pass over ``sys.path``.

    ``importlib.metadata`` costs ~20 ms to import (email parsing and more) on
    every worker start; reading ``*.dist-info/entry_points.txt`` directly
    costs a directory listing per path entry. The first distribution of a
    name on ``sys.path`` wins, as in ``importlib.metadata``.
    """
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for dirname in sorted(names):
            stem, dot, suffix = dirname.rpartition(".")
            if suffix not in ("dist-info", "egg-info") or not dot:
                continue
            dist, _, version = stem.partition("-")
            key = dist.lower().replace("-", "_").replace(".", "_")
            if key in seen:
                continue
            seen.add(key)
            found.extend(_read_entry_points(os.path.join(entry or ".", dirname), version or "-"))
    return found


def _read_entry_points(info_dir: str, version: str) -> list[EntryPoint]:
    try:
        with open(os.path.join(info_dir, "entry_points.txt"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    section = None
    points = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == ENTRY_POINT_GROUP and "=" in line:
            name, _, value = line.partition("=")
            points.append(EntryPoint(name.strip(), value.strip(), version))
    return points


def build_plugin_manager() -> CronmanPluginManager:
    """Load every plugin in order; raise :class:`PluginError` on the first bad one."""
    pm = CronmanPluginManager()
    disabled = frozenset(conf.get("CRONMAN_DISABLED_PLUGINS"))
    for path in BUILTIN_PLUGINS:
        _load(pm, plugin_name(path), "builtin", path, __version__, False, disabled)
    eps = _entry_points()
    for ep in eps:
        _load(pm, ep.name, "entry point", _module_path(ep.value), ep.version, True, disabled)
    for app_config in apps.get_app_configs():
        app_plugin: str | None = getattr(app_config, "cronman_plugin", None)
        if app_plugin:
            _load(pm, plugin_name(app_plugin), "app", app_plugin, __version__, True, disabled)
    by_name = {ep.name: _module_path(ep.value) for ep in eps}
    for item in conf.get("CRONMAN_PLUGINS"):
        path = by_name.get(item, item)
        _load(pm, item, "setting", path, "-", True, disabled)
    pm.hook.cronman_register_jobs(registry=cron_job_registry)
    return pm


def _module_path(value: str) -> str:
    """``pkg.mod`` from an entry point value ``pkg.mod`` or ``pkg.mod:attr [extra]``."""
    return value.split(":", 1)[0].split("[", 1)[0].strip()


_manager: CronmanPluginManager | None = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> CronmanPluginManager:
    """The process-wide plugin manager, built on first use."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = build_plugin_manager()
    return _manager


def reset_plugin_manager() -> None:
    """Forget the manager (tests, or after changing plugin settings)."""
    global _manager
    with _manager_lock:
        _manager = None
