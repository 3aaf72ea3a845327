"""Sentry errors and Crons check-ins through the real sentry-sdk to a local endpoint."""

import signal
import socket

import pytest

from tests.conftest import wait_for
from tests.plugins.conftest import registered_times


def _schedule(project, *entries):
    """A CRONMAN_JOBS_MODULE in the project holding ``entries``."""
    (project.path / "monitored_schedule.py").write_text(f"CRON_JOBS = {entries!r}\n")
    return "monitored_schedule"


def test_failing_job_sends_its_exception_and_check_ins(project, http_server):
    server = http_server()
    project.configure(
        CRONMAN_SENTRY_ENABLED=True,
        CRONMAN_SENTRY_CONFIG={"dsn": server.dsn},
        CRONMAN_JOBS_MODULE=_schedule(
            project, ("0 4 * * *", "Hello:x"), ("*/10  * * * *", "Monitored")
        ),
        CRONMAN_TIME_ZONE="Europe/Warsaw",
    )
    result = project.run("cron_worker", "run", "Monitored:fail=boom")
    assert result.returncode == 1, result.stderr
    (event,) = server.items_of("event")  # the worker's error log line is not a second event
    (exception,) = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("RuntimeError", "boom")
    tags = event["tags"]
    assert tags["job"] == "Monitored"
    assert tags["job_spec"] == "Monitored:fail=boom"
    assert tags["host"] == socket.gethostname()
    assert len(tags["run_id"]) == 32
    started, finished = server.items_of("check_in")
    assert (started["monitor_slug"], started["status"]) == ("monitored-job", "in_progress")
    assert started["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "*/10 * * * *"},
        "timezone": "Europe/Warsaw",
    }
    assert (finished["status"], finished["check_in_id"]) == ("error", started["check_in_id"])
    assert finished["duration"] >= 0


def test_a_monitor_slug_param_checks_in_and_never_reaches_run(project, http_server):
    server = http_server()
    project.configure(CRONMAN_SENTRY_ENABLED=True, SENTRY_CONFIG={"dsn": server.dsn})
    result = project.run("cron_worker", "run", "Hello:x,sentry_monitor_slug=hello-x")
    assert result.returncode == 0, result.stderr  # Hello.run(what) would refuse a sentry_monitor_slug argument
    started, finished = server.items_of("check_in")
    assert (started["monitor_slug"], finished["status"]) == ("hello-x", "ok")


def test_succeeding_job_checks_in_ok_and_sends_no_event(project, http_server):
    server = http_server()
    project.configure(CRONMAN_SENTRY_ENABLED=True, SENTRY_CONFIG={"dsn": server.dsn})
    result = project.run("cron_worker", "run", "Monitored")
    assert result.returncode == 0, result.stderr
    assert server.items_of("event") == []
    started, finished = server.items_of("check_in")
    assert [started["status"], finished["status"]] == ["in_progress", "ok"]
    assert "monitor_config" not in started  # no schedule entry runs Monitored


def test_killed_job_checks_in_error(project, http_server):
    server = http_server()
    project.configure(CRONMAN_SENTRY_ENABLED=True, CRONMAN_SENTRY_CONFIG={"dsn": server.dsn})
    worker = project.popen("cron_worker", "run", "Monitored:sleep=60")
    wait_for(project.read_marks)
    wait_for(lambda: server.items_of("check_in"))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 128 + signal.SIGTERM
    started, finished = server.items_of("check_in")
    assert [started["status"], finished["status"]] == ["in_progress", "error"]
    assert finished["check_in_id"] == started["check_in_id"]


def test_command_errors_and_legacy_raven_config(project, http_server):
    server = http_server()
    project.configure(
        CRONMAN_SENTRY_ENABLED=True,
        RAVEN_MANAGEMENT_COMMAND_CONFIG={
            "dsn": server.dsn,
            "release": "r1",
            "include_paths": ["app"],
            "string_max_length": 200,
        },
    )
    script = (
        "from cronman_core.plugins import get_plugin_manager\n"
        "try:\n"
        "    raise ValueError('tick broke')\n"
        "except ValueError as exc:\n"
        "    get_plugin_manager().report_error(exc, {'command': 'cron_scheduler'})\n"
    )
    result = project.shell(script)
    warnings = [line for line in result.stderr.splitlines() if "sentry-sdk does not know" in line]
    assert warnings == [
        "RAVEN_MANAGEMENT_COMMAND_CONFIG: ignoring options sentry-sdk does not know"
        " (raven settings?): include_paths, string_max_length"
    ]
    (event,) = server.items_of("event")
    assert event["exception"]["values"][0]["type"] == "ValueError"
    assert event["tags"] == {"command": "cron_scheduler"}
    assert event["release"] == "r1"


def test_clients_are_imported_on_first_use_only(project):
    project.configure(
        CRONMAN_SENTRY_ENABLED=True,
        CRONMAN_CRONITOR_ENABLED=True,
        CRONMAN_HEALTHCHECKS_ENABLED=True,
        CRONMAN_SENTRY_CONFIG={"dsn": "http://public@127.0.0.1:9/1"},
    )
    script = (
        "import sys\n"
        "from cronman_core.plugins import get_plugin_manager\n"
        "pm = get_plugin_manager()\n"
        "print(sorted(n for n in ('cronitor', 'healthchecks', 'sentry') if pm.has_plugin(n)),"
        " 'sentry_sdk' in sys.modules, 'requests' in sys.modules)\n"
    )
    result = project.shell(script)
    # Enabled, yet sentry-sdk and requests wait for the first report / ping.
    assert result.stdout.splitlines()[-1] == "['cronitor', 'healthchecks', 'sentry'] False False"


@pytest.mark.parametrize(
    ("module", "switch"),
    [
        ("cronman_plugins.sentry", {"CRONMAN_SENTRY_ENABLED": True}),
        ("cronman_plugins.raven_cmd", {"CRONMAN_RAVEN_CMD": "/usr/bin/raven"}),
    ],
)
def test_enabled_and_listed_is_registered_once(settings, module, switch):
    assert registered_times(settings, module, **switch) == 1


# -- raven-cmd -------------------------------------------------------------------


def test_a_failing_runs_output_goes_with_its_event_as_an_attachment(project, http_server, tmp_path):
    import subprocess

    server = http_server()
    project.configure(CRONMAN_SENTRY_ENABLED=True, CRONMAN_SENTRY_CONFIG={"dsn": server.dsn})
    with open(tmp_path / "run.log", "w") as log:
        worker = project.popen("cron_worker", "run", "Monitored:fail=boom,say=last-words", stdout=log,
                               stderr=subprocess.STDOUT)
        assert worker.wait(timeout=60) == 1
    attachments = [(header, body) for header, body in server.envelope_items() if header.get("type") == "attachment"]
    assert [header["filename"] for header, _body in attachments] == ["output.txt"]
    assert b"last-words\n" in attachments[0][1]["raw"]
