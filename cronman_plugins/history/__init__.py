"""Run history: every run recorded through the notifier hooks, with an admin timeline.

Add ``"cronman_plugins.history"`` to ``INSTALLED_APPS`` (no ``CRONMAN_PLUGINS``
line needed) and run ``migrate``. ``CRONMAN_HISTORY_DAYS`` (default 30) is the
retention that the ``CleanCronTasks`` job enforces.
"""
