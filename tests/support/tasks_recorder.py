"""A spawner plugin that records each worker command instead of starting it (race tests).

Enabled through ``CRONMAN_PLUGINS``; appends ``{"spec", "task_id"}`` JSON lines
to ``$CRONMAN_TEST_SPAWNED``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cronman_core import hookimpl
from cronman_core.spawners import Spawner, SpawnHandle, WorkerCommand


class RecordingSpawner(Spawner):
    def spawn(self, command: WorkerCommand) -> SpawnHandle:
        line = json.dumps({"spec": command.job_spec, "task_id": command.env.get("CRONMAN_TASK_ID")})
        with open(os.environ["CRONMAN_TEST_SPAWNED"], "a") as f:
            f.write(line + "\n")  # one short O_APPEND write: lines of two processes never mix
        return SpawnHandle(job_spec=command.job_spec)


@hookimpl(tryfirst=True)
def cronman_spawner(data_dir: Path) -> Spawner:
    return RecordingSpawner()
