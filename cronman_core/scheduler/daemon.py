"""The long-running scheduler: a tick at every whole minute, requested runs polled between."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from django.db import connections

from cronman_core import conf
from cronman_core.process import on_stop_signals
from cronman_core.scheduler.tick import Scheduler

logger = logging.getLogger("cronman.scheduler")


#: The daemon never sleeps longer than this, so a wall-clock step is seen at once.
MAX_SLEEP = 1.0
#: How often the daemon looks at its lock store's epoch between ticks (``Scheduler.look_at_store_epoch``).
EPOCH_LOOK = 5.0


def run_daemon(
    scheduler: Scheduler, stop: threading.Event | None = None, reload: threading.Event | None = None
) -> None:
    """Tick at every whole minute of the scheduler's clock until ``stop`` is set.

    Every fire instant is a whole minute, so waking at each one is waking at
    every fire time. Sleeps are cut to :data:`MAX_SLEEP`, so a wall-clock
    step in either direction is noticed within a second; the watermark and
    the claims make a stepped clock neither repeat nor lose a fire. An
    exception in a tick is reported and the loop goes on; database
    connections are closed between ticks. Once ``stop`` is set, a tick under
    way starts no further due run (they are the next tick's, after a
    restart), so a stop waits for one spawn, not for a 200-entry tick on a
    loaded host past systemd's stop timeout. ``reload`` (SIGHUP) has the
    schedule's sources read anew (``CRON_JOBS`` re-imported) and the spawner
    get ready anew within a second; the spawner does so at start too, and
    lets go at the end. Before it gets ready, a first start stores its
    first watermark (:meth:`Scheduler.begin`). Every ``CRONMAN_SCHEDULE_POLL_INTERVAL`` seconds the
    schedule plugins are asked whether their entries changed; a change is
    ticked on at once.
    """
    stop = stop or threading.Event()
    reload = reload or threading.Event()
    scheduler.stopping = stop.is_set  # a tick under way starts no more runs once stop is set
    _guarded(scheduler, scheduler.begin)
    _guarded(scheduler, scheduler.reload)
    try:
        _loop(scheduler, stop, reload)
    finally:
        _guarded(scheduler, scheduler.close)


def _loop(scheduler: Scheduler, stop: threading.Event, reload: threading.Event) -> None:
    clock = scheduler.clock
    poll = conf.get("CRONMAN_TASK_POLL_INTERVAL")
    polling = scheduler.pm.has_impl("cronman_requested_runs")
    schedule_poll = conf.get("CRONMAN_SCHEDULE_POLL_INTERVAL")
    watching = scheduler.pm.has_impl("cronman_schedule_version")
    version = _guarded(scheduler, scheduler.schedule_version) if watching else None
    next_tick = clock.time()  # tick at start: catch up what fell while we were down
    next_poll = next_tick + poll
    next_look = next_tick + EPOCH_LOOK
    next_version = next_tick + schedule_poll
    while not stop.is_set():
        if reload.is_set():
            reload.clear()
            logger.info("SIGHUP: the schedule is read anew and the spawner gets ready anew")
            _guarded(scheduler, scheduler.schedule_reload)
            logger.info("the schedule has %d entries", scheduler.entry_count())
            _guarded(scheduler, scheduler.reload)
            next_tick = clock.time()  # tick on the schedule just read
        now = clock.time()
        if watching and now >= next_version:
            latest = _guarded(scheduler, scheduler.schedule_version)
            connections.close_all()
            next_version = clock.time() + schedule_poll
            if latest is not None and latest != version:
                logger.info("the schedule changed, %d entries: ticking on it now", scheduler.entry_count())
                version, next_tick = latest, now
        if now >= next_tick or next_tick - now > 60.0:  # due, or the clock stepped back
            result = _guarded(scheduler, scheduler.tick)
            connections.close_all()
            next_tick = (math.floor(clock.time() / 60.0) + 1) * 60.0
            wake_at = getattr(result, "wake_at", None)
            if wake_at is not None:  # a jittered fire is due before that: tick at its instant
                next_tick = min(next_tick, wake_at)
            next_poll = clock.time() + poll
        elif polling and now >= next_poll:
            _guarded(scheduler, scheduler.poll_requested)
            connections.close_all()
            next_poll = clock.time() + poll
        elif now >= next_look and next_tick - now > 1.0:
            scheduler.look_at_store_epoch()
            next_look = clock.time() + EPOCH_LOOK
        wake = min(next_tick, next_poll) if polling else next_tick
        wake = min(wake, next_version) if watching else wake
        clock.wait(stop, min(wake - clock.time(), MAX_SLEEP))


def _guarded(scheduler: Scheduler, action: Callable[[], object]) -> object:
    """``action()``'s result; an exception is logged and reported (None then)."""
    try:
        return action()
    except Exception as exc:
        what = "tick" if action.__name__ in ("tick", "poll_requested") else action.__name__.replace("_", " ")
        logger.error("scheduler %s failed: %s: %s", what, type(exc).__name__, exc,
                     exc_info=conf.debug())
        scheduler.pm.report_error(exc, {"command": "cron_scheduler daemon"})
        return None


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, reload: threading.Event | None = None) -> Iterator[None]:
    """SIGTERM / SIGINT set ``stop``: the running tick finishes, then the loop ends; SIGHUP sets ``reload``."""

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("got signal %d: finishing the tick and exiting", signum)
        stop.set()

    previous = signal.signal(signal.SIGHUP, lambda signum, frame: reload.set()) if reload else None
    try:
        with on_stop_signals(handler):
            yield
    finally:
        if reload:
            signal.signal(signal.SIGHUP, previous)
