"""The plugin manager: built-ins, entry points, plugin apps, then settings.

Every plugin, built-in or third-party, is loaded by :func:`_load` from a
dotted module path. A module-level ``plugin_enabled()`` function lets a
built-in switch itself on from its own settings (``CRONMAN_CRONITOR_ENABLED``
...); a plugin named in ``CRONMAN_PLUGINS`` or by an entry point is always on.
``CRONMAN_DISABLED_PLUGINS`` blocks a plugin by name or module path.
"""

from __future__ import annotations

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

from cronman_core import __version__, conf, hookspecs
from cronman_core.errors import PluginError

logger = logging.getLogger("cronman.plugins")

PROJECT = "cronman"
ENTRY_POINT_GROUP = "cronman"

#: Built-in plugins, loaded by the same code as third-party ones.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "cronman_plugins.jobs_module",
    "cronman_plugins.pidfile",
    "cronman_plugins.local",
    "cronman_plugins.priority",
    "cronman_plugins.cronitor",
    "cronman_plugins.healthchecks",
    "cronman_plugins.sentry",
    "cronman_plugins.raven_cmd",
    "cronman_plugins.redis.plugin",
    "cronman_plugins.celery",
)


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
    """A pluggy manager that remembers the origin of every plugin."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def plugin_hooks(self, plugin: object) -> list[str]:
        return sorted(caller.name for caller in self.get_hookcallers(plugin) or ())

    @functools.cached_property
    def reserved_params(self) -> frozenset[str]:
        """Job-spec params consumed by plugins (``cronman_reserved_params``)."""
        return frozenset(name for names in self.hook.cronman_reserved_params() for name in names or ())

    def has_impl(self, hook_name: str) -> bool:
        return bool(getattr(self.hook, hook_name).get_hookimpls())

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of a notification hook, isolating failures.

        pluggy stops at the first exception; a notifier that raises must
        neither silence the others nor change a job's outcome.
        """
        for impl in reversed(getattr(self.hook, hook_name).get_hookimpls()):
            try:
                impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception:
                logger.exception("plugin %s failed in %s", impl.plugin_name, hook_name)


def _disabled(name: str, path: str, disabled: Iterable[str]) -> bool:
    return name in disabled or path in disabled


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
    if not explicit and callable(enabled) and not enabled():
        return
    try:
        pm.register(module, name=name)
        pm.check_pending()
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
    from django.apps import apps

    pm = CronmanPluginManager()
    disabled = frozenset(conf.get("CRONMAN_DISABLED_PLUGINS") or ())
    for path in BUILTIN_PLUGINS:
        name = path.removesuffix(".plugin").rsplit(".", 1)[-1]  # a package plugin: its package name
        _load(pm, name, "builtin", path, __version__, False, disabled)
    eps = _entry_points()
    for ep in eps:
        _load(pm, ep.name, "entry point", _module_path(ep.value), ep.version, True, disabled)
    for app_config in apps.get_app_configs():
        app_plugin: str | None = getattr(app_config, "cronman_plugin", None)
        if app_plugin:
            _load(pm, app_config.name, "app", app_plugin, __version__, True, disabled)
    by_name = {ep.name: _module_path(ep.value) for ep in eps}
    for item in conf.get("CRONMAN_PLUGINS") or ():
        path = by_name.get(item, item)
        _load(pm, item, "setting", path, "-", True, disabled)
    from cronman_core.job import cron_job_registry

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
