import os
import time
from pathlib import Path

import pytest

from cronman_core.testing import CronmanProject

REPO = Path(__file__).resolve().parent.parent

#: In CI (.ci/run sets it) a test that needs a service fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("CRONMAN_REQUIRE_SERVICES") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip locally when a service is missing; fail loudly in CI."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def project(tmp_path: Path) -> CronmanProject:
    """A throwaway project on tests.settings with its own data dir."""
    return CronmanProject(tmp_path / "project", "tests.settings", pythonpath=[REPO])


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)
