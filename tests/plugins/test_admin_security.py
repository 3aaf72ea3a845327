"""Every admin page and action of cronman's apps: refused to anonymous, non-staff and staff-without-permission
users, and every state-changing POST refused without a CSRF token.

The URLs come from the admin site's registry (each cronman ModelAdmin's own
``get_urls()``), so a page added later is covered without editing this file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone

from cronman_plugins.dbschedule.models import ScheduledJob
from cronman_plugins.history.models import CronJobPause, CronRun
from cronman_plugins.tasks.models import CronTask

APPS = ("cron", "cron_history", "cron_dbschedule")


@pytest.fixture
def objects(db) -> dict[type, Any]:
    now = timezone.now()
    return {
        CronTask: CronTask.objects.create(cron_job="TaskEcho", params="x"),
        CronRun: CronRun.objects.create(run_id="a" * 32, job_name="Noop", job_spec="Noop", host="h", pid=1,
                                        started_at=now - dt.timedelta(minutes=1), status="succeeded"),
        CronJobPause: CronJobPause.objects.create(job_name="Noop", reason="maintenance", paused_by="ops",
                                                  paused_at=now),
        ScheduledJob: ScheduledJob.objects.create(time_spec="* * * * *", job_spec="Echo:x"),
    }


def admin_urls(objects: dict[type, Any]) -> Iterator[tuple[type, str, str]]:
    """(model, url name, URL) of every page of every cronman ModelAdmin."""
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in APPS:
            continue
        obj = objects[model]
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            kwargs = {"object_id": str(obj.pk)} if "object_id" in pattern.pattern.regex.pattern else {}
            yield model, pattern.name, reverse(f"admin:{pattern.name}", kwargs=kwargs)


def counts() -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    return {
        "tasks": list(CronTask.objects.values_list("id", "status").order_by("id")),
        "runs": CronRun.objects.count(),
        "pauses": list(CronJobPause.objects.values_list("job_name", flat=True)),
        "scheduled": list(ScheduledJob.objects.values_list("id", "enabled", "job_spec").order_by("id")),
    }


def _posts(model: type, obj: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every state-changing request of a model's admin: add, change, delete, and each action on ``obj``."""
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    changelist = reverse(f"{prefix}_changelist")
    posts = [
        (reverse(f"{prefix}_add"), {"job_spec": "Echo:y", "time_spec": "* * * * *", "cron_job": "TaskEcho",
                                              "job_name": "Other", "reason": "x"}),
        (reverse(f"{prefix}_change", args=[obj.pk]), {"job_spec": "Echo:z", "enabled": ""}),
        (reverse(f"{prefix}_delete", args=[obj.pk]), {"post": "yes"}),
    ]
    model_admin = admin.site._registry[model]
    for action in [*(model_admin.actions or []), "delete_selected"]:
        name = action if isinstance(action, str) else action.__name__
        posts.append((changelist, {"action": name, "_selected_action": [obj.pk], "post": "yes"}))
    return posts


def test_every_page_is_found(objects) -> None:
    names = {name for _model, name, _url in admin_urls(objects)}
    assert "cron_history_cronrun_timeline" in names
    assert {"cron_crontask_changelist", "cron_dbschedule_scheduledjob_change",
            "cron_history_cronjobpause_delete"} <= names
    assert len(names) >= 20


def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(objects, django_user_model) -> None:
    outsider = django_user_model.objects.create_user("outsider", password="pw", is_staff=False)
    outsider.user_permissions.set(Permission.objects.all())  # permissions without staff status get nothing
    anonymous, non_staff = Client(), Client()
    non_staff.force_login(outsider)
    before = counts()
    for client in (anonymous, non_staff):
        for _model, name, url in admin_urls(objects):
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], (name, response)
        for model, obj in objects.items():
            for url, data in _posts(model, obj):
                response = client.post(url, data)
                assert response.status_code == 302 and "/admin/login/" in response["Location"], (url, data)
    assert counts() == before


def test_staff_without_permissions_get_403_and_change_nothing(objects, django_user_model) -> None:
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    before = counts()
    for _model, name, url in admin_urls(objects):
        assert client.get(url).status_code == 403, name
    for model, obj in objects.items():
        for url, data in _posts(model, obj):
            assert client.post(url, data).status_code == 403, (url, data)
    assert counts() == before


def test_staff_who_may_only_view_run_no_action_and_change_nothing(objects, django_user_model) -> None:
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client = Client()
    client.force_login(viewer)
    before = counts()
    for model, obj in objects.items():
        for url, data in _posts(model, obj):
            client.post(url, data)
    assert counts() == before


def test_every_state_changing_post_needs_the_csrf_token(objects, django_user_model) -> None:
    boss = django_user_model.objects.create_superuser("boss", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(boss)
    before = counts()
    for model, obj in objects.items():
        for url, data in _posts(model, obj):
            response = client.post(url, data)
            assert response.status_code == 403 and b"CSRF" in response.content, (url, data)
    assert counts() == before
    # the same requests with the token do change things: the refusals above were the token's
    client = Client()
    client.force_login(boss)
    scheduled = objects[ScheduledJob]
    response = client.post(reverse("admin:cron_dbschedule_scheduledjob_changelist"),
                           {"action": "disable", "_selected_action": [scheduled.pk]})
    assert response.status_code == 302
    scheduled.refresh_from_db()
    assert scheduled.enabled is False
