"""Param helpers for job ``run()`` methods (``cronman_core.utils``)."""

import datetime as dt

import pytest

from cronman_core.utils import bool_param, date_param, flag_param, is_cron_process_resumed, list_param


def test_param_helpers(monkeypatch):
    assert bool_param("yes") is True and bool_param("0") is False
    with pytest.raises(ValueError):
        bool_param("maybe")
    assert list_param("1; 2;3", cast=int) == [1, 2, 3]
    assert str(date_param("2026-11-30")) == "2026-11-30"
    assert flag_param("x") is True and flag_param(None) is False
    monkeypatch.setenv("CRON_PROCESS_RESUMED", "1")
    assert is_cron_process_resumed()
    monkeypatch.delenv("CRON_PROCESS_RESUMED")
    assert not is_cron_process_resumed()


def test_param_helpers_take_django_cronmans_signatures():
    assert bool_param("maybe", None) is None and bool_param("", False) is False and bool_param("on", None) is True
    assert bool_param(None, "unset") == "unset"
    assert list_param("a b  c") == ["a", "b", "c"] and list_param("a;b") == ["a", "b"]
    assert list_param("", ["x"]) == ["x"] and list_param(None) == []
    assert list_param("1,2,,3", delimiter=",", cast=int) == [1, 2, 3]
    assert list_param("a_b c_d", replace_map={"_": "-"}) == ["a-b", "c-d"]
    assert list_param("a,,b", delimiter=",", skip_empty=False) == ["a", "", "b"]
    assert date_param("", dt.date(2026, 1, 2)) == dt.date(2026, 1, 2)
    assert flag_param(None, "dry", "fast dry;loud") is True and flag_param(None, "slow", "fast dry") is False
    assert flag_param("0", "dry", "dry") is False  # an explicit value wins
