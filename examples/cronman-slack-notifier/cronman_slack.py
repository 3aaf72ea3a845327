"""Post failed runs (and, for jobs with ``slack_notify_done = True``, finished ones) to a Slack webhook.

A sample third-party cronman plugin: one module, registered by the entry
point ``slack`` in the group ``cronman`` (see pyproject.toml). It uses only
cronman's public API: ``hookimpl``, ``conf`` and the ``JobRun`` every
notifier hook gets. Its settings keep django-cronman's names, so projects
that used django-cronman's Slack notifications keep their settings.
"""

from __future__ import annotations

import logging

import requests

from cronman_core import conf, hookimpl
from cronman_core.job import JobRun
from cronman_core.utils import bool_param

logger = logging.getLogger("cronman.slack")

conf.declare(
    conf.Setting("CRONMAN_SLACK_ENABLED", False, conf.FLAG),
    conf.Setting("CRONMAN_SLACK_URL", None, conf.text(), secret=True),  # the webhook URL holds its token
    conf.Setting("CRONMAN_SLACK_DEFAULT_CHANNEL", None, conf.text()),
    conf.Setting("CRONMAN_SLACK_TIMEOUT", 5.0, conf.seconds(0.0, strict=True)),
)


def post(text: str) -> None:
    """Send one message; a failure is one warning line and never changes the job's outcome."""
    url = conf.get("CRONMAN_SLACK_URL")
    if not conf.get("CRONMAN_SLACK_ENABLED") or not url:
        return
    payload: dict[str, str] = {"text": text}
    channel = conf.get("CRONMAN_SLACK_DEFAULT_CHANNEL")
    if channel:
        payload["channel"] = channel
    try:
        response = requests.post(url, json=payload, timeout=conf.get("CRONMAN_SLACK_TIMEOUT"))
        response.raise_for_status()
    except requests.RequestException as exc:
        # The URL is a secret: name the error's kind and status, never the URL.
        status = getattr(getattr(exc, "response", None), "status_code", None)
        logger.warning("Slack notification failed: %s%s", type(exc).__name__, f" (HTTP {status})" if status else "")


@hookimpl
def cronman_reserved_params() -> list[str]:
    """``slack_notify_done=1`` in a job spec is this plugin's, not a param of the job's ``run()``."""
    return ["slack_notify_done"]


@hookimpl
def cronman_job_failed(run: JobRun, exc: BaseException) -> None:
    post(f":x: {run.job_spec} failed on {run.host}: {run.error or type(exc).__name__}")


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    if bool_param(run.job_value("slack_notify_done"), False):
        post(f":white_check_mark: {run.job_spec} finished on {run.host} in {run.duration:.1f} s")
