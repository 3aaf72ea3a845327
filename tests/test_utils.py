"""Param helpers for job ``run()`` methods (``cronman_core.utils``)."""

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
