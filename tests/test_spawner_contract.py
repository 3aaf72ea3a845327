"""``cronman_core.testing.SpawnerContract``, passed by the local and the prefork spawner."""

from __future__ import annotations

import pytest

from cronman_core.testing import CronmanProject, SpawnerContract


def _configured(project: CronmanProject, spawner: str) -> CronmanProject:
    project.configure(**SpawnerContract.probe_settings(), CRONMAN_SPAWNER=spawner)
    return project


class TestLocalSpawner(SpawnerContract):
    @pytest.fixture
    def spawner_project(self, project: CronmanProject) -> CronmanProject:
        return _configured(project, "local")


class TestPreforkSpawner(SpawnerContract):
    @pytest.fixture
    def spawner_project(self, project: CronmanProject) -> CronmanProject:
        return _configured(project, "prefork")
