"""The prefork spawner: the scheduler daemon forks a warm template process per run.

Chosen by ``CRONMAN_SPAWNER = "prefork"``. The hooks are in
:mod:`cronman_plugins.prefork.plugin` (the daemon's side), the template
process in :mod:`cronman_plugins.prefork.template`. See docs/scheduling.md.
"""
