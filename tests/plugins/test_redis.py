"""The Redis plugin against a private redis-server: lock contract, two scheduler hosts, remote control."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronman_core.plugins import build_plugin_manager
from cronman_core.testing import CronmanProject, LockBackendContract
from cronman_plugins.redis.locks import RedisLockBackend
from tests.conftest import wait_for
from tests.plugins.conftest import registered_times
from tests.support import cluster
from tests.support.cluster import NEVER, started_fires
from tests.support.redis_server import RedisServer, free_port, running_redis, wait_gone

pytestmark = pytest.mark.redis



@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def make_host(
    path: Path, server_settings: dict[str, Any], name: str, jobs: tuple[tuple[str, str], ...] = NEVER, **extra: Any
) -> CronmanProject:
    """A project posing as host ``name``: its own data dir and schedule, the shared Redis."""
    return cluster.make_host(path, name, ["cronman_plugins.redis"], jobs, **server_settings, **extra)


def use_server(settings: Any, server_settings: dict[str, Any]) -> None:
    for name, value in server_settings.items():
        setattr(settings, name, value)


# -- the lock backend in this process -----------------------------------------------------


class TestRedisContract(LockBackendContract):
    @pytest.fixture
    def lock_backend(self, redis_server: RedisServer, settings: Any) -> RedisLockBackend:
        use_server(settings, redis_server.settings())
        return RedisLockBackend()

    def corrupt_record(self, backend: RedisLockBackend) -> None:
        backend.redis.hset(backend.records_key, "truncated", '{"key": "Job", "pid": 12')


def test_lock_is_renewed_while_held_and_released_only_by_its_owner(redis_server: RedisServer, settings: Any) -> None:
    use_server(settings, redis_server.settings())
    backend = RedisLockBackend(ttl=0.6)
    first = backend.acquire("Job", LockBackendContract.make_record("Job"))
    assert first is not None
    time.sleep(3 * backend.ttl)  # outlive the TTL thrice: only renewal keeps the lock
    assert backend.is_locked("Job")
    # The lock expires under the first owner (simulated): another worker takes it ...
    backend.redis.delete(backend.lock_key("Job"))
    second = backend.acquire("Job", LockBackendContract.make_record("Job"))
    assert second is not None
    # ... and the late first owner's release cannot free it (compare-and-delete).
    first.release()
    assert backend.is_locked("Job")
    second.release()
    assert not backend.is_locked("Job")
    assert backend.records() == []


def test_switched_on_by_django_cronman_setting_and_registered_once(settings: Any) -> None:
    assert registered_times(settings, "cronman_plugins.redis.plugin", CRONMAN_REMOTE_MANAGER_ENABLED=True) == 1
    pm = build_plugin_manager()
    assert "redis" in pm.infos
    # Remote control alone leaves pidfile the lock backend.
    assert type(pm.hook.cronman_lock_backend(data_dir=Path(settings.CRONMAN_DATA_DIR))).__name__ == "PidfileBackend"


def test_redis_locks_setting_makes_it_the_lock_backend(redis_server: RedisServer, settings: Any) -> None:
    use_server(settings, redis_server.settings(CRONMAN_REDIS_LOCKS=True))
    settings.CRONMAN_PLUGINS = []
    pm = build_plugin_manager()
    assert isinstance(pm.hook.cronman_lock_backend(data_dir=Path(settings.CRONMAN_DATA_DIR)), RedisLockBackend)


@pytest.mark.parametrize(
    ("chosen", "redis_locks", "expected"),
    [("redis", False, "RedisLockBackend"), ("pidfile", True, "PidfileBackend"), (None, False, "PidfileBackend")],
)
def test_lock_backend_setting_chooses_the_backend_and_redis_locks_is_its_alias(
    redis_server: RedisServer, settings: Any, chosen: str | None, redis_locks: bool, expected: str
) -> None:
    use_server(settings, redis_server.settings(CRONMAN_LOCK_BACKEND=chosen, CRONMAN_REDIS_LOCKS=redis_locks))
    settings.CRONMAN_PLUGINS = []
    assert type(build_plugin_manager().lock_backend()).__name__ == expected


def test_a_lock_backend_no_plugin_provides_is_one_line(settings: Any) -> None:
    from cronman_core.errors import UsageError

    settings.CRONMAN_LOCK_BACKEND = "etcd"
    with pytest.raises(UsageError, match=r"^no lock backend: CRONMAN_LOCK_BACKEND = 'etcd' names no active plugin"):
        build_plugin_manager().lock_backend()


# -- real schedulers and workers ------------------------------------------------------------


def test_two_hosts_fire_each_slot_once(tmp_path: Path, redis_server: RedisServer) -> None:
    for round_ in range(3):
        shared = redis_server.settings(CRONMAN_REDIS_LOCKS=True)
        spec = f"Echo:round{round_}"
        hosts = [
            make_host(tmp_path / f"round{round_}", shared, name, jobs=(("* * * * *", spec),))
            for name in ("host-a", "host-b")
        ]
        ticks = [host.popen("cron_scheduler", "run") for host in hosts]
        outputs = [tick.communicate(timeout=60) for tick in ticks]
        assert [tick.returncode for tick in ticks] == [0, 0], outputs
        fires = [fire for _out, err in outputs for fire in started_fires(err, spec)]
        assert fires and len(fires) == len(set(fires)), outputs
        wait_for(lambda: sum(len(host.read_marks()) for host in hosts) >= len(fires), timeout=60)  # noqa: B023
        assert sum(len(host.read_marks()) for host in hosts) == len(fires)


def test_sigkilled_worker_frees_the_cluster_lock_after_the_ttl(tmp_path: Path, redis_server: RedisServer) -> None:
    shared = redis_server.settings(CRONMAN_REDIS_LOCKS=True, CRONMAN_REDIS_LOCK_TTL=3)
    host = make_host(tmp_path, shared, "host-a")
    lock_key = shared["CRONMAN_REDIS_PREFIX"] + "cronman:lock:Sleep"
    worker = host.popen("cron_worker", "run", "Sleep:60,tag=first")
    wait_for(lambda: any(m.get("event") == "start" for m in host.read_marks()), timeout=60)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # Unlike a flock, the cluster lock outlives its holder until the TTL runs out.
    assert redis_server.client().exists(lock_key)
    wait_gone(redis_server, lock_key)
    result = host.run("cron_worker", "run", "Sleep:0,tag=second")
    assert result.returncode == 0, result.stderr
    assert [m["tag"] for m in host.read_marks() if m.get("event") == "end"] == ["second"]
    status = json.loads(host.run("cron_worker", "status", "--json").stdout)
    assert [(w["status"], w["pid"], w["host"]) for w in status["workers"]] == [("DEAD", worker.pid, "host-a")]


def test_a_run_on_another_host_is_asked_to_stop_and_stops_itself(tmp_path: Path, redis_server: RedisServer) -> None:
    """host-b never signals host-a's process: the worker learns the request at its lock renewal."""
    shared = redis_server.settings(CRONMAN_REDIS_LOCKS=True, CRONMAN_REDIS_LOCK_TTL=1.5)
    host_a = make_host(tmp_path, shared, "host-a")
    host_b = make_host(tmp_path, shared, "host-b")
    worker = host_a.popen("cron_worker", "run", "Sleep:60,tag=a", start_new_session=True)
    try:
        wait_for(lambda: any(m.get("event") == "start" for m in host_a.read_marks()), timeout=60)
        status = json.loads(host_b.run("cron_worker", "status", "--json").stdout)
        assert [(w["status"], w["pid"], w["host"]) for w in status["workers"]] == [("ALIVE", worker.pid, "host-a")]
        skipped = host_b.run("cron_worker", "run", "Sleep:0,tag=b")
        assert skipped.returncode == 0 and "is held by another worker" in skipped.stderr
        by_pid = host_b.run("cron_worker", "kill", str(worker.pid))  # a PID names a process of this host only
        assert by_pid.returncode == 2 and worker.poll() is None
        killed = host_b.run("cron_worker", "kill", "Sleep", "--timeout", "20")
        assert killed.returncode == 0, killed.stderr
        assert [(r.split("\t")[0], r.split("\t")[2]) for r in killed.stdout.splitlines()[:-1]] == [("TERMED", "host-a")]
        assert worker.wait(timeout=30) == 128 + signal.SIGTERM
        _out, err = worker.communicate()
        assert "stop requested" in err and "killed by signal 15" in err
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_overlap_replace_and_wait_across_hosts_on_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    shared = redis_server.settings(CRONMAN_REDIS_LOCKS=True, CRONMAN_REDIS_LOCK_TTL=1.5, CRONMAN_KILL_GRACE=1.0)
    host_a = make_host(tmp_path, shared, "host-a")
    host_b = make_host(tmp_path, shared, "host-b")
    holder = host_a.popen("cron_worker", "run", "Sleep:60,tag=old", start_new_session=True)
    try:
        wait_for(lambda: any(m.get("tag") == "old" for m in host_a.read_marks()), timeout=60)
        replace = {"CRONMAN_RUN_OPTIONS": json.dumps({"overlap": "replace"})}
        replaced = host_b.run("cron_worker", "run", "Sleep:2,tag=new", env=replace, timeout=60)
        assert replaced.returncode == 0, replaced.stderr
        assert holder.wait(timeout=30) == 128 + signal.SIGTERM
        assert any(m.get("tag") == "new" and m.get("event") == "end" for m in host_b.read_marks())
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    first = host_a.popen("cron_worker", "run", "Sleep:2,tag=first")
    wait_for(lambda: any(m.get("tag") == "first" for m in host_a.read_marks()), timeout=60)
    wait = {"CRONMAN_RUN_OPTIONS": json.dumps({"overlap": "wait", "overlap_wait": 30})}
    waited = host_b.run("cron_worker", "run", "Sleep:0,tag=second", env=wait, timeout=60)
    assert waited.returncode == 0 and first.wait(timeout=30) == 0
    # it ran (a skip marks nothing), and only once the first had ended: the lock allows one at a time
    assert any(m.get("tag") == "first" and m.get("event") == "end" for m in host_a.read_marks())
    assert any(m.get("tag") == "second" and m.get("event") == "start" for m in host_b.read_marks())


