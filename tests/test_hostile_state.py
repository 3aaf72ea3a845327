"""Hostile state files: whatever sits in a data-dir file, commands recover and no fire is lost or doubled.

One hypothesis test per state file and record format. Each example puts in
the file's place random JSON of every type, a valid file with one field
replaced by such a value, random bytes, a truncated valid file, a FIFO, a
directory or a symlink to a valid file elsewhere. Then:

* the worker commands (``status``, ``clean``, ``resume``, ``kill``) exit 0,
  with one warning for damage (never a traceback, never a hang), and still
  list every good record;
* for the scheduler's files and the fire claims, a tick sequence with a
  fake clock starts one run per minute and one run for a skipped minute
  plus the next (catch-up), and every slot ends claimed exactly once.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cronman_core.files import safe_name
from cronman_core.records import RunRecord
from cronman_core.scheduler import tick
from cronman_core.scheduler.decide import claim_key
from cronman_core.scheduler.tick import Scheduler
from cronman_core.testing import LockBackendContract
from cronman_plugins.pidfile import PidfileBackend
from tests.test_scheduler import _FakeClock, _pidfile_manager, at, entry

KINDS = ("json", "field", "bytes", "truncated", "fifo", "directory", "symlink")
#: Damage whose content may happen to be valid: a warning is then not required.
MAYBE_VALID = ("json", "field")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

HOSTILE = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def damages(draw: st.DrawFn, field_kind: bool = True) -> tuple[str, Any]:
    """A kind of damage and what it needs: a JSON value, (field index, value), bytes or a cut."""
    kind = draw(st.sampled_from(KINDS if field_kind else [k for k in KINDS if k != "field"]))
    if kind == "json":
        return kind, draw(json_values)
    if kind == "field":
        return kind, (draw(st.integers(0, 63)), draw(json_values))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=64))
    if kind == "truncated":
        return kind, draw(st.floats(0, 1, exclude_max=True))
    return kind, None


def apply(path: Path, kind: str, how: Any, valid: bytes, with_field: Callable[[int, Any], bytes]) -> None:
    """Put damage of ``kind`` where ``path`` is (replacing what is there)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if kind == "json":
        path.write_text(json.dumps(how))
    elif kind == "field":
        path.write_bytes(with_field(*how))
    elif kind == "bytes":
        path.write_bytes(how)
    elif kind == "truncated":
        path.write_bytes(valid[: int(len(valid) * how)])
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        path.mkdir(mode=0o700)
        (path / "inside").write_text("x")
    else:
        elsewhere = Path(tempfile.mkdtemp()) / "elsewhere.json"
        elsewhere.write_bytes(valid)
        os.symlink(elsewhere, path)


def swap_field(data: dict[str, Any], index: int, value: Any) -> dict[str, Any]:
    changed = dict(data)
    changed[sorted(changed)[index % len(changed)]] = value
    return changed


@contextlib.contextmanager
def no_hang(seconds: int = 5) -> Iterator[None]:
    """A FIFO opened for reading without O_NONBLOCK blocks forever: fail instead."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("hung on a data-dir file")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def command(*args: str) -> tuple[int, str]:
    """Run a cronman command in-process: (exit code, stdout)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with no_hang():
        try:
            call_command(*args, stdout=out, stderr=err)
        except SystemExit as exc:
            code = int(exc.code or 0)
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue()


def fresh_data_dir(base: Path, settings: Any) -> Path:
    path = Path(tempfile.mkdtemp(dir=base))
    os.chmod(path, 0o700)
    settings.CRONMAN_DATA_DIR = str(path)
    return path


def warnings(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and name in r.getMessage()]


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".tmp-")]


# -- run records and their index -----------------------------------------------------------


def good_record(backend: PidfileBackend) -> RunRecord:
    record = LockBackendContract.make_record("Good", job_spec="Good")
    backend.write_record(record)
    return record


def record_is_valid(data: bytes, name: str) -> bool:
    try:
        record = RunRecord.from_json(data)
    except ValueError:
        return False
    return PidfileBackend.record_name(record) == name


@HOSTILE
@given(damage=damages())
def test_a_damaged_run_record_is_set_aside_and_the_others_listed(tmp_path, settings, caplog, damage) -> None:
    caplog.clear()
    data_dir = fresh_data_dir(tmp_path, settings)
    backend = PidfileBackend(data_dir)
    good = good_record(backend)
    victim = LockBackendContract.make_record("Victim", job_spec="Victim", pid=2**30)
    name = PidfileBackend.record_name(victim)
    path = backend.records_dir / name
    values = json.loads(victim.to_json())
    kind, how = damage
    apply(path, kind, how, victim.to_json().encode(), lambda i, v: json.dumps(swap_field(values, i, v)).encode())
    valid = kind in MAYBE_VALID and record_is_valid(path.read_bytes(), name)

    for args in (("status",), ("clean",), ("resume",), ("kill", "Sleep"), ("status", "--json")):
        code, out = command("cron_worker", *args)
        assert code == 0, (args, out)
    assert "Good" in out and good.run_id in out
    reported = warnings(caplog, name)
    if valid:
        assert reported == []
    else:
        assert len(reported) == 1, reported  # set aside once: later commands no longer see it
        assert not os.path.lexists(path)
    assert leftovers(backend.records_dir) == []


