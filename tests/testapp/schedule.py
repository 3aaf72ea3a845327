CRON_JOBS = (
    ("*/5 * * * *", "Noop"),
    ("   15   5   *   *   *", "Hello:world"),
)
