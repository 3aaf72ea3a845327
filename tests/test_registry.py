import pytest

from cronman_core.errors import UnknownJobError, UsageError
from cronman_core.job import BaseCronJob, CronJobRegistry
from cronman_core.utils import bool_param, date_param, flag_param, is_cron_process_resumed, list_param


class A(BaseCronJob):
    def run(self):
        pass


class B(BaseCronJob):
    def run(self):
        pass


def test_register_get_unregister():
    registry = CronJobRegistry()
    registry.register(A)
    registry.register(A, name="Alias")
    assert registry.get("A") is A and registry.get("Alias") is A
    assert registry.items() == [("A", A), ("Alias", A)]
    registry.unregister("Alias")
    assert "Alias" not in registry
    with pytest.raises(UnknownJobError, match="unknown cron job 'Alias'"):
        registry.get("Alias")
    with pytest.raises(UnknownJobError):
        registry.unregister("Alias")


def test_duplicate_name_for_another_class_is_refused():
    registry = CronJobRegistry()
    registry.register(A, name="X")
    registry.register(A, name="X")  # same class again: fine (module re-import)
    with pytest.raises(UsageError, match="already registered"):
        registry.register(B, name="X")


def test_only_job_classes_register():
    with pytest.raises(TypeError):
        CronJobRegistry().register(object)  # type: ignore[arg-type]


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
