"""The daemon soak, short (CI): every spawner and lock backend at once, 40 entries, two minute boundaries, chaos.

The long run (200 entries, any minutes) is ``benchmarks/daemon_soak.py``; its
figures are in docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, need
from tests.soak.daemon import BACKENDS, SPAWNERS, run_all

MINUTES = 1
ENTRIES = 40


@pytest.mark.redis
@pytest.mark.postgres
def test_every_slot_of_every_configuration_once_or_missed_with_a_reason(tmp_path: Path) -> None:
    need(shutil.which("redis-server") is not None, "redis-server is not installed")
    need(os.geteuid() == 0, "the data dir's faults need a tmpfs of its own: run as root (CI does)")
    configs = [(spawner, backend) for spawner in SPAWNERS for backend in BACKENDS]
    reports = run_all(tmp_path, configs, MINUTES, ENTRIES, seed=7, pause=(3.0, 6.0),
                      artifacts=REPO / "test-artifacts" / "daemon-soak")
    for report in reports:
        print(report.summary())
    for report in reports:
        assert report.slots > ENTRIES * MINUTES, report.summary()
        assert report.duplicated == [], report.summary()
        assert report.unexplained == [], report.summary()
        assert report.ran + sum(report.not_run.values()) + sum(report.missed.values()) == report.slots
        assert report.locks_left == [] and report.processes_left == [] and report.zombies_left == 0, report.summary()
        assert report.tracebacks == 0 and report.daemons_stuck == 0, report.summary()
        assert report.outcomes["SoakFail"] and report.outcomes["SoakSlow"] and report.outcomes["SoakFlaky"]
    faults = sum((report.faults for report in reports), start=type(reports[0].faults)())
    assert faults["data dir filesystem full"] + faults["data dir read-only"] >= 2, faults
    assert faults["scheduler SIGKILLed and restarted"] >= 1, faults
