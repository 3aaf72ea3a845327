"""healthchecks.io pings from real ``cron_worker run`` processes to a local HTTP server."""

import uuid

from cronman_plugins import healthchecks
from tests.plugins.conftest import registered_times

CHECK = "5bd5e4c6-4c36-4b5a-9f3c-6b5bb1a0c0de"


def _configure(project, server, **settings):
    project.configure(
        CRONMAN_HEALTHCHECKS_ENABLED=True, CRONMAN_HEALTHCHECKS_URL=server.url + "/", **settings
    )


def _rids(server):
    rids = {r.query["rid"] for r in server.requests}
    assert len(rids) == 1, rids
    rid = rids.pop()
    assert str(uuid.UUID(rid)) == rid
    return rid


def test_start_then_success_with_one_rid(project, http_server):
    server = http_server()
    _configure(project, server)
    result = project.run("cron_worker", "run", "Monitored")
    assert result.returncode == 0, result.stderr
    assert [(r.method, r.path, r.body) for r in server.requests] == [
        ("GET", f"/{CHECK}/start", b""),
        ("GET", f"/{CHECK}", b""),
    ]
    _rids(server)


def test_fail_posts_the_error_text(project, http_server):
    server = http_server()
    _configure(project, server)
    result = project.run("cron_worker", "run", "Monitored:fail='disk full'")
    assert result.returncode == 1, result.stderr
    assert [(r.method, r.path, r.body) for r in server.requests] == [
        ("GET", f"/{CHECK}/start", b""),
        ("POST", f"/{CHECK}/fail", b"RuntimeError: disk full"),
    ]
    _rids(server)


def test_slug_with_the_project_ping_key(project, http_server):
    server = http_server()
    _configure(project, server, CRONMAN_HEALTHCHECKS_PING_KEY="pk-123")
    assert project.run("cron_worker", "run", "MonitoredQuiet").returncode == 0
    assert [r.path for r in server.requests] == [
        "/pk-123/monitored-quiet/start",
        "/pk-123/monitored-quiet",
    ]
    _rids(server)


def test_a_job_spec_param_overrides_the_check_and_never_reaches_run(project, http_server):
    server = http_server()
    _configure(project, server, CRONMAN_HEALTHCHECKS_PING_KEY="pk-123")
    result = project.run("cron_worker", "run", "Hello:x,healthchecks_slug=hello-x")
    assert result.returncode == 0, result.stderr  # Hello.run(what) would refuse a healthchecks_slug argument
    other = "0c7f7bd4-1d1a-4f4e-9d89-5d8ab4f5b2a1"
    assert project.run("cron_worker", "run", f"Monitored:healthchecks_id={other}").returncode == 0
    assert [r.path for r in server.requests] == [
        "/pk-123/hello-x/start", "/pk-123/hello-x", f"/{other}/start", f"/{other}",
    ]


def test_slug_without_a_ping_key_sends_nothing(project, http_server):
    server = http_server()
    _configure(project, server)
    assert project.run("cron_worker", "run", "MonitoredQuiet").returncode == 0
    assert server.requests == []


def test_fail_body_is_capped(settings, http_server):
    server = http_server()
    settings.CRONMAN_HEALTHCHECKS_URL = server.url
    assert healthchecks.ping(CHECK, "fail", uuid.uuid4().hex, "aé" * 10_000)
    body = server.requests[0].body
    assert healthchecks.BODY_LIMIT - 3 < len(body) <= healthchecks.BODY_LIMIT
    assert body.decode().startswith("aéaé")


def test_bad_base_url_is_one_line(project):
    project.configure(CRONMAN_HEALTHCHECKS_ENABLED=True, CRONMAN_HEALTHCHECKS_URL="hc-ping.com")
    result = project.run("cron_worker", "run", "Monitored")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: CRONMAN_HEALTHCHECKS_URL must be an http(s) URL, got 'hc-ping.com'"
    ]


def test_enabled_and_listed_is_registered_once(settings):
    times = registered_times(
        settings, "cronman_plugins.healthchecks", CRONMAN_HEALTHCHECKS_ENABLED=True
    )
    assert times == 1


def test_fail_body_ends_with_the_runs_output(project, http_server, tmp_path):
    import subprocess

    server = http_server()
    _configure(project, server)
    with open(tmp_path / "run.log", "w") as log:  # a file, as a spawned worker's output is
        worker = project.popen("cron_worker", "run", "Monitored:fail='disk full',say=last-words", stdout=log,
                               stderr=subprocess.STDOUT)
        assert worker.wait(timeout=60) == 1
    (fail,) = [r for r in server.requests if r.path == f"/{CHECK}/fail"]
    assert fail.body.startswith(b"RuntimeError: disk full\n\n--- the end of its output ---\n")
    assert b"last-words\n" in fail.body


def test_fail_body_keeps_the_error_and_the_end_of_a_long_output_within_the_limit():
    body = healthchecks.fail_body("RuntimeError: boom", "é" * 20_000 + "the end")
    assert len(body) <= healthchecks.BODY_LIMIT
    assert body.startswith(b"RuntimeError: boom\n\n--- the end of its output ---\n") and body.endswith(b"the end")
    body.decode()  # no character cut in two
