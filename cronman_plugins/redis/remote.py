"""Remote control of schedulers: requests written by ``cron_remote_manager``, applied at each tick.

Keys (django-cronman's names, under ``CRONMAN_REDIS_PREFIX``)::

    cron_scheduler:status:<host>  "disabled" / "enabled": a one-shot request, taken by
                                  <host>'s next tick
    cron_scheduler:status:ALL     a standing request for every host, applied at every
                                  tick until ``clear_status ALL``; it wins over a host's own
    cron_scheduler:kill:<host>    job specs / PIDs to kill on <host> (``kill:<spec> ALL``
                                  is sent to every host that reported recently)
    cron_scheduler:hosts          host -> JSON report: status and Redis time of its last tick

Remote ``disable`` also suspends the host's running workers and ``enable``
resumes them, as in django-cronman. Every time is Redis's clock, so ``--wait``
("has the host ticked since my request?") does not depend on clock skew.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from cronman_core.errors import CronmanError, UsageError
from cronman_core.job import cron_job_registry
from cronman_core.jobspec import parse
from cronman_core.process import hostname
from cronman_plugins.redis import client as rc

if TYPE_CHECKING:
    from cronman_core.switch import SchedulerControl

logger = logging.getLogger("cronman.plugins.redis.remote")

ALL = "ALL"
DISABLED = "disabled"
ENABLED = "enabled"
#: ``ALL`` targets hosts whose scheduler reported within this many seconds.
ACTIVE_SECONDS = 600.0
#: ``--wait`` gives up after this many seconds by default (a crontab tick is once a minute).
DEFAULT_WAIT = 150.0
_POLL_INTERVAL = 0.25

_TAKE = """
local t = redis.call('TIME')
local standing = redis.call('GET', KEYS[1])
local mine = redis.call('GET', KEYS[2])
if mine then redis.call('DEL', KEYS[2]) end
local kills = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[3])
return {t[1], t[2], standing or '', mine or '', kills}
"""


@dataclass(frozen=True)
class HostReport:
    """What a scheduler tells about itself at each tick."""

    host: str
    status: str
    tick: float

    def describe(self) -> str:
        when = dt.datetime.fromtimestamp(self.tick, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.status} (last tick {when})"


@dataclass(frozen=True)
class Requests:
    """The requests a tick took for its host."""

    time: float
    standing: str
    own: str
    kills: list[str]

    @property
    def status(self) -> str:
        return self.standing or self.own


class RemoteControl:
    """Reads and writes the request and report keys; one instance per command or tick."""

    def __init__(self) -> None:
        self.redis = rc.get_client()
        self.hosts_key = rc.key("cron_scheduler", "hosts")

    @staticmethod
    def status_key(host: str) -> str:
        return rc.key("cron_scheduler", "status", host)

    @staticmethod
    def kill_key(host: str) -> str:
        return rc.key("cron_scheduler", "kill", host)

    def server_time(self) -> float:
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    # -- the command's side ------------------------------------------------------

    def request_status(self, host: str, status: str) -> float:
        """Ask ``host`` (or ALL) to switch to ``status``; return the request's Redis time."""
        pipe = self.redis.pipeline()
        pipe.set(self.status_key(host), status)
        pipe.time()
        _, (seconds, micros) = pipe.execute()
        return seconds + micros / 1e6

    def request_kill(self, host: str, target: str) -> float:
        pipe = self.redis.pipeline()
        pipe.rpush(self.kill_key(host), target)
        pipe.time()
        _, (seconds, micros) = pipe.execute()
        return seconds + micros / 1e6

    def pending(self, host: str) -> str | None:
        value: str | None = self.redis.get(self.status_key(host))  # type: ignore[assignment]
        return value

    def clear(self, host: str) -> None:
        """Drop the pending request; for a host also its report (a live host reports again)."""
        pipe = self.redis.pipeline()
        pipe.delete(self.status_key(host))
        if host != ALL:
            pipe.hdel(self.hosts_key, host)
        pipe.execute()

    def reports(self) -> dict[str, HostReport]:
        found = {}
        stored: dict[str, str] = self.redis.hgetall(self.hosts_key)  # type: ignore[assignment]
        for host, text in stored.items():
            try:
                found[host] = HostReport(**json.loads(text))
            except (TypeError, ValueError):
                logger.warning("ignoring unreadable report of host %r", host)
        return found

    def active_hosts(self) -> list[str]:
        """Hosts whose scheduler reported within :data:`ACTIVE_SECONDS`."""
        now = self.server_time()
        return sorted(host for host, report in self.reports().items() if now - report.tick <= ACTIVE_SECONDS)

    def wait_applied(self, hosts: list[str], since: float, timeout: float) -> list[str]:
        """Wait until every host ticked after ``since``; return those that did not in time."""
        deadline = time.monotonic() + timeout
        while True:
            reports = self.reports()
            late = [host for host in hosts if host not in reports or reports[host].tick <= since]
            if not late or time.monotonic() >= deadline:
                return late
            time.sleep(_POLL_INTERVAL)

    # -- the scheduler's side ----------------------------------------------------

    def take(self, host: str) -> Requests:
        """Atomically read the standing request, pop this host's request and kills."""
        keys = [self.status_key(ALL), self.status_key(host), self.kill_key(host)]
        seconds, micros, standing, own, kills = self.redis.eval(_TAKE, len(keys), *keys)
        return Requests(int(seconds) + int(micros) / 1e6, standing, own, list(kills))

    def report(self, report: HostReport) -> None:
        self.redis.hset(self.hosts_key, report.host, json.dumps(asdict(report)))


