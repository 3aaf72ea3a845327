"""Cron expressions: grammar, aliases, errors, fire instants (croniter is the oracle)."""

from __future__ import annotations

import datetime as dt

import pytest
from croniter import croniter

from cronman_core.cronexpr import CronExprError, normalize, parse_cron

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 UTC


def at(hour: int, minute: int, second: float = 0) -> float:
    return T0 + (hour - 10) * 3600 + minute * 60 + second


@pytest.mark.parametrize(
    "text, normal",
    [
        ("   15   5   *   *   *", "15 5 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_extra_spaces_and_aliases(text: str, normal: str) -> None:
    assert normalize(text) == normal
    assert parse_cron(text).text == normal


@pytest.mark.parametrize(
    "text, reason",
    [
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("60 * * * *", "out of range 0-59 in the minute field"),
        ("* 24 * * *", "out of range 0-23 in the hour field"),
        ("* * 0 * *", "out of range 1-31"),
        ("*/0 * * * *", "bad step"),
        ("x * * * *", "not a number"),
        ("1,,2 * * * *", "empty value"),
        ("@reboot", "unknown alias"),
        ("", "expected 5 fields"),
    ],
)
def test_invalid_expressions_are_one_line(text: str, reason: str) -> None:
    with pytest.raises(CronExprError) as info:
        parse_cron(text)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def test_names_wrapping_ranges_and_sunday_as_7() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for text in ("0 12 * jan-mar sun-sat/2", "50-10 * * * *", "0 0 * * 7", "15 5 1,15 * fri-mon"):
        it = croniter(text, dt.datetime.fromtimestamp(start, UTC))
        expected = [int(it.get_next(float)) for _ in range(30)]
        assert parse_cron(text).fires_between(start, expected[-1], UTC) == expected


def test_single_value_range_means_that_value() -> None:
    assert parse_cron("* 6-6 * * *").next_fire(T0, UTC) == at(10 + 20, 0)  # 06:00 next day


def test_impossible_date_never_fires() -> None:
    assert parse_cron("0 0 30 2 *").next_fire(T0, UTC) is None
    assert parse_cron("0 0 29 2 *").next_fire(T0, UTC) == dt.datetime(2028, 2, 29, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("spec", "words"), [
    ("*/5 * * * *", "Every 5 minutes"),
    ("30 2 * * 1-5", "At 02:30, Monday through Friday"),
    ("@hourly", "Every hour"),
    ("0 9 * * MON#2", "At 09:00, on the second Monday of the month"),
])
def test_a_time_spec_in_words(spec: str, words: str) -> None:
    from cronman_core.cronexpr import describe

    assert describe(spec) == words
