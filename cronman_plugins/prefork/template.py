"""The prefork template: a warm process that forks one worker per run.

Run as ``python -m cronman_plugins.prefork.template FD`` by the prefork
spawner, with the project's settings and ``PYTHONPATH``, in its own session
(a terminal's Ctrl-C reaches the daemon, not the template). It sets Django
up, loads the plugins and so every job module, imports what a worker
imports, closes its database and cache connections, and checks that no
thread runs: a fork copies only the calling thread, so a lock another
thread held would stay locked in the child forever. Then it moves every
object it made out of the collector's reach (``gc.freeze()``: a child's
collections then do not write to, and so copy, the pages it shares with the
template), reports ready, and from then on only forks and reaps.

Each child becomes a run's worker as :mod:`cronman_plugins.prefork.child`
says (own session, per-run log, the run's environment, fork steps, then
``cron_worker run``), keeping the descriptors of the warm set-up (log
handlers) and none the template opened since (the control socket above all).

The messages are pickled dicts on a ``SOCK_SEQPACKET`` socket pair, private
to the spawner and this process (an inherited descriptor, never a path):

- template → spawner: ``{"files": [(path, mtime_ns), ...]}`` (in chunks),
  then ``{"ready": pid, "threads": [...]}`` or ``{"failed": text}``; per run
  ``{"started": id, "pid": pid}`` or ``{"started": id, "error": text}``; per
  exit ``{"exited": pid, "code": returncode}`` (negative: killed by a signal).
- spawner → template: ``{"run": id, "job_spec", "argv", "env", "steps"}``
  with the run's log descriptor attached; ``{"retire": True}``.

A retired template (or one whose spawner went away: end of file) starts
nothing more and exits once its last child has exited and been reaped.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import socket
import sys
import threading
import traceback
from typing import Any, NoReturn

from cronman_plugins.prefork.child import enter_run, open_fds, run_as_worker, warm_worker

#: Largest message; a run's is its environment and argv (a few KiB).
MAX_MESSAGE = 1 << 20
#: Module files per ``files`` message (a datagram must fit the socket buffer).
FILES_PER_MESSAGE = 400


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """One message (and descriptors) as one datagram."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def module_files() -> list[tuple[str, int]]:
    """``(path, mtime_ns)`` of every imported module's file: a change to one makes this template stale."""
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path not in files:
            with contextlib.suppress(OSError):
                files[path] = os.stat(path).st_mtime_ns
    return sorted(files.items())


def warm_up() -> None:
    """Everything a worker would do before its job runs that can be shared: set-up and imports."""
    import django

    django.setup()
    warm_worker()


class Template:
    """The fork-and-reap loop, on the control socket ``sock``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: dict[int, str] = {}
        self.retiring = False
        self.orphaned = False
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select through the pipe
        signal.signal(signal.SIGTERM, self._retire)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        #: Descriptors a child keeps: those of the warm set-up (log handlers, say), not the control ones.
        self.baseline = open_fds() - {sock.fileno(), self.wake_r, self.wake_w}

    def _retire(self, signum: int = 0, frame: object = None) -> None:
        self.retiring = True

    def serve(self) -> int:
        threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        files = module_files()
        gc.freeze()
        try:
            for start in range(0, len(files), FILES_PER_MESSAGE):
                send(self.sock, {"files": files[start:start + FILES_PER_MESSAGE]})
            send(self.sock, {"ready": os.getpid(), "threads": threads})
        except OSError:  # its spawner died (SIGKILLed daemon) while it got ready: nobody to serve
            return 0
        while True:
            self._reap()
            if (self.retiring or self.orphaned) and not self.children:
                return 0
            watched = [self.wake_r] if self.orphaned else [self.sock.fileno(), self.wake_r]
            with contextlib.suppress(InterruptedError):
                readable, _, _ = select.select(watched, [], [], 5.0)
                if self.wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                if not self.orphaned and self.sock.fileno() in readable:
                    self._receive()

    def _receive(self) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 4)
        except OSError:
            data, fds = b"", []
        if not data:
            self.orphaned = True  # the spawner is gone: finish what runs, then exit
            for fd in fds:
                os.close(fd)
            return
        message = pickle.loads(data)
        if message.get("retire"):
            self._retire()
        elif "run" in message:
            self._fork(message, fds)

    def _reply(self, message: dict[str, Any]) -> None:
        if self.orphaned:
            return
        try:
            send(self.sock, message)
        except OSError:
            self.orphaned = True

    def _fork(self, request: dict[str, Any], fds: list[int]) -> None:
        log_fd, extra = (fds[0], fds[1:]) if fds else (-1, [])
        for fd in extra:
            os.close(fd)
        if log_fd < 0 or self.retiring:
            self._reply({"started": request["run"], "error": "no log descriptor" if log_fd < 0 else "retiring"})
            if log_fd >= 0:
                os.close(log_fd)
            return
        from django.db import connections

        connections.close_all()  # none should be open; a child must never share one
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(log_fd)
            self._reply({"started": request["run"], "error": f"fork failed: {exc.strerror}"})
            return
        if pid == 0:
            self._child(request, log_fd)
        os.close(log_fd)
        self.children[pid] = request["job_spec"]
        self._reply({"started": request["run"], "pid": pid})

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.pop(pid, None)
            self._reply({"exited": pid, "code": os.waitstatus_to_exitcode(status)})

    def _child(self, request: dict[str, Any], log_fd: int) -> NoReturn:
        try:
            enter_run(log_fd, keep=self.baseline)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        run_as_worker(request["job_spec"], request["argv"], request["env"], request["steps"])


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    try:
        warm_up()
    except BaseException as exc:
        with contextlib.suppress(OSError):  # its spawner may be gone too
            send(sock, {"failed": f"{type(exc).__name__}: {exc}".splitlines()[0]})
        return 1
    return Template(sock).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
