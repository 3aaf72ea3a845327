"""Cronitor pings from real ``cron_worker run`` processes to a local HTTP server."""

import socket

from tests.plugins.conftest import registered_times


def _configure(project, server, **settings):
    project.configure(
        CRONMAN_CRONITOR_ENABLED=True,
        CRONMAN_CRONITOR_URL=server.url + "/{cronitor_id}/{end_point}",
        **settings,
    )


def _seen(server):
    return [(r.method, r.path, r.query) for r in server.requests]


def test_classic_form_pings_run_then_complete(project, http_server):
    server = http_server()
    _configure(project, server)
    result = project.run("cron_worker", "run", "Monitored")
    assert result.returncode == 0, result.stderr
    assert _seen(server) == [("GET", "/abc12/run", {}), ("GET", "/abc12/complete", {})]


def test_classic_form_pings_fail_with_the_error(project, http_server):
    server = http_server()
    _configure(project, server)
    result = project.run("cron_worker", "run", "Monitored:fail='it broke'")
    assert result.returncode == 1, result.stderr
    assert _seen(server) == [
        ("GET", "/abc12/run", {}),
        ("GET", "/abc12/fail", {"msg": "RuntimeError: it broke"}),
    ]


def test_job_spec_param_overrides_the_class_id(project, http_server):
    server = http_server()
    _configure(project, server)
    result = project.run("cron_worker", "run", "Monitored:cronitor_id=zz99")
    assert result.returncode == 0, result.stderr
    assert [path for _, path, _ in _seen(server)] == ["/zz99/run", "/zz99/complete"]
    # a reserved param: Monitored.run() takes no cronitor_id and never sees it
    assert [mark["fail"] for mark in project.read_marks()] == [""]


def test_optional_run_and_fail_pings_can_be_dropped(project, http_server):
    server = http_server()
    _configure(project, server)
    assert project.run("cron_worker", "run", "MonitoredQuiet:fail=x").returncode == 1
    assert project.run("cron_worker", "run", "MonitoredQuiet").returncode == 0
    assert _seen(server) == [("GET", "/abc12/complete", {})]


def test_telemetry_form_with_an_api_key(project, http_server):
    server = http_server()
    project.configure(
        CRONMAN_CRONITOR_ENABLED=True,
        CRONMAN_CRONITOR_API_KEY="k3y",
        CRONMAN_CRONITOR_TELEMETRY_URL=server.url + "/p/{api_key}/{cronitor_id}",
    )
    assert project.run("cron_worker", "run", "Monitored").returncode == 0
    assert project.run("cron_worker", "run", "Monitored:fail=boom").returncode == 1
    host = socket.gethostname()
    seen = _seen(server)
    assert [(path, q["state"], q["host"]) for _, path, q in seen] == [
        ("/p/k3y/abc12", "run", host),
        ("/p/k3y/abc12", "complete", host),
        ("/p/k3y/abc12", "run", host),
        ("/p/k3y/abc12", "fail", host),
    ]
    series = [q["series"] for _, _, q in seen]
    assert series[0] == series[1] != series[2] == series[3]
    assert seen[3][2]["message"] == "RuntimeError: boom"
    assert "message" not in seen[1][2]


def test_scheduler_id_is_pinged_around_a_tick(project, http_server):
    server = http_server()
    _configure(
        project, server, CRONMAN_CRON_SCHEDULER_CRONITOR_ID="sched1", CRONMAN_JOBS_MODULE=None
    )
    result = project.run("cron_scheduler", "run")
    assert result.returncode == 0, result.stderr
    # A tick that fails pings "fail" with the error.
    script = (
        "import datetime as dt\n"
        "from cronman_core.plugins import get_plugin_manager\n"
        "pm = get_plugin_manager()\n"
        "now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)\n"
        "pm.scheduler_tick(None, now)\n"
        "pm.scheduler_tick_done(None, now, [], RuntimeError('tick broke'))\n"
    )
    result = project.shell(script)
    assert _seen(server) == [
        ("GET", "/sched1/run", {}),
        ("GET", "/sched1/complete", {}),
        ("GET", "/sched1/run", {}),
        ("GET", "/sched1/fail", {"msg": "RuntimeError: tick broke"}),
    ]


def test_disabled_by_default(project, http_server):
    server = http_server()
    project.configure(CRONMAN_CRONITOR_URL=server.url + "/{cronitor_id}/{end_point}")
    assert project.run("cron_worker", "run", "Monitored").returncode == 0
    assert server.requests == []


def test_bad_url_template_is_one_line(project):
    project.configure(CRONMAN_CRONITOR_ENABLED=True, CRONMAN_CRONITOR_URL="http://x/{monitor}")
    result = project.run("cron_worker", "run", "Monitored")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: CRONMAN_CRONITOR_URL 'http://x/{monitor}' is not a template of cronitor_id,"
        " end_point: KeyError('monitor')"
    ]


def test_enabled_and_listed_is_registered_once(settings):
    times = registered_times(settings, "cronman_plugins.cronitor", CRONMAN_CRONITOR_ENABLED=True)
    assert times == 1
