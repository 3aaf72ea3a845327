"""The core reads bottom-up: imports point one way through its layers, with no cycle.

Every import counts, type-only (``if TYPE_CHECKING:``) and function-local
ones too: a type-only import upwards is still a contract that depends on an
engine. A new module must be given a layer here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import Import, find_cycle, imports_of, package_modules

CORE = Path(__file__).resolve().parent.parent / "cronman_core"

#: Bottom-up: a module may import its own layer (without a cycle) and the ones below.
LAYERS: dict[str, tuple[str, ...]] = {
    "leaves": (
        "cronman_core", "cronman_core.errors", "cronman_core.taxonomies", "cronman_core.utils",
        "cronman_core.conf", "cronman_core.cronexpr", "cronman_core.files", "cronman_core.records",
        "cronman_core.datadir", "cronman_core.process", "cronman_core.runproof", "cronman_core.output",
    ),
    "contracts and data": (
        "cronman_core.jobspec", "cronman_core.job", "cronman_core.locks", "cronman_core.spawners",
        "cronman_core.switch", "cronman_core.schedule", "cronman_core.info", "cronman_core.policies",
        "cronman_core.pauses", "cronman_core.monitors",
    ),
    "plugin system": ("cronman_core.hookspecs", "cronman_core.plugins", "cronman_core.pluginapp"),
    "engines": (
        "cronman_core.worker", "cronman_core.spawn", "cronman_core.control", "cronman_core.scheduler",
        "cronman_core.scheduler.decide", "cronman_core.scheduler.state", "cronman_core.scheduler.tick",
        "cronman_core.scheduler.daemon",
    ),
    "entry points": (
        "cronman_core.checks", "cronman_core.apps", "cronman_core.testing", "cronman_core.management",
        "cronman_core.management.base", "cronman_core.management.commands",
        "cronman_core.management.commands.cron_plugins", "cronman_core.management.commands.cron_scheduler",
        "cronman_core.management.commands.cron_monitors", "cronman_core.pytest_plugin",
        "cronman_core.management.commands.cron_worker",
    ),
}
LEVEL = {module: level for level, modules in enumerate(LAYERS.values()) for module in modules}
NAMES = list(LAYERS)
MODULES = package_modules(CORE)


def core_imports() -> list[Import]:
    known = set(MODULES)
    return [
        found
        for name, path in MODULES.items()
        for found in imports_of(name, path, known)
    ]


def test_every_core_module_has_a_layer():
    assert sorted(set(MODULES) - set(LEVEL)) == []
    assert sorted(set(LEVEL) - set(MODULES)) == []


def test_imports_point_down_the_layers():
    upward = [
        f"{i.module} ({NAMES[LEVEL[i.module]]}) imports {i.target} ({NAMES[LEVEL[i.target]]}), line {i.line}"
        for i in core_imports()
        if i.target in LEVEL and LEVEL[i.target] > LEVEL[i.module]
    ]
    assert upward == []


def test_no_import_cycle():
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for found in core_imports():
        if found.target in MODULES and found.target != found.module:
            graph[found.module].add(found.target)
    assert find_cycle(graph) is None


def test_a_local_import_says_why():
    """A function-local import only where it saves start-up time (or Django wants it), with a comment."""
    silent = []
    for found in core_imports():
        if not found.local or found.type_only:
            continue
        lines = MODULES[found.module].read_text().splitlines()
        here, above = lines[found.line - 1], lines[found.line - 2].strip()
        if "#" not in here and not above.startswith("#"):
            silent.append(f"{found.module}:{found.line}: {here.strip()}")
    assert silent == []


def test_core_imports_no_plugin_or_client_library():
    forbidden = ("cronman_plugins", "requests", "redis", "sentry_sdk", "celery")
    offenders = [
        f"{found.module}: {found.target}"
        for found in core_imports()
        if found.target.split(".")[0] in forbidden
    ]
    assert offenders == []


def test_find_cycle_finds_one():
    """The cycle test can fail: a two-module circle and a longer one are found."""
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("code, expected", [
    ("from cronman_core import conf\n", [("cronman_core.conf", False, False)]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cronman_core.job import JobRun\n",
     [("typing", False, False), ("cronman_core.job", False, True)]),
    ("def f():\n    from cronman_core import __version__\n", [("cronman_core", True, False)]),
])
def test_imports_of_sees_every_kind(tmp_path, code, expected):
    path = tmp_path / "mod.py"
    path.write_text(code)
    known = {"cronman_core", "cronman_core.conf", "cronman_core.job"}
    found = [(i.target, i.local, i.type_only) for i in imports_of("cronman_core.mod", path, known)]
    assert found == expected