@HOSTILE
@given(damage=damages())
def test_a_damaged_records_index_is_rewritten(tmp_path, settings, caplog, damage) -> None:
    caplog.clear()
    data_dir = fresh_data_dir(tmp_path, settings)
    backend = PidfileBackend(data_dir)
    good = good_record(backend)
    assert backend.records() == [good]  # writes the index
    path = backend.records_dir / ".index.json"
    valid = path.read_bytes()
    index = json.loads(valid)
    (name, (inode, cached)), = index["records"].items()

    def with_field(i: int, value: Any) -> bytes:
        changed = list(cached)
        changed[i % len(changed)] = value
        return json.dumps({**index, "records": {name: [inode, changed]}}).encode()

    kind, how = damage
    apply(path, kind, how, valid, with_field)
    for _ in range(2):
        code, out = command("cron_worker", "status", "--json")
        assert code == 0
        (listed,) = json.loads(out)["workers"]
        assert listed["run_id"] == good.run_id or kind == "field"
    records = backend.records()
    assert len(records) == 1 and (records[0] == good or kind == "field")
    assert json.loads(path.read_bytes())["records"].keys() == {name}  # rewritten, a regular file again
    assert len(warnings(caplog, ".index.json")) <= 1


# -- scheduler state and fire claims: a tick sequence ----------------------------------------

EVERY_MINUTE = entry("* * * * *", "Noop")


def tick_sequence(
    settings: Any, data_dir: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[], None]
) -> None:
    """Ticks at 10:00:30, (damage), 10:01:30, 10:02:30, 10:04:30: four runs, every slot claimed once."""
    pm = _pidfile_manager(settings, data_dir, [(EVERY_MINUTE.time_spec, EVERY_MINUTE.job_spec)])
    clock = _FakeClock(at(10, 0, 30))
    spawned: list[float] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(clock.now))
    scheduler = Scheduler(pm=pm, clock=clock)
    with no_hang():
        scheduler.tick()
        damage()
        for minute in (1, 2, 4):  # 10:03 is skipped: the 10:04 tick catches it up in its run
            clock.now = at(10, minute, 30)
            scheduler.tick()
    assert spawned == [at(10, 0, 30), at(10, 1, 30), at(10, 2, 30), at(10, 4, 30)]
    backend = PidfileBackend(data_dir)
    assert [backend.claim(claim_key(EVERY_MINUTE, int(at(10, m))), 3600) for m in range(5)] == [False] * 5
    assert leftovers(data_dir / "claims") == leftovers(data_dir / "scheduler") == []


@HOSTILE
@given(damage=damages())
def test_a_damaged_watermark_loses_and_repeats_no_fire(tmp_path, settings, caplog, monkeypatch, damage) -> None:
    caplog.clear()
    data_dir = fresh_data_dir(tmp_path, settings)
    path = data_dir / "scheduler" / "watermark.json"
    kind, how = damage

    def corrupt() -> None:
        valid = path.read_bytes()
        values = json.loads(valid)
        apply(path, kind, how, valid, lambda i, v: json.dumps(swap_field(values, i, v)).encode())

    tick_sequence(settings, data_dir, monkeypatch, corrupt)
    if kind not in MAYBE_VALID:
        assert warnings(caplog, "watermark.json")


@HOSTILE
@given(damage=damages())
def test_a_damaged_next_fire_cache_is_recomputed(tmp_path, settings, caplog, monkeypatch, damage) -> None:
    caplog.clear()
    data_dir = fresh_data_dir(tmp_path, settings)
    path = data_dir / "scheduler" / "next-fires.json"
    kind, how = damage

    def corrupt() -> None:
        valid = path.read_bytes()
        body, _, digest = valid.rstrip(b"\n").rpartition(b"\n")
        values = json.loads(body)

        def with_field(i: int, value: Any) -> bytes:  # the old digest: a flipped value, not a forgery
            changed = swap_field(values, i, value)
            if i % 2:  # or a wrong-typed next fire time
                changed["next"] = {key: value for key in values["next"]}
            return json.dumps(changed).encode() + b"\n" + digest + b"\n"

        apply(path, kind, how, valid, with_field)

    tick_sequence(settings, data_dir, monkeypatch, corrupt)
    if kind not in MAYBE_VALID:
        assert warnings(caplog, "next-fires.json")


@HOSTILE
@given(claim=damages(field_kind=False), guard=damages(field_kind=False))
def test_debris_at_the_next_claim_and_the_claims_guard_never_stops_a_fire(
    tmp_path, settings, caplog, monkeypatch, claim, guard
) -> None:
    caplog.clear()
    data_dir = fresh_data_dir(tmp_path, settings)
    claims = data_dir / "claims"
    kind, how = claim
    if kind == "bytes":  # a parsable expiry still to come is a claim made elsewhere: that fire ran
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            assume(float(how.decode()) < time.time())

    def corrupt() -> None:
        target = claims / f"{safe_name(claim_key(EVERY_MINUTE, int(at(10, 1))))}.claim"
        apply(target, kind, how, repr(time.time() - 1).encode(), lambda i, v: b"")
        apply(claims / ".guard", *guard, b"", lambda i, v: b"")

    tick_sequence(settings, data_dir, monkeypatch, corrupt)
