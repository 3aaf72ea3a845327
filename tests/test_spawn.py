"""``cronman_core.spawn``: the worker command, for the same project, without a shell."""

import sys

import pytest

from cronman_core.errors import UsageError
from cronman_core.spawn import build_worker_command
from cronman_core.spawners import ScheduledFire
from tests.testapp.cron_jobs import Echo


def test_build_worker_command_runs_the_same_project_without_a_shell(settings):
    command = build_worker_command('Echo:"a b",k=$(id)', resumed=True)
    assert command.argv[0] == sys.executable
    assert command.argv[-3:] == ["cron_worker", "run", 'Echo:"a b",k=$(id)']
    assert command.env["DJANGO_SETTINGS_MODULE"] == settings.SETTINGS_MODULE
    assert command.env["CRON_PROCESS_RESUMED"] == "1"
    assert command.job_class is Echo
    assert "CRON_PROCESS_RESUMED" not in build_worker_command("Echo").env


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("NoSuchJob", "unknown cron job"), ("Hello:a,b,c", "do not fit"), ("Echo:", "empty value")],
)
def test_build_worker_command_refuses_bad_specs(spec, fragment):
    with pytest.raises(UsageError, match=fragment):
        build_worker_command(spec)


def test_a_requested_runs_environment_reaches_its_worker_only():
    assert build_worker_command("Echo", env={"REQUEST_MARK": "7"}).env["REQUEST_MARK"] == "7"
    assert "REQUEST_MARK" not in build_worker_command("Echo").env


@pytest.mark.parametrize("text", ["0", "[1, 2]", '"x"', "null", "{}", '{"first": "a", "count": 1}', "{", ""])
def test_a_scheduled_fire_that_is_not_one_is_none(text):
    # found by tests/fuzz/atheris_fuzz.py: a JSON value that is no object raised AttributeError in every reader
    assert ScheduledFire.decode(text) is None


def test_a_scheduled_fire_round_trips():
    fire = ScheduledFire(60, 2, "fire-x-60", 300.5, 120)
    assert ScheduledFire.decode(fire.encode()) == fire
