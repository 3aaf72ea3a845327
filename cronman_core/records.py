"""The run record: what a lock backend keeps about a worker, enough to prove it is that worker."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunRecord:
    """A worker's PID, process start time, host, spec and run id, beside its lock."""

    key: str
    job_spec: str
    pid: int
    host: str
    create_time: float | None
    run_id: str
    started_at: str
    can_resume: bool = False
    killed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Parse a record; raise ValueError for anything that is not a whole record."""
        try:
            data = json.loads(text)
            record = cls(**data)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"corrupt run record: {exc}") from exc
        if not isinstance(record.pid, int) or not isinstance(record.key, str):
            raise ValueError("corrupt run record: bad pid or key")
        return record