def test_suspend_leaves_other_hosts_resumable_records(tmp_path: Path, redis_server: RedisServer) -> None:
    shared = redis_server.settings(CRONMAN_REDIS_LOCKS=True)
    host_a = make_host(tmp_path, shared, "host-a")
    host_b = make_host(tmp_path, shared, "host-b")
    worker = host_b.popen("cron_worker", "run", "Sleep:60,tag=b")
    wait_for(lambda: any(m.get("tag") == "b" for m in host_b.read_marks()), timeout=60)
    assert host_b.run("cron_worker", "kill", "Sleep").returncode == 0
    worker.wait(timeout=30)
    # host-a suspends (as a remote disable does): host-b's killed run must stay resumable.
    assert host_a.run("cron_worker", "suspend").returncode == 0
    status = json.loads(host_a.run("cron_worker", "status", "--json").stdout)
    assert [(w["status"], w["host"], w["killed"]) for w in status["workers"]] == [("DEAD", "host-b", True)]


# -- remote control -------------------------------------------------------------------------


def remote(host: CronmanProject, *args: str) -> tuple[int, list[str], str]:
    result = host.run("cron_remote_manager", *args)
    return result.returncode, result.stdout.splitlines(), result.stderr


def test_remote_disable_enable_get_status_and_wait(tmp_path: Path, redis_server: RedisServer) -> None:
    shared = redis_server.settings()
    web1 = make_host(tmp_path, shared, "web1")
    disabled_flag = web1.data_dir / "scheduler" / "disabled"
    assert remote(web1, "disable", "web1")[:2] == (0, ["disable web1 -> requested"])
    assert remote(web1, "get_status", "web1")[1] == [
        "get_status web1 -> unknown (no tick reported), pending request: disabled"
    ]
    tick = web1.run("cron_scheduler", "run")
    assert tick.returncode == 0, tick.stderr
    assert "Scheduler is disabled" in tick.stdout
    assert disabled_flag.exists()
    code, lines, _ = remote(web1, "get_status", "web1")
    assert re.fullmatch(r"get_status web1 -> disabled \(last tick .+ UTC\), pending request: none", lines[0])

    waiter = web1.popen("cron_remote_manager", "enable", "web1", "--wait", "--timeout", "60")
    wait_for(lambda: redis_server.client().get(shared["CRONMAN_REDIS_PREFIX"] + "cron_scheduler:status:web1"))
    assert web1.run("cron_scheduler", "run").returncode == 0
    out, err = waiter.communicate(timeout=90)
    assert waiter.returncode == 0, err
    assert out.splitlines() == ["enable web1 -> requested", "enable web1 -> applied"]
    assert not disabled_flag.exists()

    # Nobody ticks: --wait gives up with one line and a non-zero exit.
    code, lines, err = remote(web1, "disable", "web1", "--wait", "--timeout", "0.5")
    assert code == 1
    assert lines == ["disable web1 -> requested", "disable web1 -> not applied"]
    assert err.strip() == "Error: not applied within 0.5 s by: web1"
    assert remote(web1, "clear_status", "web1")[1] == ["clear_status web1 -> cleared"]
    assert remote(web1, "get_status", "web1")[1] == [
        "get_status web1 -> unknown (no tick reported), pending request: none"
    ]