# -- applied at each scheduler tick ------------------------------------------------


def apply_requests(control: SchedulerControl) -> None:
    """Apply this host's requests to ``control``, then report the scheduler's status."""
    host = hostname()
    remote = RemoteControl()
    requests = remote.take(host)
    source = "ALL" if requests.standing else host
    if requests.status == DISABLED and control.is_enabled():
        logger.info("remote request for %s: disabling the scheduler and suspending its workers", source)
        control.disable(workers=True)
    elif requests.status == ENABLED and not control.is_enabled():
        logger.info("remote request for %s: enabling the scheduler and resuming its workers", source)
        control.enable(workers=True)
    for target in dict.fromkeys(requests.kills):
        try:
            entries = control.kill(target)
        except CronmanError as exc:
            logger.warning("remote request: kill %s: %s", target, exc)
            continue
        summary = ", ".join(f"{e.record.job_spec} PID {e.record.pid} {e.status}" for e in entries)
        logger.info("remote request: kill %s: %s", target, summary or "no worker matched")
    status = ENABLED if control.is_enabled() else DISABLED
    remote.report(HostReport(host=host, status=status, tick=requests.time))


# -- cron_remote_manager ------------------------------------------------------------------


ACTIONS = ("disable", "enable", "get_status", "clear_status", "kill")


def parse_request(request: str) -> tuple[str, str]:
    """``(action, kill target)`` from ``disable`` ... or ``kill:<spec or PID>``; UsageError otherwise."""
    action, colon, target = request.partition(":")
    if action not in ACTIONS:
        raise UsageError(
            f"unknown request {request!r}: use disable, enable, get_status, clear_status or kill:<job spec or PID>"
        )
    if action == "kill":
        target = target.strip()
        if not target:
            raise UsageError("kill needs a target: kill:<job spec or PID>")
        if not target.isdigit():
            # A bad spec or an unknown job is one line here, not a warning on every host.
            cron_job_registry.get(parse(target).name)
    elif colon:
        raise UsageError(f"{action} takes no argument: {request!r}")
    return action, target


def check_hosts(hosts: list[str]) -> None:
    for host in hosts:
        if not host or host != host.strip() or any(c.isspace() for c in host):
            raise UsageError(f"invalid host name {host!r}")


def execute(request: str, hosts: list[str], wait: bool, timeout: float) -> tuple[list[str], list[str]]:
    """Carry out one ``cron_remote_manager`` call: (output lines, hosts that did not apply in time)."""
    action, target = parse_request(request)
    check_hosts(hosts)
    with rc.reachable():
        remote = RemoteControl()
        if action == "get_status":
            return [line for host in hosts for line in _status_lines(remote, host)], []
        if action == "clear_status":
            for host in hosts:
                remote.clear(host)
            return [f"{request} {host} -> cleared" for host in hosts], []
        lines: list[str] = []
        targets: list[str] = []
        since = None
        for host in hosts:
            if action == "kill":
                expanded = remote.active_hosts() if host == ALL else [host]
                if not expanded:
                    raise CronmanError(
                        f"no scheduler reported within {ACTIVE_SECONDS:.0f} s: name the hosts to kill on"
                    )
                for each in expanded:
                    since = remote.request_kill(each, target)
                    lines.append(f"{request} {each} -> requested")
                targets += expanded
            else:
                since = remote.request_status(host, DISABLED if action == "disable" else ENABLED)
                lines.append(f"{request} {host} -> requested")
                targets += remote.active_hosts() if host == ALL else [host]
        if not wait or since is None:
            return lines, []
        targets = list(dict.fromkeys(targets))
        late = remote.wait_applied(targets, since, timeout)
        lines += [
            f"{request} {host} -> " + ("not applied" if host in late else "applied") for host in targets
        ]
        return lines, late


def _status_lines(remote: RemoteControl, host: str) -> list[str]:
    pending = remote.pending(host) or "none"
    if host == ALL:
        lines = [f"get_status ALL -> standing request: {pending}"]
        reports = remote.reports()
        return lines + [f"get_status ALL {name} -> {reports[name].describe()}" for name in sorted(reports)]
    report = remote.reports().get(host)
    state = report.describe() if report else "unknown (no tick reported)"
    return [f"get_status {host} -> {state}, pending request: {pending}"]
