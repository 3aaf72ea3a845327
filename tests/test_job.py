import pytest

from cronman_core.errors import UnknownJobError, UsageError
from cronman_core.job import BaseCronJob, CronJobRegistry


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


class Documented(BaseCronJob):
    """A project's base job: its docstring describes its subclasses too."""


class Undocumented(Documented):
    def run(self):
        pass


def test_info_never_shows_basecronjobs_docstring():
    from cronman_core.info import own_doc

    assert own_doc(A) == ""  # no docstring of its own: not BaseCronJob's either
    assert own_doc(Undocumented) == "A project's base job: its docstring describes its subclasses too."
    registry_run_doc = A.run.__doc__
    assert registry_run_doc is None
