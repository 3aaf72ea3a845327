"""Paused jobs in the database (the history app): the store, and the admin page with its unpause action."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from cronman_core.pauses import Pause, PauseStoreError, now_iso
from cronman_plugins.history.models import CronJobPause
from cronman_plugins.history.pauses import DatabasePauseStore

URL = "/admin/cron_history/cronjobpause/"


@pytest.mark.django_db
def test_the_database_store_keeps_pauses_and_failure_streaks() -> None:
    store = DatabasePauseStore()
    assert [store.count_outcome("Fail", failed) for failed in (True, True, False, True, True)] == [1, 2, 0, 1, 2]
    store.pause(Pause("Fail", "2 failed runs", "auto", now_iso()))
    store.pause(Pause("Fail", "looked at it", "ann@host", now_iso()))  # a new reason replaces the old
    (pause,) = store.paused().values()
    assert (pause.job_name, pause.reason, pause.paused_by) == ("Fail", "looked at it", "ann@host")
    assert store.unpause("Fail") == pause and store.paused() == {}
    assert store.count_outcome("Fail", True) == 1  # unpausing restarted the streak
    assert store.unpause("Fail") is None


@pytest.mark.django_db
def test_a_store_without_its_tables_is_one_line(monkeypatch) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE cron_history_cronjobpause")
    with pytest.raises(PauseStoreError) as info:
        DatabasePauseStore().paused()
    assert str(info.value).startswith("reading the paused jobs: no such table: cron_history_cronjobpause")
    assert str(info.value).endswith("(run: python manage.py migrate)")


@pytest.mark.django_db
def test_the_admin_pauses_a_job_and_checks_its_name(admin_client, admin_user) -> None:
    wrong = admin_client.post(f"{URL}add/", {"job_name": "Ech", "reason": "x"})
    assert "unknown cron job &#x27;Ech&#x27; (did you mean &#x27;Echo&#x27;?)" in wrong.content.decode()
    added = admin_client.post(f"{URL}add/", {"job_name": "Echo", "reason": "maintenance window"})
    assert added.status_code == 302
    (row,) = CronJobPause.objects.all()
    assert (row.job_name, row.reason, row.paused_by) == ("Echo", "maintenance window", f"{admin_user.username} (admin)")
    listing = admin_client.get(URL).content.decode()
    assert "maintenance window" in listing and "Unpause the selected jobs" in listing
    assert "Delete selected" not in listing
    done = admin_client.post(URL, {"action": "unpause", "_selected_action": [row.pk]}, follow=True)
    assert "Unpaused: Echo." in done.content.decode()
    assert not CronJobPause.objects.exists()


@pytest.mark.django_db
def test_unpausing_needs_the_delete_permission_and_staff(client, django_user_model) -> None:
    DatabasePauseStore().pause(Pause("Echo", "on hold", "ann@host", now_iso()))
    row = CronJobPause.objects.get()
    assert client.post(URL, {"action": "unpause", "_selected_action": [row.pk]}).status_code == 302  # to login
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_cronjobpause"))
    client.force_login(viewer)
    assert "on hold" in client.get(URL).content.decode()
    refused = client.post(URL, {"action": "unpause", "_selected_action": [row.pk]})
    assert refused.status_code == 200 and CronJobPause.objects.exists()  # the action is not offered
    outsider = django_user_model.objects.create_user("outsider", password="pw", is_staff=False)
    client.force_login(outsider)
    assert client.get(URL).status_code == 302 and CronJobPause.objects.exists()
