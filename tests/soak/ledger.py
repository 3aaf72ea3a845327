"""The soaks' ledger: what every slot (entry, fire instant) came to, from the marks the runs and the scheduler left.

One home for the daemon soak (``tests/soak/daemon.py``) and the cluster soak
(``tests/soak/cluster.py``). A run counts from its worker's ``enter`` mark,
which names the fires the run covers (from its environment), so a scheduler
SIGKILLed between a spawn and its log line still shows the run. A slot is
then: ran once, started a run that ran nothing (a ``not run`` mark from
``cronman_job_skipped``, with its reason), missed (a ``missed`` mark from
``cronman_fires_missed``, with its reason), duplicated, or unexplained.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cronman_core.cronexpr import CronExpr, parse_cron

Slot = tuple[str, float]


@dataclass(kw_only=True)
class Tally:
    """How the slots of one soak came out, and what was injected and left behind (keyword-only fields, so
    that a soak's report puts its own name first)."""

    slots: int = 0
    ran: int = 0
    #: Slots whose one started run ran nothing (``cronman_job_skipped``), by reason.
    not_run: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    duplicated: list[Slot] = field(default_factory=list)
    unexplained: list[Slot] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    locks_left: list[str] = field(default_factory=list)
    processes_left: list[int] = field(default_factory=list)
    #: Scheduler daemons that did not exit on SIGTERM (their stacks are in their logs).
    daemons_stuck: int = 0

    def tally(self) -> str:
        """The slots' outcomes and the faults, in words (each soak's summary starts with this)."""
        return (f"{self.slots} slots, {self.ran} ran once, "
                f"{sum(self.not_run.values())} started a run that ran nothing ({dict(self.not_run)}), "
                f"{sum(self.missed.values())} missed ({dict(self.missed)}), {len(self.duplicated)} duplicated, "
                f"{len(self.unexplained)} unexplained; faults {dict(self.faults)}")

    def left(self) -> str:
        """What the soak left behind, in words."""
        return (f"{len(self.locks_left)} locks left, {len(self.processes_left)} processes left, "
                f"{self.daemons_stuck} daemons stuck on SIGTERM")

    def as_json(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


class Ledger:
    """The marks' account of each slot of ``jobs`` ((time spec, job spec, ...) tuples, UTC)."""

    def __init__(self, jobs: Iterable[tuple[Any, ...]], spec_of: Callable[[dict[str, Any]], str]) -> None:
        self.expressions: dict[str, CronExpr] = {job[1]: parse_cron(job[0]) for job in jobs}
        self.spec_of = spec_of
        self.ran: dict[Slot, int] = defaultdict(int)
        self.missed: dict[Slot, str] = {}
        self.not_run: dict[Slot, list[str]] = defaultdict(list)
        #: Runs that entered ``run()``, by job class (a retried run's attempts count once).
        self.entered: Counter[str] = Counter()

    def _slots(self, spec: str, first: float, count: int) -> list[float]:
        found, slot = [], first
        for _ in range(count):
            found.append(slot)
            slot = float(self.expressions[spec].next_fire(slot, dt.UTC) or math.inf)
        return found

    def read(self, marks: Iterable[dict[str, Any]]) -> None:
        """Take in one host's marks."""
        for mark in marks:
            event = mark.get("event")
            if event in ("missed", "not run") and mark["spec"] in self.expressions:
                for slot in self._slots(mark["spec"], float(mark["first"]), mark["count"]):
                    if event == "missed":
                        self.missed[(mark["spec"], slot)] = mark["reason"]
                    else:
                        self.not_run[(mark["spec"], slot)].append(mark["reason"])
            elif event == "enter" and mark.get("attempt", 1) == 1:  # a retry is the same run
                spec = self.spec_of(mark)
                self.entered[spec] += 1
                if mark.get("fire") and spec in self.expressions:
                    for slot in self._slots(spec, float(mark["fire"][0]), mark["fire"][1]):
                        self.ran[(spec, slot)] += 1

    def settle(self, first: float, last: float, tally: Tally, also_ran: Mapping[Slot, int] | None = None) -> None:
        """Count every slot in ``[first, last]`` into ``tally``; ``also_ran``: runs seen another way (log lines)."""
        also = also_ran or {}
        for spec, expression in self.expressions.items():
            for instant in expression.fires_between(first - 1, last, dt.UTC):
                key = (spec, float(instant))
                runs = max(self.ran.get(key, 0), also.get(key, 0))
                tally.slots += 1
                if runs > 1:
                    tally.duplicated.append(key)
                elif runs == 1:
                    tally.ran += 1
                elif self.not_run.get(key):
                    tally.not_run[self.not_run[key][-1]] += 1
                elif key in self.missed:
                    tally.missed[self.missed[key]] += 1
                else:
                    tally.unexplained.append(key)
