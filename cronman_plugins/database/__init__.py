"""The database lock backend: locks, records and fire claims on the project's own database.

PostgreSQL, MySQL or MariaDB; a plugin app (its tables come with ``migrate``).
"""
