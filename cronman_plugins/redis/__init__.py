"""Redis: remote control of schedulers (``cron_remote_manager``) and a cluster-wide lock backend.

Add ``"cronman_plugins.redis"`` to ``INSTALLED_APPS`` (for the command), or set
django-cronman's ``CRONMAN_REMOTE_MANAGER_ENABLED = True``; ``CRONMAN_REDIS_LOCKS
= True`` also makes it the lock backend. See docs/redis.md.
"""
