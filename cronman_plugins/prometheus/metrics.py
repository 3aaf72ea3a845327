"""This host's cron metrics: counters kept in the data dir, exposed in the Prometheus text format.

Every process of the host (workers, ticks) adds to one state file
(``<data dir>/metrics/state.json``) under an exclusive lock, and rewrites
the textfile (``<data dir>/metrics/cronman.prom``) that node-exporter's
textfile collector reads, so the counters are true counters (they never go
down when the history is purged) and survive restarts. The text itself is
``prometheus_client``'s: its metric families and exposition, no format
written by hand.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cronman_core.datadir import private_subdir
from cronman_core.files import flocked, write_atomic

logger = logging.getLogger("cronman.plugins.prometheus")

#: Upper bounds (seconds) of the run duration histogram's buckets.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
#: Upper bounds (seconds) of the fire lateness histogram's buckets.
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0)
STATE_VERSION = 1
TEXTFILE = "cronman.prom"


def _empty() -> dict[str, Any]:
    return {"version": STATE_VERSION, "jobs": {}, "lateness": _histogram(LATENESS_BUCKETS), "last_tick": None}


def _histogram(bounds: tuple[float, ...]) -> dict[str, Any]:
    return {"buckets": [0] * len(bounds), "sum": 0.0, "count": 0}


def _observe(histogram: dict[str, Any], bounds: tuple[float, ...], value: float) -> None:
    index = bisect.bisect_left(bounds, value)
    if index < len(bounds):
        histogram["buckets"][index] += 1
    histogram["sum"] += value
    histogram["count"] += 1


class MetricsStore:
    """The state file and textfile of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = private_subdir(Path(data_dir), "metrics")
        self.state_path = self.dir / "state.json"
        self.textfile = self.dir / TEXTFILE

    def read(self) -> dict[str, Any]:
        """The counters; an unreadable state file starts them again (with one warning), never a crash."""
        try:
            state = json.loads(self.state_path.read_text())
            if isinstance(state, dict) and state.get("version") == STATE_VERSION and isinstance(
                    state.get("jobs"), dict):
                return state
            raise ValueError("not a cronman metrics state")
        except FileNotFoundError:
            return _empty()
        except (OSError, ValueError) as exc:
            logger.warning("metrics state %s is unreadable (%s): the counters start again", self.state_path, exc)
            return _empty()

    def change(self, update: Any) -> None:
        """Apply ``update(state)`` under the lock, then write the state and the textfile."""
        with flocked(self.dir / ".lock"):
            state = self.read()
            update(state)
            write_atomic(self.state_path, json.dumps(state).encode(), durable=False)
            write_atomic(self.textfile, exposition(state).encode(), durable=False)

    # -- what the hooks record ----------------------------------------------------------

    def run_ended(self, job: str, status: str, duration: float | None, finished_at: float | None) -> None:
        def update(state: dict[str, Any]) -> None:
            entry = _job(state, job)
            entry["runs"][status] = entry["runs"].get(status, 0) + 1
            if duration is not None and math.isfinite(duration):
                _observe(entry["duration"], DURATION_BUCKETS, max(0.0, duration))
            if status == "succeeded" and finished_at is not None:
                entry["last_success"] = max(entry.get("last_success") or 0.0, finished_at)

        self.change(update)

    def fires_missed(self, job: str, reason: str, count: int) -> None:
        def update(state: dict[str, Any]) -> None:
            missed = _job(state, job)["missed"]
            missed[reason] = missed.get(reason, 0) + count

        self.change(update)

    def started_late(self, seconds: float) -> None:
        self.change(lambda state: _observe(state["lateness"], LATENESS_BUCKETS, max(0.0, seconds)))

    def ticked(self, at: float, next_fires: dict[str, float]) -> None:
        def update(state: dict[str, Any]) -> None:
            state["last_tick"] = at
            for job, entry in state["jobs"].items():
                entry["next_fire"] = next_fires.get(job)
            for job, instant in next_fires.items():
                _job(state, job)["next_fire"] = instant

        self.change(update)


def _job(state: dict[str, Any], job: str) -> dict[str, Any]:
    return state["jobs"].setdefault(job, {"runs": {}, "duration": _histogram(DURATION_BUCKETS), "missed": {},
                                          "last_success": None, "next_fire": None})


def missed_reason(reason: str) -> str:
    """A reason as a label: its kind, without the free text (``paused: deploy`` → ``paused``)."""
    return reason.split(":", 1)[0].strip()[:60] or "unknown"


# -- exposition ---------------------------------------------------------------------


def families(state: dict[str, Any]) -> Iterator[Any]:
    """The metric families of ``state`` (``prometheus_client`` objects)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    last_success = GaugeMetricFamily("cronman_job_last_success_timestamp_seconds",
                                     "When the job's last successful run on this host ended.", labels=["job"])
    next_fire = GaugeMetricFamily("cronman_job_next_fire_timestamp_seconds",
                                  "The job's next fire, as this host's scheduler last saw it.", labels=["job"])
    runs = CounterMetricFamily("cronman_job_runs", "Runs of the job on this host, by how they ended.",
                               labels=["job", "status"])
    missed = CounterMetricFamily("cronman_job_missed", "Fires of the job given up on this host, by reason.",
                                 labels=["job", "reason"])
    duration = HistogramMetricFamily("cronman_job_duration_seconds", "Run durations of the job on this host.",
                                     labels=["job"])
    for job, entry in sorted(state["jobs"].items()):
        if entry.get("last_success") is not None:
            last_success.add_metric([job], entry["last_success"])
        if entry.get("next_fire") is not None:
            next_fire.add_metric([job], entry["next_fire"])
        for status, count in sorted(entry["runs"].items()):
            runs.add_metric([job, status], count)
        for reason, count in sorted(entry["missed"].items()):
            missed.add_metric([job, reason], count)
        if entry["duration"]["count"]:
            duration.add_metric([job], _buckets(entry["duration"], DURATION_BUCKETS), entry["duration"]["sum"])
    yield from (last_success, next_fire, runs, duration, missed)
    tick = GaugeMetricFamily("cronman_scheduler_last_tick_timestamp_seconds",
                             "When this host's scheduler last ticked.")
    if state.get("last_tick") is not None:
        tick.add_metric([], state["last_tick"])
    yield tick
    lateness = HistogramMetricFamily("cronman_scheduler_fire_lateness_seconds",
                                     "From a fire's instant to its worker's start, for runs started on this host.")
    if state["lateness"]["count"]:
        lateness.add_metric([], _buckets(state["lateness"], LATENESS_BUCKETS), state["lateness"]["sum"])
    yield lateness


def _buckets(histogram: dict[str, Any], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    cumulative, out = 0, []
    for bound, count in zip(bounds, histogram["buckets"], strict=True):
        cumulative += count
        out.append((repr(bound) if bound != int(bound) else f"{bound:.1f}", cumulative))
    out.append(("+Inf", histogram["count"]))
    return out


def exposition(state: dict[str, Any]) -> str:
    """``state`` in the Prometheus text format."""
    from prometheus_client import CollectorRegistry, generate_latest

    class _Collector:
        def collect(self) -> Iterator[Any]:
            return families(state)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry).decode()


__all__ = ["DURATION_BUCKETS", "LATENESS_BUCKETS", "MetricsStore", "exposition", "missed_reason"]
