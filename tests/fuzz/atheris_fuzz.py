"""Coverage-guided fuzzing with atheris (libFuzzer) of every parser that reads text someone else wrote.

The hypothesis tests generate structured hostile values; libFuzzer grows
byte inputs towards new branches instead, which finds what nobody thought to
generate. The first byte picks a target, the rest is its input:

* ``jobspec``: a job spec (a ``CRON_JOBS`` line, a Cron Task, ``cron_worker run``);
  a spec that parses formats back to itself;
* ``cron``: a time spec and an instant in one of several zones; a fire is a
  whole minute after the instant, and the fires in between agree with it;
* ``state``: bytes as the scheduler's watermark and next-fire cache files;
* ``record``: bytes as a run record (a file, a Redis value, a row); a record
  that parses serialises back to itself;
* ``env``: text as the fire claims, the scheduled fire, the run options and a
  progress value a worker reads from its environment or a record.

Each may refuse its input only with the project's own error (one clear line
for a user); any other exception is a crash, which libFuzzer saves as a
``crash-*`` file under ``-artifact_prefix`` and reports with exit code 1.

    .venv/bin/python tests/fuzz/atheris_fuzz.py -max_total_time=600 tests/fuzz/seeds

(libFuzzer's own flags; CI runs it for a few seconds: tests/test_fuzz_atheris.py.)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

with atheris.instrument_imports():
    import django

    django.setup()
    from cronman_core.cronexpr import get_zone, normalize, parse_cron
    from cronman_core.errors import CronmanError
    from cronman_core.job import Progress
    from cronman_core.jobspec import format_spec, parse
    from cronman_core.locks import FIRE_CLAIMS_ENV, FireClaims
    from cronman_core.policies import check_options
    from cronman_core.records import RunRecord
    from cronman_core.scheduler.state import SchedulerState
    from cronman_core.spawners import ScheduledFire

ZONES = [get_zone(name) for name in ("UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe",
                                     "Asia/Kathmandu")]
STATE_DIR = Path(tempfile.mkdtemp(prefix="cronman-fuzz-"))
STATE = SchedulerState(STATE_DIR)
STATE.dir.mkdir(parents=True, exist_ok=True)


def fuzz_jobspec(data: atheris.FuzzedDataProvider) -> None:
    text = data.ConsumeUnicodeNoSurrogates(data.remaining_bytes())
    try:
        spec = parse(text)
    except CronmanError:
        return
    assert parse(format_spec(spec)) == spec, (text, format_spec(spec))
    str(spec)


def fuzz_cron(data: atheris.FuzzedDataProvider) -> None:
    zone = ZONES[data.ConsumeIntInRange(0, len(ZONES) - 1)]
    instant = data.ConsumeIntInRange(0, 4_102_444_800)  # up to 2100
    text = data.ConsumeUnicodeNoSurrogates(data.remaining_bytes())
    try:
        normal = normalize(text)
        expr = parse_cron(text)
    except CronmanError:
        return
    assert parse_cron(normal).next_fire(instant, zone) == expr.next_fire(instant, zone), (text, normal)
    fire = expr.next_fire(instant, zone)
    if fire is None:
        return
    assert fire > instant and fire % 60 == 0, (text, instant, fire)
    assert expr.fires_between(instant, fire, zone)[:1] == [fire], (text, instant, fire)


def fuzz_state(data: atheris.FuzzedDataProvider) -> None:
    STATE.watermark_path.write_bytes(data.ConsumeBytes(data.ConsumeIntInRange(0, 512)))
    STATE.cache_path.write_bytes(data.ConsumeBytes(data.remaining_bytes()))
    watermark = STATE.read_watermark()
    assert watermark.value is None or watermark.value >= 0
    cache, as_of = STATE.read_cache("UTC")
    assert (cache is None) == (as_of is None)


def fuzz_record(data: atheris.FuzzedDataProvider) -> None:
    raw = data.ConsumeBytes(data.remaining_bytes())
    try:
        record = RunRecord.from_json(raw)
    except ValueError:
        return
    assert RunRecord.from_json(record.to_json()) == record


def fuzz_env(data: atheris.FuzzedDataProvider) -> None:
    text = data.ConsumeUnicodeNoSurrogates(data.remaining_bytes())
    os.environ[FIRE_CLAIMS_ENV] = text.replace("\0", "")
    claims = FireClaims.from_env()
    assert claims is None or (claims.token and all(claims.keys))
    ScheduledFire.decode(text)
    try:
        value = json.loads(text)
    except ValueError:
        return
    Progress.from_dict(value)
    try:
        check_options(value, "fuzz")
    except CronmanError:
        pass


TARGETS = [fuzz_jobspec, fuzz_cron, fuzz_state, fuzz_record, fuzz_env]


def one_input(raw: bytes) -> None:
    if not raw:
        return
    data = atheris.FuzzedDataProvider(raw[1:])
    TARGETS[raw[0] % len(TARGETS)](data)


def main() -> None:
    logging.disable(logging.CRITICAL)  # the readers' one-line warnings, thousands of times a second
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
