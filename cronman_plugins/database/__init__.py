"""The database lock backend: locks, records and fire claims on the project's PostgreSQL (a plugin app)."""
