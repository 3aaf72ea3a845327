"""cronman core: jobs, job specs, schedules, the worker protocol and the plugin hooks.

The core imports no plugin: every feature beyond running a job in-process
(locks, spawning, monitoring, remote control, admin tasks) is a plugin that
implements the hooks in :mod:`cronman_core.hookspecs`.
"""

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations: ``@hookimpl def cronman_job_started(run): ...``
hookimpl = pluggy.HookimplMarker("cronman")

__all__ = ["__version__", "hookimpl"]
