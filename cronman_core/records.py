"""The run record: what a lock backend keeps about a worker, enough to prove it is that worker."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: JSON object a spawner gives a run for its record's ``extra`` (taken out of the environment by the worker).
RECORD_EXTRA_ENV = "CRONMAN_RECORD_EXTRA"
#: ``extra`` key: the run came through a queue that any host sends to, so any of them may resume it
#: (claimed once, ``cronman_core.control.resume``), not only the host that ran it.
RESUME_ANYWHERE = "resume_anywhere"


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

    @property
    def resume_anywhere(self) -> bool:
        return bool(self.extra.get(RESUME_ANYWHERE))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRecord:
        """Parse a record; raise ValueError for anything that is not a whole, well-typed record."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"corrupt run record: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"corrupt run record: a JSON {type(data).__name__}, not an object")
        return cls.from_values(data)

    @classmethod
    def from_values(cls, values: dict[str, Any] | list[Any]) -> RunRecord:
        """A record from its field values (by name, or in field order), every type checked.

        Stored records come from files, Redis or a cache that anyone with
        access may have damaged: a wrong type here would break every command
        that lists records, so it is a ``ValueError`` naming the field.
        """
        names = [f.name for f in _FIELDS]
        if not isinstance(values, dict | list):
            raise ValueError(f"corrupt run record: a {type(values).__name__}, not field values")
        if isinstance(values, list):
            if len(values) != len(names):
                raise ValueError(f"corrupt run record: {len(values)} values for {len(names)} fields")
            values = dict(zip(names, values, strict=True))
        unknown = values.keys() - set(names)
        if unknown:
            raise ValueError(f"corrupt run record: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        for f in _FIELDS:
            if f.name not in values:
                if f.name in _OPTIONAL:
                    continue
                raise ValueError(f"corrupt run record: no {f.name}")
            if not _CHECKS[f.name](values[f.name]):
                raise ValueError(f"corrupt run record: bad {f.name} {values[f.name]!r}"[:200])
        return cls(**values)


def _text(value: Any) -> bool:
    return isinstance(value, str) and "\0" not in value


def _nonempty(value: Any) -> bool:
    return _text(value) and value != ""


def _pid(value: Any) -> bool:
    return type(value) is int and 0 < value < 1 << 31


def _time(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and math.isfinite(value) and value >= 0)


_FIELDS = fields(RunRecord)
_OPTIONAL = {"can_resume", "killed", "extra"}
_CHECKS = {
    "key": _nonempty,
    "job_spec": _nonempty,
    "pid": _pid,
    "host": _text,
    "create_time": _time,
    "run_id": _nonempty,
    "started_at": _text,
    "can_resume": lambda value: type(value) is bool,
    "killed": lambda value: type(value) is bool,
    "extra": lambda value: isinstance(value, dict),
}
