"""Admin Cron Tasks: runs of a job requested from Django admin (Admin > Cron > Cron Tasks).

Add ``"cronman_plugins.tasks"`` to ``INSTALLED_APPS`` (no ``CRONMAN_PLUGINS``
line needed) and run ``migrate``. See docs/admin.md for how a task travels
from the admin form to a worker.
"""
