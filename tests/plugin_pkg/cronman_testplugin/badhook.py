from cronman_core import hookimpl


@hookimpl
def cronman_job_strated(run):  # misspelled on purpose
    pass
