"""Loading plugins: entry points, CRONMAN_PLUGINS, broken ones, disabling, isolation."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def events(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


@pytest.fixture
def plugin_log(project):
    path = project.path / "plugin.log"
    project.extra_env["CRONMAN_TESTPLUGIN_LOG"] = str(path)
    return path


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_entry_point_plugin_is_called_by_a_real_worker(project, plugin_log):
    result = project.run("cron_worker", "run", "Echo:x")
    assert result.returncode == 0, result.stderr
    assert events(plugin_log) == ["started", "succeeded"]


def test_entry_point_plugin_sees_failures(project, plugin_log):
    result = project.run("cron_worker", "run", "Fail")
    assert result.returncode == 1
    assert events(plugin_log) == ["started", "failed"]


def test_same_module_through_the_setting(project, plugin_log):
    project.configure(
        CRONMAN_DISABLED_PLUGINS=["testplugin"], CRONMAN_PLUGINS=["cronman_testplugin"]
    )
    assert project.run("cron_worker", "run", "Echo").returncode == 0
    assert events(plugin_log) == ["started", "succeeded"]
    listing = json.loads(project.run("cron_plugins", "--json").stdout)
    sources = {row["name"]: row["source"] for row in listing}
    assert sources["cronman_testplugin"] == "setting"
    assert "testplugin" not in sources


def test_listed_twice_registers_once(project, plugin_log):
    project.configure(CRONMAN_PLUGINS=["cronman_testplugin", "testplugin"])
    assert project.run("cron_worker", "run", "Echo").returncode == 0
    assert events(plugin_log) == ["started", "succeeded"]
    listing = json.loads(project.run("cron_plugins", "--json").stdout)
    assert [row["path"] for row in listing].count("cronman_testplugin") == 1


def test_disabled_plugin_is_not_called(project, plugin_log):
    project.configure(CRONMAN_DISABLED_PLUGINS=["testplugin"])
    assert project.run("cron_worker", "run", "Echo").returncode == 0
    assert events(plugin_log) == []


def test_broken_plugin_stops_the_command_with_one_line(project, plugin_log):
    project.configure(CRONMAN_PLUGINS=["cronman_testplugin.broken"])
    result = project.run("cron_worker", "run", "Echo")
    line = assert_one_line_error(
        result, "cronman_testplugin.broken", "setting", "ImportError: this plugin is broken on purpose"
    )
    assert line.startswith("Error: cannot load cronman plugin")
    assert events(plugin_log) == []


def test_unknown_hook_stops_the_command_with_one_line(project):
    project.configure(CRONMAN_PLUGINS=["cronman_testplugin.badhook"])
    result = project.run("cron_plugins")
    assert_one_line_error(result, "cronman_testplugin.badhook", "cronman_job_strated")


def test_missing_plugin_module(project):
    project.configure(CRONMAN_PLUGINS=["no_such_plugin_module"])
    result = project.run("cron_worker", "info")
    assert_one_line_error(result, "no_such_plugin_module", "ModuleNotFoundError")


def test_raising_notifier_never_changes_the_outcome(project, plugin_log):
    project.configure(CRONMAN_PLUGINS=["cronman_testplugin.raising"])
    result = project.run("cron_worker", "run", "Echo:ok")
    assert result.returncode == 0
    assert "notifier outage" in result.stderr
    assert events(plugin_log) == ["started", "succeeded"]


def test_cron_plugins_lists_source_version_and_hooks(project):
    result = project.run("cron_plugins")
    assert result.returncode == 0
    assert "testplugin" in result.stdout
    assert "entry point" in result.stdout
    assert "1.2.3" in result.stdout
    assert "cronman_job_started" in result.stdout
    assert "jobs_module" in result.stdout and "builtin" in result.stdout


def test_wrapper_on_a_notification_hook_is_refused_with_one_line(project):
    project.configure(CRONMAN_PLUGINS=["cronman_testplugin.wrapper"])
    result = project.run("cron_worker", "run", "Echo")
    assert_one_line_error(
        result, "invalid cronman plugin", "cronman_testplugin.wrapper", "cronman_job_started",
        "wrapper implementations are not supported",
    )


def test_one_name_disables_a_plugin_on_every_load_path(project):
    """The redis plugin is on through its app and django-cronman's setting; "redis" blocks both."""
    from tests.settings import INSTALLED_APPS

    apps = [*INSTALLED_APPS, "cronman_plugins.redis"]
    project.configure(INSTALLED_APPS=apps, CRONMAN_REMOTE_MANAGER_ENABLED=True)
    listing = json.loads(project.run("cron_plugins", "--json").stdout)
    assert [(row["name"], row["source"]) for row in listing if "redis" in row["path"]] == [("redis", "builtin")]
    for disabled in ("redis", "cronman_plugins.redis"):
        project.configure(INSTALLED_APPS=apps, CRONMAN_REMOTE_MANAGER_ENABLED=True,
                          CRONMAN_DISABLED_PLUGINS=[disabled])
        listing = json.loads(project.run("cron_plugins", "--json").stdout)
        assert [row["name"] for row in listing if "redis" in row["path"]] == []
