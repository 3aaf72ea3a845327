"""Demo jobs of the example project."""

import time

from cronman_core.job import BaseCronJob, cron_job_registry
from cronman_core.taxonomies import CPUPriority, LockType
from cronman_core.utils import bool_param, is_cron_process_resumed


class HelloWorld(BaseCronJob):
    """Say hello to someone, optionally taking a nap.

    Its lock is per params: the every-minute greeting, the hourly one and a
    run requested from the admin never skip one another.
    """

    lock_type = LockType.PARAMS
    run_as_task = True

    def run(self, what="world", sleep=None):
        self.logger.info("Hello %s! (run %s)", what, self.context.run_id if self.context else "-")
        if sleep:
            time.sleep(float(sleep))


class Report(BaseCronJob):
    """Build a (pretend) report per customer; one run per customer at a time."""

    lock_type = LockType.PARAMS
    can_resume = True
    worker_cpu_priority = CPUPriority.LOWEST

    def run(self, customer, dry_run="no"):
        self.logger.info(
            "report for %s (dry run: %s, resumed: %s)",
            customer,
            bool_param(dry_run),
            is_cron_process_resumed(),
        )


class Export(BaseCronJob):
    """Export everything; one export at a time (a class lock), so a second one is skipped."""

    def run(self, sleep="0"):
        self.logger.info("exporting (fencing token %s)", self.context.fencing_token if self.context else "-")
        time.sleep(float(sleep))


class Flaky(BaseCronJob):
    """Fail on purpose, to show how failures are reported."""

    def run(self):
        raise RuntimeError("the demo job failed on purpose")


for job in (HelloWorld, Report, Export, Flaky):
    cron_job_registry.register(job)
