"""The example project's schedule (CRONMAN_JOBS_MODULE)."""

CRON_JOBS = (
    ("* * * * *", "HelloWorld:world"),
    ("*/2 * * * *", "Report:acme,dry_run=yes"),
    ("   15   5   *   *   *", "Flaky"),
    ("@hourly", "HelloWorld:'hourly visitor'"),
    ("30 2 * * *", "Export"),
)
