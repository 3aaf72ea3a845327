"""What the HTTP monitors (Cronitor, healthchecks.io) share: bounded pings.

A ping must never fail or hang a job, so every request has connect and read
timeouts (``CRONMAN_PING_TIMEOUT``, default 2 s + 3 s), is retried once on a
connection error only, and all pings of one job run (or one scheduler tick)
share a budget (``CRONMAN_PING_BUDGET``, default 7 s) across plugins: a
request's limits shrink to fit what is left, and once it is spent the
remaining pings of that run are skipped. A failed ping is
logged as one line on ``cronman.plugins.<plugin>``; it is never raised.

``requests`` is imported on the first ping, so an enabled plugin that never
pings (and every disabled one) costs nothing at start-up.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cronman_core import conf
from cronman_core.errors import UsageError

if TYPE_CHECKING:
    from cronman_core.monitors import MonitoredJob

#: Budgets kept at once; a long-running scheduler only needs the recent ones.
_KEPT_BUDGETS = 64

_deadlines: OrderedDict[str, float] = OrderedDict()
_deadlines_lock = threading.Lock()


def _pair(value: Any) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2:
        connect, read = (conf.seconds(0.0, strict=True).convert(v) for v in value)
        return connect, read
    number = conf.seconds(0.0, strict=True).convert(value)
    return number, number


conf.declare(
    conf.Setting("CRONMAN_PING_TIMEOUT", (2.0, 3.0), conf.Kind(
        "a positive number of seconds or a (connect, read) pair", _pair
    )),
    conf.Setting("CRONMAN_PING_BUDGET", 7.0, conf.seconds(0.0, strict=True)),
)


def _timeout() -> tuple[float, float]:
    timeout: tuple[float, float] = conf.get("CRONMAN_PING_TIMEOUT")
    return timeout


def _budget() -> float:
    budget: float = conf.get("CRONMAN_PING_BUDGET")
    return budget


def check_settings(extra: str) -> None:
    """Raise one clear :class:`UsageError` for unusable ping settings (at plugin load).

    ``requests`` is an extra of the ping plugins (``cronman[cronitor]``,
    ``cronman[healthchecks]``), not a core requirement: without it the
    plugin stops the load with one line instead of failing at every ping.
    """
    if importlib.util.find_spec("requests") is None:
        raise UsageError(f"the {extra} plugin needs requests: pip install requests")
    _timeout()
    _budget()


def _deadline(key: str) -> float:
    """The monotonic deadline of the budget ``key``, started by its first ping."""
    with _deadlines_lock:
        deadline = _deadlines.get(key)
        if deadline is None:
            deadline = _deadlines[key] = time.monotonic() + _budget()
            while len(_deadlines) > _KEPT_BUDGETS:
                _deadlines.popitem(last=False)
        return deadline


def run_uuid(key: str) -> str:
    """``key`` as a canonical UUID (services such as healthchecks.io want one)."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cronman:{key}"))


def tick_id(now: dt.datetime) -> str:
    """The run id of a scheduler tick: shared by every monitor, so they share its budget."""
    return run_uuid(f"tick:{now.isoformat()}")


class Pinger:
    """Bounded, never-raising HTTP pings of one plugin."""

    def __init__(self, plugin: str) -> None:
        self.logger = logging.getLogger(f"cronman.plugins.{plugin}")
        self._exhausted: set[str] = set()

    def ping(
        self,
        label: str,
        url: str,
        budget_key: str,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> bool:
        """GET ``url`` (POST when ``data`` is given); return whether it answered 2xx.

        :param label: what the ping is, for the log line (URLs may hold keys).
        :param budget_key: the run id or tick whose budget the ping spends.
        """
        import requests  # local: a worker whose job has no monitor never pays for it

        try:
            connect, read = _timeout()
            deadline = _deadline(budget_key)
        except UsageError as exc:
            self.logger.error("%s skipped: %s", label, exc)
            return False
        error = ""
        for _attempt in range(2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if budget_key not in self._exhausted:
                    if len(self._exhausted) >= _KEPT_BUDGETS:
                        self._exhausted.clear()
                    self._exhausted.add(budget_key)
                    self.logger.warning(
                        "%s skipped: the ping budget of this run is spent (%s)",
                        label,
                        error or "earlier pings were slow",
                    )
                return False
            # Connect and read limits together fit in what is left of the budget.
            connect_limit = min(connect, remaining / 2)
            read_limit = min(read, remaining - connect_limit)
            try:
                response = requests.request(
                    "POST" if data is not None else "GET",
                    url,
                    params=params,
                    data=data,
                    timeout=(connect_limit, read_limit),
                )
            except requests.ConnectionError as exc:
                # Includes connect timeouts; a read timeout is not retried.
                error = f"connection error: {type(exc).__name__}"
                continue
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}"
                break
            if response.ok:
                return True
            error = f"HTTP {response.status_code}"
            break
        self.logger.warning("%s failed: %s", label, error)
        return False


# -- management APIs (cron_monitors sync) -----------------------------------------------

#: Seconds a management API call may take (a command an operator waits for, not a job's ping).
API_TIMEOUT = (5.0, 20.0)


def api_call(service: str, method: str, url: str, *, expect: tuple[int, ...] = (200, 201),
             allow: tuple[int, ...] = (), **kwargs: Any) -> tuple[int, Any]:
    """One management API request: ``(status, JSON body or None)``.

    A status in ``expect`` or ``allow`` (404 when looking a monitor up) is
    returned; anything else, and a connection error, is one
    :class:`UsageError` line naming the service, the request and the answer.
    """
    import requests  # local: the ping plugins' extra, imported on use

    try:
        response = requests.request(method, url, timeout=API_TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise UsageError(f"{service} API: {method} {url}: {type(exc).__name__}") from None
    if response.status_code not in expect + allow:
        raise UsageError(f"{service} API: {method} {url} answered {response.status_code}: "
                         f"{' '.join(response.text.split())[:200]}")
    try:
        return response.status_code, response.json() if response.content else None
    except ValueError:
        raise UsageError(f"{service} API: {method} {url} answered {response.status_code} without JSON") from None


def differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``name 'old' -> 'new'`` for each field of ``wanted`` that ``current`` has otherwise."""
    return [f"{name} {current.get(name)!r} -> {value!r}" for name, value in wanted.items()
            if current.get(name) != value]


def one_per_monitor(service: str, jobs: list[MonitoredJob],
                    monitor_id: Callable[[MonitoredJob], Any]) -> list[tuple[str, MonitoredJob]]:
    """Each monitor id with the first schedule entry that names it: a monitor has one schedule, and a
    warning names the entries left out."""
    found: dict[str, MonitoredJob] = {}
    for job in jobs:
        name = monitor_id(job)
        if not name:
            continue
        if str(name) in found:
            logging.getLogger(f"cronman.plugins.{service}").warning(
                "%s: %r left as the first entry of %s says: a monitor has one schedule", service, str(name),
                job.job_name)
        else:
            found[str(name)] = job
    return list(found.items())


def creation(service: str, name: str, wanted: dict[str, Any]) -> str:
    """The line that says a monitor is (or would be) created with ``wanted``."""
    return f"{service}: create {name!r} ({', '.join(f'{key} {value!r}' for key, value in wanted.items())})"
