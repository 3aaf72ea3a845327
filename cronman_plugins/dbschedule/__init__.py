"""Schedule entries kept in the database and edited in the admin (django-celery-beat's way).

Add ``"cronman_plugins.dbschedule"`` to ``INSTALLED_APPS``: its entries join
``CRON_JOBS`` through ``cronman_schedule_entries``, validated as ``manage.py
check`` validates ``CRON_JOBS``. See docs/dbschedule.md.
"""
