"""What a forked child of a warm process does to become a run's worker.

Shared by the prefork template and the Celery task (``cronman_plugins.celery``),
which both fork a process that already set Django up. The child becomes the
leader of a new session and process group (as the local spawner's
``start_new_session``: ``kill`` signals the run's whole group), gets the
default signal dispositions back, reads nothing, writes stdout and stderr to
its per-run log, and loses every descriptor of its parent but those it was
told to keep. Then it takes the run's environment, re-seeds ``random``, runs
the wrappers' fork steps (CPU/IO priority) and the very ``cron_worker run``
command a local worker runs (record, lock, hooks, history, exit code), and
leaves with ``os._exit``.

A descriptor it loses is pointed at ``/dev/null`` (``dup2``) rather than
closed: a socket object of the parent's (a broker or database connection)
may still hold the number and close it when collected, and it must then
close ``/dev/null``, never a file the run opened since under the same number.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import traceback
from collections.abc import Callable, Collection, Mapping
from typing import NoReturn

#: Dispositions a child keeps: Python's own (it ignores these at start-up).
_KEPT_SIGNALS = {getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)}


def warm_worker() -> None:
    """In a process that set Django up and will fork runs: do once what each run's worker would do
    before its job (plugins and job modules, data dir, host name, the command's parser), and close the
    database and cache connections a child must not share."""
    import psutil  # noqa: F401  (imported by the worker when it records its run)
    from django.core.cache import caches
    from django.core.management import load_command_class
    from django.db import connections

    from cronman_core.datadir import get_data_dir
    from cronman_core.plugins import get_plugin_manager
    from cronman_core.process import hostname

    pm = get_plugin_manager()  # plugins, their settings, every job module
    pm.reserved_params  # noqa: B018  (computed once here, not in every run)
    get_data_dir()
    hostname()
    load_command_class("cronman_core", "cron_worker").create_parser("django", "cron_worker")  # argparse, gettext
    connections.close_all()
    caches.close_all()


def open_fds() -> set[int]:
    """This process's open descriptors."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def enter_run(log_fd: int, keep: Collection[int] = ()) -> None:
    """In a freshly forked child: own session, default signals, output to ``log_fd``, no other descriptor
    of the parent's but ``keep`` (marked close-on-exec, they also vanish if the child execs)."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in signal.valid_signals():
        if signum in _KEPT_SIGNALS or signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(signum) not in (signal.SIG_DFL, None):
                signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    for fd in open_fds() - set(keep) - {0, 1, 2, null}:
        with contextlib.suppress(OSError):
            os.dup2(null, fd, inheritable=False)
    os.close(null)


def take_environment(env: Mapping[str, str]) -> None:
    """Make ``os.environ`` the run's: only what differs is set or unset (each is a libc call)."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _entry(argv: list[str]) -> str:
    """``sys.argv[0]`` of the worker the command would exec: its ``manage.py``, or django's ``__main__``."""
    script = argv[-4] if len(argv) >= 4 else ""
    if script.endswith("manage.py"):
        return script
    import django

    return os.path.join(os.path.dirname(django.__file__), "__main__.py")


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_worker(job_spec: str) -> int:
    """``cron_worker run <job_spec>``, parsed and handled as on the command line."""
    from django.core.management import load_command_class

    command = load_command_class("cronman_core", "cron_worker")
    command.run_from_argv([sys.argv[0], "cron_worker", "run", job_spec])
    return 0


def run_as_worker(
    job_spec: str, argv: list[str], env: Mapping[str, str], steps: list[Callable[[], None]]
) -> NoReturn:
    """After :func:`enter_run`: run ``job_spec`` as ``cron_worker run`` would in a new process, then exit."""
    code = 1
    try:
        take_environment(env)
        random.seed()
        sys.argv = [_entry(argv), "cron_worker", "run", job_spec]
        for step in steps:
            step()
        code = run_worker(job_spec)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


__all__ = ["enter_run", "open_fds", "run_as_worker", "run_worker", "take_environment", "warm_worker"]