def test_remote_kill_and_all_hosts(tmp_path: Path, redis_server: RedisServer) -> None:
    shared = redis_server.settings()
    web1 = make_host(tmp_path, shared, "web1")
    web2 = make_host(tmp_path, shared, "web2")
    for host in (web1, web2):  # each reports once, so ALL knows them
        assert host.run("cron_scheduler", "run").returncode == 0
    worker = web1.popen("cron_worker", "run", "Sleep:60,tag=victim")
    try:
        wait_for(lambda: any(m.get("event") == "start" for m in web1.read_marks()), timeout=60)
        assert remote(web1, "kill:Sleep", "web1")[:2] == (0, ["kill:Sleep web1 -> requested"])
        tick = web1.run("cron_scheduler", "run")
        assert tick.returncode == 0, tick.stderr
        assert worker.wait(timeout=30) == 128 + signal.SIGTERM
        assert "remote request: kill Sleep: Sleep:60,tag=victim" in tick.stderr
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    waiter = web1.popen("cron_remote_manager", "disable", "ALL", "--wait", "--timeout", "60")
    wait_for(lambda: redis_server.client().get(shared["CRONMAN_REDIS_PREFIX"] + "cron_scheduler:status:ALL"))
    for host in (web1, web2):
        assert host.run("cron_scheduler", "run").returncode == 0
    out, err = waiter.communicate(timeout=90)
    assert waiter.returncode == 0, err
    assert out.splitlines() == ["disable ALL -> requested", "disable web1 -> applied", "disable web2 -> applied"]
    for host in (web1, web2):
        assert (host.data_dir / "scheduler" / "disabled").exists()
    # The standing ALL request wins over a host's own until it is cleared.
    remote(web1, "enable", "web2")
    web2.run("cron_scheduler", "run")
    assert (web2.data_dir / "scheduler" / "disabled").exists()
    status = remote(web1, "get_status", "ALL")[1]
    assert status[0] == "get_status ALL -> standing request: disabled"
    assert [line.split(" -> ")[0] for line in status[1:]] == ["get_status ALL web1", "get_status ALL web2"]
    assert remote(web1, "clear_status", "ALL")[0] == 0
    remote(web1, "enable", "web2")
    web2.run("cron_scheduler", "run")
    assert not (web2.data_dir / "scheduler" / "disabled").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["frobnicate", "web1"], "Error: unknown request 'frobnicate'"),
        (["kill:", "web1"], "Error: kill needs a target"),
        (["kill:Bad:a,,b", "web1"], "Error: invalid job spec"),
        (["kill:Nope", "web1"], "Error: unknown cron job 'Nope' (did you mean 'Noop'?)"),
        (["kill:Sleep:\x01", "web1"], "Error: invalid job spec 'Sleep:\\x01': control character"),
        (["disable:now", "web1"], "Error: disable takes no argument"),
        (["disable", " "], "Error: invalid host name"),
    ],
)
def test_bad_requests_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    host = make_host(tmp_path, {"CRONMAN_REDIS_PORT": free_port()}, "web1")
    code, _lines, err = remote(host, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(message), err


def test_redis_down_scheduler_runs_locally_with_one_warning(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    host = make_host(tmp_path, {"CRONMAN_REDIS_PORT": port}, "web1", jobs=(("* * * * *", "Echo:local"),))
    tick = host.run("cron_scheduler", "run")
    assert tick.returncode == 0, tick.stderr
    assert "Traceback" not in tick.stderr
    warnings = [line for line in tick.stderr.splitlines() if "remote control skipped" in line]
    assert len(warnings) == 1 and f"127.0.0.1:{port}/0" in warnings[0], tick.stderr
    wait_for(lambda: host.read_marks(), timeout=60)  # the due job still ran

    code, lines, err = remote(host, "get_status", "web1")
    assert code == 1 and lines == []
    assert err.strip().startswith(f"Error: Redis at 127.0.0.1:{port}/0 is unavailable")
    assert len(err.strip().splitlines()) == 1


def test_another_hosts_record_is_alive_only_while_its_own_run_holds_the_lock(tmp_path, redis_server) -> None:
    """A dead run on host B whose key host C holds now is DEAD on host A, and ``clean`` removes it."""
    server = lock_settings = redis_server.settings(CRONMAN_REDIS_LOCKS=True, CRONMAN_REDIS_LOCK_TTL=2)
    host_a = make_host(tmp_path, lock_settings, "host-a")
    host_b = make_host(tmp_path, lock_settings, "host-b")
    host_c = make_host(tmp_path, lock_settings, "host-c")
    dead = host_b.popen("cron_worker", "run", "Sleep:600,tag=b")
    wait_for(lambda: host_b.read_marks(), timeout=60)
    dead.kill()  # its lock expires after one TTL; its record stays
    dead.wait()
    wait_for(lambda: not redis_server.client().exists(server["CRONMAN_REDIS_PREFIX"] + "cronman:lock:Sleep"),
             timeout=60)
    holder = host_c.popen("cron_worker", "run", "Sleep:600,tag=c")
    try:
        wait_for(lambda: host_c.read_marks(), timeout=60)
        rows = {line.split("\t")[2]: line.split("\t")[0]
                for line in host_a.run("cron_worker", "status").stdout.splitlines()[1:-1]}
        assert rows == {"host-b": "DEAD", "host-c": "ALIVE"}
        cleaned = host_a.run("cron_worker", "clean")
        assert f"CLEANED\t{dead.pid}\tSleep:600,tag=b" in cleaned.stdout
        assert "Cleaned: 1" in cleaned.stdout
    finally:
        holder.kill()
        holder.wait()


def test_a_claim_resent_after_a_stall_is_still_ours(tmp_path: Path, settings: Any) -> None:
    """redis-py re-sends a timed-out call once: the server ran both, the token makes the second ours.

    Without a token (the old claim) the re-sent call finds the claim its
    first sending made and reports it lost: the fire would run nowhere. A
    longer stall fails the tick, and its claim, never confirmed, lapses
    after its pending ttl, so a later tick retries the fire.
    """
    from cronman_plugins.redis.client import RedisUnavailable

    with running_redis(tmp_path) as server:
        use_server(settings, server.settings(CRONMAN_REDIS_TIMEOUT=0.5))
        backend = RedisLockBackend()
        assert backend.claim("warm-up", 60, "")  # the claim script is loaded: calls are one round trip

        def stalled_claim(key: str, token: str, stall: float, ttl: float = 60) -> bool:
            server.process.send_signal(signal.SIGSTOP)
            resume = threading.Timer(stall, server.process.send_signal, (signal.SIGCONT,))
            resume.start()
            try:
                return backend.claim(key, ttl, token)
            finally:
                resume.join()

        assert stalled_claim("fire-anonymous", "", 0.8) is False  # the lost fire of the report
        assert stalled_claim("fire-with-token", "token-a", 0.8) is True
        assert backend.claim("fire-with-token", 60, "token-b") is False  # and it is claimed once

        with pytest.raises(RedisUnavailable):
            stalled_claim("fire-long-stall", "token-a", 1.2, ttl=1.5)
        assert backend.claim("fire-long-stall", 60, "token-b") is False  # applied, but only pending
        wait_for(lambda: backend.claim("fire-long-stall", 60, "token-b"), timeout=5)


def test_a_worker_paused_past_its_lock_ttl_stops_instead_of_running_beside_the_next(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    shared = redis_server.settings(CRONMAN_REDIS_LOCKS=True, CRONMAN_REDIS_LOCK_TTL=1.5)
    host = make_host(tmp_path, shared, "host-a")
    lock_key = shared["CRONMAN_REDIS_PREFIX"] + "cronman:lock:Sleep"
    first = host.popen("cron_worker", "run", "Sleep:60,tag=first", start_new_session=True)
    wait_for(lambda: any(m.get("tag") == "first" for m in host.read_marks()), timeout=60)
    first.send_signal(signal.SIGSTOP)  # a long GC pause, a frozen VM
    try:
        wait_gone(redis_server, lock_key)
        second = host.popen("cron_worker", "run", "Sleep:3,tag=second")
        wait_for(lambda: any(m.get("tag") == "second" for m in host.read_marks()), timeout=60)
    finally:
        first.send_signal(signal.SIGCONT)
    _out, err = first.communicate(timeout=30)
    assert first.returncode == 3, err
    assert "lock 'Sleep' lost: not renewed for" in err
    assert "lost its lock 'Sleep' while running; stopped" in err
    assert second.wait(timeout=60) == 0
    marks = host.read_marks()
    starts = {m["tag"]: m["fencing_token"] for m in marks if m.get("event") == "start"}
    assert starts["second"] > starts["first"] > 0
    assert [m["tag"] for m in marks if m.get("event") == "end"] == ["second"]
    status = json.loads(host.run("cron_worker", "status", "--json").stdout)
    assert status["workers"] == []  # the stopped run left no record, the next one released its own


def test_a_worker_that_cannot_reach_its_lock_backend_runs_nothing(tmp_path: Path) -> None:
    host = make_host(tmp_path, {"CRONMAN_REDIS_PORT": free_port(), "CRONMAN_REDIS_LOCKS": True}, "host-a",
                     CRONMAN_STORE_WAIT=1)
    started = time.monotonic()
    result = host.run("cron_worker", "run", "Sleep:0,tag=never")
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started >= 1.0  # it tried again for CRONMAN_STORE_WAIT
    assert "Sleep:0,tag=never: the lock store cannot be used (Redis at 127.0.0.1:" in result.stderr
    assert "Sleep:0,tag=never: cannot take lock 'Sleep' (Redis at 127.0.0.1:" in result.stderr
    assert host.read_marks() == []


def test_a_worker_starting_while_redis_restarts_waits_for_it_and_runs(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        host = make_host(tmp_path, server.settings(CRONMAN_REDIS_LOCKS=True), "host-a")
        server.stop()
        worker = host.popen("cron_worker", "run", "Sleep:0,tag=after-restart")
        time.sleep(2.0)
        server.start()  # on the same port, empty
        _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "the lock store cannot be used" in err and "trying again for 10 s" in err
    assert [(m["tag"], m["event"]) for m in host.read_marks()] == [("after-restart", "start"), ("after-restart", "end")]


def test_redis_restarted_empty_between_two_hosts_ticks_fires_nothing_twice(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        shared = server.settings(CRONMAN_REDIS_LOCKS=True)
        names = ("host-a", "host-b")
        seeding = [make_host(tmp_path, shared, name, jobs=(("* * * * *", "Echo:seed"),)) for name in names]
        for host in seeding:  # both hosts have seen this Redis's epoch
            assert host.run("cron_scheduler", "run").returncode == 0
        if time.time() % 60 > 40:
            time.sleep(60 - time.time() % 60 + 1)
        spec = "Echo:once"
        hosts = [make_host(tmp_path, shared, name, jobs=(("* * * * *", spec),)) for name in names]
        for host in hosts:
            (host.data_dir / "scheduler" / "watermark.json").write_text(
                json.dumps({"version": 1, "watermark": time.time() // 60 * 60 - 1})  # this minute's fire is due
            )
        first = hosts[0].run("cron_scheduler", "run")
        assert len(started_fires(first.stderr, spec)) == 1, first.stderr
        server.restart_empty()  # no persistence: host-a's claim is gone
        second = hosts[1].run("cron_scheduler", "run")
        assert second.returncode == 0, second.stderr
        assert started_fires(second.stderr, spec) == [], second.stderr
        assert "the lock store lost its data (claims gone), so another host may have run it; missed" in second.stderr
        time.sleep(1.0)
        assert sum(m.get("args") == ["once"] for h in hosts for m in h.read_marks()) == 1


def test_a_held_watermark_never_runs_again_a_fire_whose_claim_redis_lost(tmp_path: Path) -> None:
    # The daemon soak's duplicates: a failed spawn of another entry keeps the watermark before this minute's fire;
    # Redis restarts empty (the fire's claim is gone); the first tick after sees the new epoch and drops the fire;
    # a later tick, the watermark still held, decided it again and its claim succeeded: it ran twice.
    with running_redis(tmp_path / "redis") as server:
        shared = server.settings(CRONMAN_REDIS_LOCKS=True)
        if time.time() % 60 > 40:
            time.sleep(60 - time.time() % 60 + 1)
        spec = "Echo:held"
        host = make_host(tmp_path, shared, "host-a", jobs=(("* * * * *", spec),))
        assert host.run("cron_scheduler", "run").returncode == 0  # this host has seen this Redis's epoch
        held = json.dumps({"version": 1, "watermark": time.time() // 60 * 60 - 1})  # before this minute's fire
        watermark = host.data_dir / "scheduler" / "watermark.json"
        watermark.write_text(held)
        deadline = time.monotonic() + 30
        while not any(m.get("args") == ["held"] for m in host.read_marks()):
            assert time.monotonic() < deadline, host.read_marks()
            time.sleep(0.1)  # its run ran (it confirmed its claim as it started: that must be before the loss)
        server.restart_empty()
        runs = []
        for _ in range(3):
            watermark.write_text(held)  # still held back, as by another entry's failed spawn
            tick = host.run("cron_scheduler", "run")
            assert tick.returncode == 0, tick.stderr
            runs += started_fires(tick.stderr, spec)
        assert runs == []
        time.sleep(1.0)
        assert sum(m.get("args") == ["held"] for m in host.read_marks()) == 1  # the first tick's run only


def test_a_running_workers_lock_survives_redis_restarting_empty(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as server:
        shared = server.settings(CRONMAN_REDIS_LOCKS=True, CRONMAN_REDIS_LOCK_TTL=1.5)
        host = make_host(tmp_path, shared, "host-a")
        lock_key = shared["CRONMAN_REDIS_PREFIX"] + "cronman:lock:Sleep"
        worker = host.popen("cron_worker", "run", "Sleep:5,tag=kept")
        wait_for(lambda: host.read_marks(), timeout=60)
        server.restart_empty()
        wait_for(lambda: server.client().exists(lock_key), timeout=5)  # taken again at the next renewal
        rival = host.run("cron_worker", "run", "Sleep:0,tag=rival")
        assert rival.returncode == 0 and "is held by another worker, skipping" in rival.stderr
        status = json.loads(host.run("cron_worker", "status", "--json").stdout)
        assert [(w["status"], w["pid"]) for w in status["workers"]] == [("ALIVE", worker.pid)]
        _out, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err
        assert [m["tag"] for m in host.read_marks() if m.get("event") == "end"] == ["kept"]


def test_a_host_hours_behind_decides_on_the_redis_clock_and_fires_nothing_twice(
    tmp_path: Path, redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    import cronman_plugins.redis.plugin
    from cronman_core.plugins import CronmanPluginManager
    from cronman_core.scheduler import tick
    from cronman_core.scheduler.tick import Scheduler
    from tests.support.schedule import ScheduleSource
    from tests.test_scheduler import _FakeClock

    use_server(settings, redis_server.settings(CRONMAN_REDIS_LOCKS=True))
    settings.CRONMAN_TIME_ZONE = "UTC"
    pm = CronmanPluginManager()
    pm.register(ScheduleSource([("* * * * *", "Noop")]))
    pm.register(cronman_plugins.redis.plugin)
    spawned: list[str] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(spec))
    if time.time() % 60 > 50:
        time.sleep(60 - time.time() % 60 + 1)
    schedulers = []
    for name, skew in (("host-a", 0.0), ("host-b", -7200.0)):  # host-b's clock is two hours behind
        data_dir = tmp_path / name
        data_dir.mkdir(mode=0o700)
        settings.CRONMAN_DATA_DIR = str(data_dir)
        schedulers.append(Scheduler(pm=pm, clock=_FakeClock(time.time() + skew)))
    for scheduler in schedulers:
        scheduler.tick()
    assert spawned == ["Noop"]  # host-b found this minute's fire claimed, and fired no other
    assert any("this host's clock is -7200 s off the lock store's" in r.getMessage() for r in caplog.records)
