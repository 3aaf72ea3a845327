"""The jobs that docs/examples/test_cron_jobs.py tests (an app's ``cron_jobs.py``)."""

from cronman_core.job import BaseCronJob, cron_job_registry


class Greet(BaseCronJob):
    """Say hello."""

    def run(self, who="world"):
        print(f"Hello {who}")


class Broken(BaseCronJob):
    """Fail, as a job whose upstream is down would."""

    def run(self):
        raise RuntimeError("upstream API down")


class Count(BaseCronJob):
    """Count to ``upto``, saying how far it got."""

    def run(self, upto="3"):
        for done in range(int(upto) + 1):
            self.progress(done, int(upto), "counting")


for job in (Greet, Broken, Count):
    cron_job_registry.register(job)
