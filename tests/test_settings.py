"""Bad settings: ``manage.py check`` names each (cronman.E003), and the command they broke gives one line.

Each case of the Hostile input report, through ``manage.py check`` and
through the command it broke: a traceback, a failing tick, every run marked
missed or a failing spawn. A tick refused for a bad setting claims nothing,
so once the setting is fixed the next tick runs the fire it refused.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from cronman_core import conf
from cronman_core.errors import SettingError
from cronman_core.plugins import get_plugin_manager
from cronman_core.testing import CronmanProject
from tests.conftest import wait_for
from tests.test_scheduler_processes import set_watermark, use_schedule

TICK = ("cron_scheduler", "run")

CASES = [
    ("CRONMAN_DISABLED_PLUGINS", 5, ("cron_worker", "run", "Noop"),
     "CRONMAN_DISABLED_PLUGINS must be a list or tuple of non-empty strings (not one string), got 5"),
    ("CRONMAN_PLUGINS", "cronman_plugins.sentry", ("cron_worker", "status"),
     "CRONMAN_PLUGINS must be a list or tuple of non-empty strings (not one string), got 'cronman_plugins.sentry'"),
    ("CRONMAN_DATA_DIR", 5, ("cron_worker", "status"),
     "CRONMAN_DATA_DIR must be a path (str or pathlib.Path) or None, got 5 "
     "(expected str, bytes or os.PathLike object, not int)"),
    ("CRONMAN_MISFIRE_GRACE", "abc", TICK, "CRONMAN_MISFIRE_GRACE must be a number of seconds at least 0, got 'abc'"),
    ("CRONMAN_MISFIRE_GRACE", None, TICK, "CRONMAN_MISFIRE_GRACE must be a number of seconds at least 0, got None"),
    ("CRONMAN_MISFIRE_GRACE", -5, TICK, "CRONMAN_MISFIRE_GRACE must be a number of seconds at least 0, got -5"),
    ("CRONMAN_LOG_KEEP", "x", TICK, "CRONMAN_LOG_KEEP must be a whole number at least 1, got 'x'"),
    ("CRONMAN_LOG_MAX_BYTES", -1, TICK, "CRONMAN_LOG_MAX_BYTES must be a whole number at least 1024, got -1"),
    ("CRONMAN_REDIS_PORT", 70000, ("cron_worker", "status"),
     "CRONMAN_REDIS_PORT must be a whole number from 1 to 65535, got 70000"),
    ("CRONMAN_SENTRY_ENABLED", "False", ("cron_worker", "run", "Noop"),
     "CRONMAN_SENTRY_ENABLED must be True or False, got 'False'"),
]


@pytest.mark.parametrize(("name", "value", "command", "message"), CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_bad_setting_is_a_check_error_and_one_line(
    project: CronmanProject, name: str, value: Any, command: tuple[str, ...], message: str
) -> None:
    use_schedule(project, ("* * * * *", "Echo:fixed"), **{name: value})
    set_watermark(project, time.time() - 120)  # this minute's fire is due

    checked = project.run("check")
    assert checked.returncode == 1, checked.stderr
    assert f"(cronman.E003) {message}" in checked.stderr
    assert f"HINT: Set {name} to " in checked.stderr
    assert "Traceback" not in checked.stderr

    result = project.run(*command)
    assert (result.returncode, result.stderr.splitlines(), result.stdout) == (2, [f"Error: {message}"], "")
    assert not list((project.data_dir / "claims").glob("*.claim"))
    assert project.read_marks() == []

    if command == TICK:  # fixed, the next tick runs the fire the refused one left unclaimed
        use_schedule(project, ("* * * * *", "Echo:fixed"))
        fixed = project.run(*TICK)
        assert fixed.returncode == 0, fixed.stderr
        assert [m["args"] for m in wait_for(project.read_marks)] == [["fixed"]]


def test_every_declared_default_passes_its_own_check() -> None:
    """Or a project that sets a setting to its documented default would fail ``check``."""
    get_plugin_manager()
    declared = conf.declared()
    assert len(declared) > 40  # the core's and every built-in plugin's
    for setting in declared:
        assert setting.kind.convert(setting.default) == setting.default, setting.name


def test_secrets_never_appear_in_the_message(settings) -> None:
    from cronman_plugins.redis import client  # noqa: F401  (declares the Redis settings)

    settings.CRONMAN_REDIS_PASSWORD = ["hunter2-secret"]
    with pytest.raises(SettingError) as info:
        conf.get("CRONMAN_REDIS_PASSWORD")
    assert str(info.value) == "CRONMAN_REDIS_PASSWORD must be a non-empty string or None, got a list"
    problems = dict(conf.problems())
    assert not any("hunter2" in message or "hunter2" in hint for message, hint in problems.items())


def test_a_string_flag_is_refused_not_taken_as_true(settings) -> None:
    settings.CRONMAN_DEBUG = "False"
    with pytest.raises(SettingError, match="CRONMAN_DEBUG must be True or False, got 'False'"):
        conf.get("CRONMAN_DEBUG")
    assert conf.debug() is False  # read while reporting another error: never raises


def test_good_values_are_normalised(settings) -> None:
    settings.CRONMAN_MISFIRE_GRACE = 60
    settings.CRONMAN_PLUGINS = ["a", "b"]
    assert conf.get("CRONMAN_MISFIRE_GRACE") == 60.0 and isinstance(conf.get("CRONMAN_MISFIRE_GRACE"), float)
    assert conf.get("CRONMAN_PLUGINS") == ("a", "b")
